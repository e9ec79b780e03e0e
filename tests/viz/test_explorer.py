"""The explorer page's Python side: one file, nothing fetched, labels escaped, and step data
that replays to exactly the grads of backward(). (The page in a browser: test_explorer_browser.)
"""

import html
import itertools
import json
import re

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, Value
from tinybn import functional as F
from tinybn.autograd import topological_order
from tinybn.cli import main as cli_main
from tinybn.demos import tour
from tinybn.viz.collapse import fold_samples, folded_size, sample_lanes, stage_of
from tinybn.viz.explorer import grad_text
from tinybn.viz.graph import GraphTooLargeError, GraphvizNotFoundError, _count
from tinybn.viz.nodes import consumers_of

XSS = "<img src=x onerror=alert(1)>"


def page_data(page: str) -> dict:
    """The JSON the page's script reads."""
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page)
    return json.loads(match.group(1))


def replay(data: dict, k: int) -> dict[int, str]:
    """What the page shows after k steps: position → grad text (as explorer.js does it)."""
    shown = {}
    for step in data["steps"][:k]:
        shown[step["node"]] = step["grad"]
        for parent, grad_after, *_ in step["pushes"]:
            shown[parent] = grad_after
    return shown


@pytest.fixture(scope="module")
def worked():
    example = tour.worked_example()
    explorer = tb.explore(example.loss, max_nodes=400)
    return example, explorer, explorer.html


def test_the_page_is_one_file_that_fetches_nothing(worked, tmp_path):
    _, explorer, page = worked
    path = explorer.save(tmp_path / "deep" / "bn.html")
    assert path.read_text(encoding="utf-8") == page
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 2  # folded, unfolded
    assert (
        "http://" not in page
        and "https://" not in page
        and "//" not in re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)
    )
    # no attribute that makes a browser load anything
    assert not re.search(r"\s(src|href|xlink:href|srcset|action|data)=", page)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy and "connect-src" not in policy


def test_the_steps_replay_to_the_grads_of_backward(worked):
    example, explorer, page = worked
    data = page_data(page)
    fresh = tour.worked_example()
    fresh.loss.backward()
    order = topological_order(fresh.loss)
    steps = list(tb.backward_steps(tour.worked_example().loss))
    assert data["total"] == len(steps) == sum(1 for node in order if node.parents) == 129
    final = replay(data, data["total"])
    assert len(final) == len(order)  # every node of the loss's graph gets a grad
    for position, node in enumerate(order):
        assert final[position] == f"{node.grad:.4g}" == data["nodes"][position]["grad"]
    # explore ran backward itself but left the graph's grads as they were (zero)
    assert all(node.grad == 0.0 for node in topological_order(example.loss))
    assert [step["text"] for step in data["steps"]] == [str(step) for step in steps]


@pytest.mark.parametrize("k", [1, 2, 7, 60])
def test_after_k_steps_the_shown_grads_are_those_of_the_graph_after_k_steps(worked, k):
    data = page_data(worked[2])
    example = tour.worked_example()
    order = topological_order(example.loss)
    position = {id(node): i for i, node in enumerate(order)}
    reached = set()
    for step in itertools.islice(tb.backward_steps(example.loss), k):
        reached |= {position[id(step.node)]} | {position[id(p.parent)] for p in step.pushes}
    shown = replay(data, k)
    assert set(shown) == reached
    assert shown == {i: f"{order[i].grad:.4g}" for i in reached}


def test_an_input_of_batch_norm_gets_its_three_routes_and_their_sum(worked):
    data = page_data(worked[2])
    fresh = tour.worked_example()
    fresh.loss.backward()
    order = topological_order(fresh.loss)
    x = fresh.x[3][0]  # 104
    record = data["nodes"][order.index(x)]
    names = sorted(name for _, name, _ in record["routes"]["routes"])
    assert names == ["x̂[3,0]", "μ[0,0]", "σ²[0,0]"]
    split = tb.contributions(x, fresh.loss)
    assert record["routes"]["sum"] == f"{x.grad:.4g}" == f"{split.total:.4g}"
    amounts = {name: float(amount) for _, name, amount in record["routes"]["routes"]}
    assert sum(amounts.values()) == pytest.approx(x.grad, abs=2e-4)
    # γ, β, the weights and the interior nodes have no routes
    assert "routes" not in data["nodes"][order.index(fresh.gamma[0])]
    assert "routes" not in data["nodes"][order.index(fresh.loss)]


