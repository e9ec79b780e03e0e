"""The built docs site in a real headless Chromium (Debian's /usr/bin/chromium driven by
playwright, as tests/test_explorer_browser.py): built with ``mkdocs build --strict`` into a
temporary folder, served from 127.0.0.1, every page opened.

On every page: no console error, no request leaving the site, every image loaded and shown
at no less than half its own pixel width (so its text reads at the column width), no code
block or table wider than the column (hiding the columns a verdict cites), every
formula rendered (MathML, no raw ``\\(`` or ``$$`` left in the text); and an embedded
explorer steps when its **Next step** is clicked.

Skipped, with the reason, without chromium, playwright or mkdocs (`.ci/run` installs all).
"""

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 800}  # a laptop screen: Material shows both sidebars

# what the page reports about itself: images (natural vs shown width), formulas, raw TeX
MEASURE = """() => {
  const images = [...document.querySelectorAll('article img')].map(img => ({
    src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
    natural: img.naturalWidth, shown: img.getBoundingClientRect().width}));
  const text = document.querySelector('article').innerText;
  const wide = [...document.querySelectorAll('article pre > code, article .md-typeset__table')]
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => el.innerText.split('\\n')[0].slice(0, 60));
  return {images, wide, formulas: document.querySelectorAll('article math').length,
          rawTex: (text.match(/\\\\\\(|\\\\\\[|\\$\\$/g) || []).length,
          iframes: document.querySelectorAll('article iframe').length};
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built strictly into a temporary folder and served on 127.0.0.1."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e .[docs])")
    folder = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test reports what matters; no access log
        pass


def pages(folder: Path) -> list[str]:
    """Every page of the site (each index.html but the 404 page)."""
    return sorted(
        str(path.parent.relative_to(folder)).replace(".", "") + "/"
        for path in folder.rglob("index.html")
        if "assets" not in path.parts and "explorer" not in path.parts
    )


def test_every_page_renders_offline_with_readable_images_and_math(browser, site):
    folder, base = site
    host = urlparse(base).netloc
    names = pages(folder)
    assert len(names) >= 10, names
    totals = {"pages": 0, "images": 0, "formulas": 0}
    problems = []
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(10000)
    errors, outside = [], []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "request",
        lambda r: urlparse(r.url).netloc not in (host, "") and outside.append(r.url),
    )
    for name in names:
        url = base + name.lstrip("/")
        page.goto(url, wait_until="load")
        found = page.evaluate(MEASURE)
        totals["pages"] += 1
        totals["images"] += len(found["images"])
        totals["formulas"] += found["formulas"]
        for image in found["images"]:
            if not image["loaded"]:
                problems.append(f"{name}: {image['src']} did not load")
            elif image["shown"] < image["natural"] / 2:
                problems.append(
                    f"{name}: {image['src']} is {image['natural']} px wide, shown at "
                    f"{image['shown']:.0f} px (under half: its text cannot be read)"
                )
        for block in found["wide"]:
            problems.append(f"{name}: a block runs off the column's right edge: {block!r}")
        if found["rawTex"]:
            problems.append(f"{name}: {found['rawTex']} raw TeX delimiters in the text")
    page.close()
    print(f"site: {totals}")  # the numbers for the closing note (pytest -s shows them)
    assert errors == [], errors
    assert outside == [], f"requests leaving the site: {sorted(set(outside))}"
    assert problems == [], "\n".join(problems)
    assert totals["images"] >= 15 and totals["formulas"] >= 100, totals


def test_the_embedded_explorer_steps(browser, site):
    _, base = site
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(10000)
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(base + "0-backprop/", wait_until="load")
    frame = page.frame_locator("article iframe").first
    counter = frame.locator("#counter")
    assert counter.text_content().startswith("step 0 / 3")
    frame.get_by_role("button", name="Next step", exact=True).click()
    assert counter.text_content().startswith("step 1 / 3")
    grads = frame.locator("g.node.value").evaluate_all(
        "gs => Object.fromEntries(gs.map(g => [g.dataset.label, g.dataset.grad]))"
    )
    # after L's step: L, d and f hold grads (1, -2, 4); a, b, c, e not yet
    assert {k: v for k, v in grads.items() if v} == {"L": "1", "d": "-2", "f": "4"}, grads
    assert errors == []
    page.close()
