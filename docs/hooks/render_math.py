"""Render the site's math to MathML when the site is built: no script, no CDN, works offline.

pymdownx.arithmatex (generic mode) wraps every formula of the pages and of the API
reference's docstrings in ``<span class="arithmatex">\\(…\\)</span>`` (inline) or
``<div class="arithmatex">\\[…\\]</div>`` (display). This hook replaces each with the MathML
that ``latex2mathml`` makes from the LaTeX; browsers draw MathML natively, so the built site
needs nothing at view time. A formula latex2mathml cannot read fails the build, naming it.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

INLINE = re.compile(r'<span class="arithmatex">\\\((?P<tex>.+?)\\\)</span>', re.S)
DISPLAY = re.compile(r'<div class="arithmatex">\\\[(?P<tex>.+?)\\\]</div>', re.S)


def to_mathml(tex: str, display: str) -> str:
    """MathML for one formula (``tex`` as arithmatex escaped it into the page's HTML)."""
    source = html.unescape(tex).strip()
    try:
        mathml = convert(source, display=display)
    except Exception as error:  # latex2mathml raises several types; name the formula
        raise ValueError(f"math: cannot render {source!r}: {error}") from error
    # the LaTeX stays in the page as the formula's alttext (copy-paste, screen readers)
    return mathml.replace("<math ", f'<math alttext="{html.escape(source)}" ', 1)


def render_math(page_html: str) -> str:
    page_html = DISPLAY.sub(
        lambda m: f'<div class="arithmatex">{to_mathml(m["tex"], "block")}</div>', page_html
    )
    return INLINE.sub(
        lambda m: f'<span class="arithmatex">{to_mathml(m["tex"], "inline")}</span>', page_html
    )


def on_page_content(html: str, **kwargs) -> str:  # mkdocs hook
    return render_math(html)