def test_svg_nodes_carry_their_position_label_and_a_blank_grad(worked):
    example, explorer, page = worked
    order = topological_order(example.loss)
    unfolded = next(view for view in explorer.views if not view.folded)
    boxes = re.findall(r'<g class="node value[^"]*" data-node="(\d+)" data-label="([^"]*)"', page)
    positions = {int(p) for p, _ in boxes}
    assert unfolded.value_nodes == len(order) == len(positions)
    for p, label in boxes:
        assert html.unescape(label) == (order[int(p)].label or "")
    # before any step every grad reads "grad ·", whatever backward would make it
    assert unfolded.svg.count('<text class="grad"') == len(order)
    assert len(re.findall(r'<text class="grad"[^>]*>grad ·</text>', unfolded.svg)) == len(order)
    # γ's nodes lie on its path; x (not downstream of γ) does not
    gamma = order.index(example.gamma[0])
    assert re.search(rf'<g class="node value on-gamma" data-node="{gamma}"', page)
    x = order.index(example.x[0][0])
    assert re.search(rf'<g class="node value" data-node="{x}"', page)


def xss_graph():
    a = Value(2.0, label=XSS)
    b = Value(-3.0, label='</script><script>alert("b")</script>')
    c = Value(1.5, label="&amp; \"q\" 'q' \u2028")
    return ((a * b + c) * a).named("L<b>")


def test_labels_are_escaped_in_the_svg_the_json_and_the_frame():
    root = xss_graph()
    explorer = tb.explore(root)
    page = explorer.html
    assert "<img" not in page and "<b>" not in page and "</script><script>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2  # JSON and code
    data = page_data(page)
    labels = {node["label"] for node in data["nodes"]}
    assert {XSS, '</script><script>alert("b")</script>', "L<b>"} <= labels
    assert "&amp;amp; \"q\" 'q' \u2028" not in labels  # the JSON holds the raw text
    assert "&amp; \"q\" 'q' \u2028" in labels
    assert f'data-label="{html.escape(XSS, quote=True)}"' in page
    frame = explorer._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and frame.count("<") == 2  # <iframe, </iframe>
    assert html.unescape(re.search(r'srcdoc="([^"]*)"', frame).group(1)) == page


def test_between_draws_part_and_the_boxes_still_name_their_nodes():
    example = tour.worked_example()
    order = topological_order(example.loss)
    explorer = tb.explore(example.loss, between=example.gamma, with_inputs=True)
    page = explorer.html
    boxes = re.findall(r'<g class="node value[^"]*" data-node="(\d+)" data-label="([^"]*)"', page)
    drawn = {order[int(p)].label for p, label in boxes}
    assert all(html.unescape(label) == order[int(p)].label for p, label in boxes)
    assert {"γ[0]", "γ·x̂[3,1]", "x̂[3,1]", "y[3,1]", "L"} <= drawn
    assert "μ[0,0]" not in drawn and "x[3,1]" not in drawn
    assert explorer.data["total"] == 129  # the steps still cover the whole graph


def test_precision_is_draws_for_every_number_on_the_page():
    example = tour.worked_example()
    data = tb.explore(example.loss, max_nodes=400, precision=7).data
    fresh = tour.worked_example()
    fresh.loss.backward()
    order = topological_order(fresh.loss)
    final = replay(data, data["total"])
    assert all(final[i] == f"{node.grad:.7g}" for i, node in enumerate(order))
    gamma = order.index(fresh.gamma[0])
    assert data["nodes"][gamma]["grad"] == f"{fresh.gamma[0].grad:.7g}" == "2.081284"
    svg = tb.draw(fresh.loss, max_nodes=400, precision=7).pipe(format="svg").decode()
    assert ">grad 2.081284<" in svg  # the drawing prints the same text


