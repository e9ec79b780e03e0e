"""The explorer page in a real headless Chromium (Debian's /usr/bin/chromium driven by
playwright): opened from file://, stepped with its buttons, read through data-grad.

Skipped, with the reason, when chromium or playwright is missing (`.ci/run` installs both).
"""

import itertools

import pytest

import tinybn as tb
from tinybn import Value
from tinybn.autograd import topological_order
from tinybn.demos import tour

XSS = "<img src=x onerror=alert(1)>"
BOXES = "#view g.node.value"


@pytest.fixture(scope="module")
def worked_page_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "bn.html"
    return tb.explore(tour.worked_example().loss, max_nodes=400).save(path)


class Opened:
    """A page of the explorer, with what it logged and requested."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.page.set_default_timeout(5000)  # fail fast: every action here takes milliseconds
        self.errors, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog), dialog.dismiss()))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)

    def button(self, name):
        return self.page.get_by_role("button", name=name, exact=True)

    def counter(self):
        return self.page.locator("#counter").text_content()

    def grads(self):
        """data-node → data-grad of every value box drawn now."""
        return self.page.eval_on_selector_all(
            BOXES, "gs => Object.fromEntries(gs.map(g => [g.dataset.node, g.dataset.grad]))"
        )


@pytest.fixture
def opened(browser, worked_page_path):
    opened = Opened(browser, worked_page_path)
    yield opened
    opened.page.close()


def python_grads_after(k):
    """Position → grad text of the nodes reached after k steps, from tinybn itself."""
    example = tour.worked_example()
    order = topological_order(example.loss)
    position = {id(node): i for i, node in enumerate(order)}
    reached = set()
    for step in itertools.islice(tb.backward_steps(example.loss), k):
        reached |= {position[id(step.node)]} | {position[id(push.parent)] for push in step.pushes}
    return {str(i): f"{order[i].grad:.4g}" for i in reached}


def test_opens_offline_without_errors_and_fetches_nothing(opened):
    assert opened.counter() == "step 0 / 129"
    # the whole graph, unfolded: one box per node (ε is one shared node)
    assert opened.page.locator(BOXES).count() == len(topological_order(tour.worked_example().loss))
    assert all(grad == "" for grad in opened.grads().values())
    assert opened.page.locator("#view text.grad").first.text_content() == "grad ·"
    for name in ("Previous step", "Next step", "Play", "Reset"):
        assert opened.button(name).count() == 1
    opened.button("Next step").click()
    opened.button("Only paths to γ").click()
    opened.button("Fold samples").click()
    assert opened.errors == []
    assert opened.requests == [opened.url]


def test_next_step_fills_exactly_the_reached_grads_and_reset_empties_them(opened):
    done = 0
    for k in (1, 3, 12):
        while done < k:
            opened.button("Next step").click()
            done += 1
        assert opened.counter() == f"step {k} / 129"
        expected = python_grads_after(k)
        shown = opened.grads()
        assert {node: grad for node, grad in shown.items() if grad} == expected
        steps = tb.backward_steps(tour.worked_example().loss)
        last = list(itertools.islice(steps, k))[-1]
        assert opened.page.locator("#step-text").text_content() == str(last)
        assert opened.page.locator("#view g.node.current").count() >= 1
    opened.button("Previous step").click()
    assert opened.counter() == "step 11 / 129"
    assert {n: g for n, g in opened.grads().items() if g} == python_grads_after(11)
    opened.button("Reset").click()
    assert opened.counter() == "step 0 / 129"
    assert all(grad == "" for grad in opened.grads().values())


def test_keyboard_steps_and_space_plays(opened):
    opened.page.locator("#view").focus()
    opened.page.keyboard.press("ArrowRight")
    opened.page.keyboard.press("ArrowRight")
    opened.page.keyboard.press("ArrowLeft")
    assert opened.counter() == "step 1 / 129"
    opened.page.keyboard.press(" ")
    assert opened.button("Play").get_attribute("aria-pressed") == "true"
    # the page's policy forbids eval, so wait by polling its text rather than wait_for_function
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(opened.page.locator("#counter")).not_to_have_text("step 1 / 129", timeout=5000)
    opened.page.keyboard.press(" ")
    assert opened.button("Play").get_attribute("aria-pressed") == "false"


def test_zoom_changes_the_transform_and_fold_changes_the_drawn_nodes(opened):
    viewport = opened.page.locator("#view g.viewport")
    fitted = viewport.get_attribute("transform")
    opened.button("Zoom in").click()
    zoomed = viewport.get_attribute("transform")
    assert zoomed != fitted and float(zoomed.split("scale(")[1][:-1]) > float(
        fitted.split("scale(")[1][:-1]
    )
    opened.page.mouse.move(400, 400)
    opened.page.mouse.wheel(0, 300)
    assert viewport.get_attribute("transform") != zoomed
    unfolded = opened.page.locator(BOXES).count()
    opened.button("Fold samples").click()
    folded = opened.page.locator(BOXES).count()
    assert folded < unfolded == len(topological_order(tour.worked_example().loss))
    assert opened.page.locator("#view g.node.summary").count() > 0
    opened.button("Fold samples").click()
    assert opened.page.locator(BOXES).count() == unfolded


def test_clicking_x_shows_its_three_routes_and_the_gamma_filter_dims_the_rest(opened):
    example = tour.worked_example()
    example.loss.backward()
    x = example.x[3][0]
    opened.page.locator(f'{BOXES}[data-label="{x.label}"]').click()
    info = opened.page.locator("#info").text_content()
    assert "x[3,0]" in info and "through μ[0,0]" in info and "through σ²[0,0]" in info
    assert "through x̂[3,0]" in info and f"sum{x.grad:.4g}" in info.replace(" ", "")
    opened.button("Only paths to γ").click()
    dimmed = opened.page.locator("#view g.node.value.dim").count()
    gamma = opened.page.locator(f'{BOXES}[data-label="{example.gamma[0].label}"]')
    assert 0 < dimmed < 175 and "dim" not in gamma.get_attribute("class")


def test_a_label_with_markup_is_shown_as_text_and_runs_nothing(browser, tmp_path):
    a, b = Value(2.0, label=XSS), Value(-3.0, label="</script><script>alert(2)</script>")
    path = tb.explore((a * b + a).named("L")).save(tmp_path / "xss.html")
    opened = Opened(browser, path)
    try:
        box = opened.page.locator(f"{BOXES}[data-node='0']")
        assert box.get_attribute("data-label") == XSS
        assert XSS in opened.page.locator("#view").text_content()
        for _ in range(2):  # both steps: L = (a·b) + a, then a·b
            opened.button("Next step").click()
        assert opened.counter() == "step 2 / 2"
        box.click()
        assert XSS in opened.page.locator("#info").text_content()
        assert opened.page.evaluate("document.querySelectorAll('img').length") == 0
        assert opened.dialogs == [] and opened.errors == []
        assert opened.requests == [opened.url]
    finally:
        opened.page.close()


def test_the_jupyter_frame_runs_the_same_page(browser):
    """_repr_html_ is the page in a sandboxed iframe's srcdoc: it steps there too."""
    explorer = tb.explore((Value(2.0, label="a") * Value(-3.0, label="b")).named("L"))
    page = browser.new_page()
    page.set_default_timeout(5000)
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        page.set_content(explorer._repr_html_())
        frame = page.frame_locator("iframe")
        assert frame.locator("#counter").text_content() == "step 0 / 1"
        frame.get_by_role("button", name="Next step", exact=True).click()
        assert frame.locator("#counter").text_content() == "step 1 / 1"
        grads = frame.locator(BOXES).evaluate_all("gs => gs.map(g => g.dataset.grad)")
        assert sorted(grads) == ["-3", "1", "2"]  # ∂L/∂a = b, ∂L/∂b = a, ∂L/∂L = 1
        assert errors == []
    finally:
        page.close()