def test_too_large_refuses_with_the_message_of_draw():
    example = tour.worked_example()
    with pytest.raises(GraphTooLargeError) as from_draw:
        tb.draw(example.loss, max_nodes=50)
    with pytest.raises(GraphTooLargeError) as from_explore:
        tb.explore(example.loss, max_nodes=50)
    assert str(from_explore.value) == str(from_draw.value)
    assert "max_nodes=50" in str(from_draw.value)


def test_without_dot_the_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GraphvizNotFoundError, match="apt-get install -y graphviz"):
        tb.explore(xss_graph())


def test_fold_toggle_is_explained_when_only_one_drawing_exists():
    plain = tb.explore(xss_graph())
    assert len(plain.views) == 1 and plain.fold_note.startswith("Nothing to fold")
    assert f'data-note="{html.escape(plain.fold_note, quote=True)}"' in plain.html
    # 64 × 4 unfolded is ~2000 boxes and ops: only the folded drawing, and why
    rng = np.random.default_rng(0)
    x = tb.values(rng.normal(size=(64, 4)).tolist(), "x")
    y = F.batch_norm(x, tb.values([1.0] * 4, "γ"), tb.values([0.0] * 4, "β"))
    loss = Value.sum(v * w for row in y for v, w in zip(row, (1.0, -2.0, 0.5, 3.0)))
    big = tb.explore(loss)
    assert [view.folded for view in big.views] == [True]
    assert "too large to draw" in big.fold_note and "max_nodes=300" in big.fold_note
    assert big.data["total"] == sum(1 for node in topological_order(loss) if node.parents)


def test_a_tensor_graph_replays_to_its_grads():
    x = Tensor(np.array([tour.X1, tour.X2], dtype=np.float64).T, requires_grad=True).named("x")
    gamma = Tensor(np.ones(2), requires_grad=True).named("γ")
    beta = Tensor(np.zeros(2), requires_grad=True).named("β")
    weights = Tensor(np.arange(1.0, 11.0)[:, None] * np.ones(2)).named("w")
    loss = (F.batch_norm(x, gamma, beta) * weights).sum().named("L")
    data = tb.explore(loss).data
    loss.backward()
    order = topological_order(loss)
    final = replay(data, data["total"])
    for position, node in enumerate(order):
        if node.grad is not None:
            assert final[position] == grad_text(node.grad)
    assert final[next(i for i, n in enumerate(order) if n is gamma)] == grad_text(gamma.grad)
    assert (
        data["nodes"][next(i for i, n in enumerate(order) if n is x)]["routes"] is not None
    )  # x: through μ, σ², x̂


@pytest.mark.parametrize(("n", "c", "keep"), [(16, 2, 3), (10, 3, 1), (64, 4, 3), (5, 1, 9)])
def test_the_quick_count_is_the_number_of_nodes_folding_draws(n, c, keep):
    rng = np.random.default_rng(n)
    x = tb.values(rng.normal(size=(n, c)).tolist(), "x")
    y = F.batch_norm(x, tb.values([1.0] * c, "γ"), tb.values([0.0] * c, "β"))
    terms = [
        (Value(float(i + 1), label=f"w[{i}]") * v).named(f"w·y[{i},{j}]")
        for i, row in enumerate(y)
        for j, v in enumerate(row)
    ]
    order = topological_order(Value.sum(terms))
    consumers = consumers_of(order)
    lanes = sample_lanes(order, consumers)
    assert sample_lanes(order) == lanes  # users collected only where needed: same lanes
    folded = fold_samples(order, consumers, keep)
    stages = {}
    assert sample_lanes(order, None, stages) == lanes
    assert all(stages[key] == stage_of(node) for node in order if (key := id(node)) in stages)
    drawn = _count(folded.shown) + len(folded.groups)
    assert folded_size(order, lanes, keep) == folded_size(order, lanes, keep, stages) == drawn


def test_cli_explore_writes_the_worked_example(tmp_path, capsys):
    target = tmp_path / "page.html"
    assert cli_main(["explore", "--out", str(target)]) == 0
    assert f"wrote {target}" in capsys.readouterr().out
    data = page_data(target.read_text(encoding="utf-8"))
    assert data["total"] == 129 and data["root"] == "L"
    assert {node["label"] for node in data["nodes"]} >= {"x[3,0]", "γ[1]", "β[0]", "L"}
