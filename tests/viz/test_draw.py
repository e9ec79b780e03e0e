"""Seeing the graph: draw, render, backward_steps, tree, contributions."""

import html
import math
import re

import graphviz
import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, Value
from tinybn import functional as F
from tinybn.autograd import topological_order
from tinybn.fast import kernels
from tinybn.viz import GraphTooLargeError, GraphvizNotFoundError, render
from tinybn.viz.nodes import BN_STAGES, index
from tinybn.viz.nodes import stage as stage_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EPS = 1e-5


def scalar_bn(n, c, seed=0):
    """Labelled BN graph on scalars with a weighted-sum loss L = Σ w_ij y_ij."""
    rng = np.random.default_rng(seed)
    x = tb.values(rng.normal(size=(n, c)).tolist(), "x")
    gamma = tb.values([1.0 + 0.5 * j for j in range(c)], "γ")
    beta = tb.values([0.1 * j for j in range(c)], "β")
    y = F.batch_norm(x, gamma, beta, eps=EPS)
    w = rng.normal(size=(n, c))
    loss = Value.sum([v * float(w[i, j]) for i, row in enumerate(y) for j, v in enumerate(row)])
    return x, gamma, beta, y, w, loss.named("L")


def tensor_bn(n=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.normal(size=(n, c)), requires_grad=True, label="x")
    gamma = Tensor(np.linspace(0.5, 1.5, c), requires_grad=True, label="gamma")
    beta = Tensor(np.linspace(-1, 1, c), requires_grad=True, label="beta")
    w = Tensor(rng.normal(size=(n, c)), label="w")
    loss = (F.batch_norm(x, gamma, beta, eps=EPS) * w).sum().named("loss")
    return x, gamma, beta, loss


def fields(line):
    """The texts of a value box's cells, in order: [label, (shape,) data, grad]."""
    return [html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", line)]


def boxes(source):
    """The first field (the label) of every value box in a piece of DOT text."""
    return [fields(line)[0] for line in source.splitlines() if "label=<<table" in line]


def value_line(source, label):
    """The DOT line of the value box whose first field is ``label``."""
    lines = [line for line in source.splitlines() if "label=<<table" in line]
    lines = [line for line in lines if fields(line)[0] == label]
    assert len(lines) == 1, (label, lines)
    return lines[0]


def drawn_nodes(source):
    return len(re.findall(r"^\s*\S+ \[label=", source, flags=re.M))


def summaries(source):
    """{"x̂ [·,0]": hidden node count, ...} of the "× k more samples" notes of a folded graph."""
    found = re.findall(
        r'label="([^"]*?)\\n× (\d+) more samples(?:\\n\((\d+) nodes not drawn\))?"', source
    )
    return {where: int(nodes or samples) for where, samples, nodes in found}


def all_grads(root):
    return [
        (node.grad.copy() if isinstance(node.grad, np.ndarray) else node.grad)
        for node in topological_order(root)
    ]


# -- draw ---------------------------------------------------------------------------------


def test_dot_source_holds_gamma_and_beta_with_their_grads():
    _, gamma, beta, _, _, loss = scalar_bn(5, 2)
    loss.backward()
    source = tb.draw(loss).source
    for p in [*gamma, *beta]:
        line = value_line(source, p.label)
        assert f"data {p.data:.4g}" in line and f"grad {p.grad:.4g}" in line
        assert "style=filled" in line and "fillcolor" in line
    assert "gradient path to γ" in source and "gradient path to β" in source


def test_gradient_paths_to_gamma_and_beta_are_highlighted_edge_by_edge():
    n, c = 5, 2
    *_, loss = scalar_bn(n, c)
    loss.backward()
    source = tb.draw(loss).source
    edges = [line for line in source.splitlines() if "->" in line]
    to_gamma = [e for e in edges if "darkorange" in e]
    to_beta = [e for e in edges if "royalblue" in e]
    # γ path per element: γ→op, op→γ·x̂, γ·x̂→op, op→y, y→op, op→w·y, w·y→Σ; plus Σ→L
    assert len(to_gamma) == 7 * n * c + 1
    # β path per element: β→op, op→y, y→op, op→w·y, w·y→Σ; plus Σ→L
    assert len(to_beta) == 5 * n * c + 1
    # μ and σ² do not lie on a path from γ or β to the loss
    assert not any("darkorange" in e or "royalblue" in e for e in edges if "mean" in e)


def test_batch_norm_stages_are_clusters_named_by_role():
    n, c = 4, 2
    *_, loss = scalar_bn(n, c)
    graph = tb.draw(loss)
    clusters = re.findall(r"subgraph (cluster_\d+) \{\n(.*?)\n\t\}", graph.source, flags=re.S)
    labels = {}
    for _, body in clusters:
        found = re.search(r'\blabel=(?:"([^"]*)"|(\S+))', body)
        labels[found.group(1) or found.group(2)] = body
    assert set(labels) == set(BN_STAGES)
    # every x̂ element sits in the x̂ box, and only there
    assert len(boxes(labels["x̂"])) == n * c
    assert len(boxes(labels["μ"])) == c
    assert "x̂[3,1]" in boxes(labels["x̂"]) and "x̂[3,1]" not in boxes(labels["y"])


def test_value_nodes_show_data_and_grad_and_op_nodes_show_the_op():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b).named("c")
    c.backward()
    source = tb.draw(c, rankdir="TB").source
    assert "rankdir=TB" in source
    assert fields(value_line(source, "a")) == ["a", "data 2", "grad -3"]
    assert fields(value_line(source, "c")) == ["c", "data -6", "grad 1"]
    assert re.search(r'op \[label="×" shape=ellipse', source)
    # the fields are stacked top to bottom (TB) or side by side (LR), like micrograd's boxes
    assert value_line(source, "a").count("<tr>") == 3
    assert value_line(tb.draw(c).source, "a").count("<tr>") == 1


def test_draw_rejects_bad_options():
    a = Value(1.0)
    with pytest.raises(ValueError, match="rankdir"):
        tb.draw(a, rankdir="RL")
    with pytest.raises(ValueError, match="collapse"):
        tb.draw(a, collapse="sometimes")
    with pytest.raises(ValueError, match="samples_shown"):
        tb.draw(a, samples_shown=0)


def test_between_draws_only_the_paths_from_the_chosen_nodes_to_the_root():
    n, c = 4, 2
    _, gamma, beta, *_, loss = scalar_bn(n, c)
    source = tb.draw(loss, between=gamma[0]).source
    shown = boxes(source)
    assert "γ[0]" in shown and "L" in shown
    for i in range(n):
        assert f"γ·x̂[{i},0]" in shown and f"y[{i},0]" in shown
        assert f"γ·x̂[{i},1]" not in shown and f"x̂[{i},0]" not in shown
    assert "β[" not in source and "μ[" not in source
    both = boxes(tb.draw(loss, between=[gamma[1], beta[1]]).source)
    assert "β[1]" in both and "γ[1]" in both and "γ[0]" not in both
    with pytest.raises(ValueError, match="not in the graph"):
        tb.draw(loss, between=Value(3.0, label="elsewhere"))
    # with_inputs adds the direct inputs of path nodes: x̂ (times γ), β (plus γ·x̂), but
    # not what those were computed from
    context = tb.draw(loss, between=gamma[0], with_inputs=True).source
    for i in range(n):
        assert f"x̂[{i},0]" in boxes(context)
    assert "β[0]" in boxes(context) and "β[1]" not in boxes(context)
    assert "x − μ[0,0]" not in boxes(context) and "x̂[0,1]" not in boxes(context)
    # x̂ is drawn without the ÷ that made it, since its inputs are not in the drawing
    assert context.count('[label="÷"') == 0


def test_node_limit_refuses_with_a_clear_message_instead_of_hanging():
    node = Value(0.5, label="start")
    for _ in range(20_000):  # a deep chain without per-sample structure to fold
        node = node.tanh()
    with pytest.raises(GraphTooLargeError, match=r"max_nodes=300") as error:
        tb.draw(node)
    assert isinstance(error.value, ValueError)
    assert "between=" in str(error.value) and "tree" in str(error.value)
    with pytest.raises(GraphTooLargeError, match="max_nodes=7"):
        tb.draw(Value.sum([Value(float(i)) for i in range(6)]), max_nodes=7)
    # at the limit it draws: 6 leaves + Σ box + its op ellipse = 8 nodes
    assert (
        drawn_nodes(tb.draw(Value.sum([Value(float(i)) for i in range(6)]), max_nodes=8).source)
        == 8
    )


def test_bn_64_by_4_is_folded_to_a_few_samples_per_feature_and_renders(tmp_path):
    n, c = 64, 4
    x, gamma, beta, y, _, loss = scalar_bn(n, c)
    loss.backward()
    full = len(topological_order(loss))
    graph = tb.draw(loss)  # collapse="auto": the whole graph is far over max_nodes
    source = graph.source
    assert full > 2000
    assert drawn_nodes(source) <= 300
    shown = boxes(source)
    folded = summaries(source)
    for j in range(c):
        for stage in ("x", "x − μ", "(x − μ)²", "x̂", "γ·x̂", "y"):  # one note per column
            assert folded[f"{stage} [·,{j}]"] == 61
        for i in range(3):
            assert f"x̂[{i},{j}]" in shown and f"x[{i},{j}]" in shown
        assert f"x̂[3,{j}]" not in shown and f"x[63,{j}]" not in shown
        assert f"μ[0,{j}]" in shown and f"σ²[0,{j}]" in shown
        assert f"γ[{j}]" in shown and f"β[{j}]" in shown
    # 64·4 elements x 8 nodes each (x, x−μ, (x−μ)², x̂, γ·x̂, y, weight, product), 3 of 64 shown
    assert len(folded) == c * 8 and sum(folded.values()) == 61 * c * 8
    path = render(graph, tmp_path / "bn64.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    two = tb.draw(loss, samples_shown=2).source
    assert summaries(two)["x̂ [·,0]"] == 62 and "x̂[2,0]" not in boxes(two)
    with pytest.raises(GraphTooLargeError):
        tb.draw(loss, collapse=False)


def test_each_note_is_drawn_in_the_column_of_the_values_it_continues():
    """Left to right, a note "x̂ [·,j] × k more samples" has the x position of the drawn
    x̂[i,j] boxes (not of their ÷ ops, nor at the far left of the picture)."""
    *_, loss = scalar_bn(10, 2)
    loss.backward()
    graph = tb.draw(loss, collapse=True)
    plain = graph.pipe(format="plain").decode()
    x_of = {
        line.split()[1]: float(line.split()[2])
        for line in plain.splitlines()
        if line.startswith("node ")
    }
    label_of = dict(re.findall(r'^\s*(\S+) \[label="([^"]*?)\\n×', graph.source, flags=re.M))
    note_x = {label: x_of[node_id] for node_id, label in label_of.items()}
    # the DOT id of each value box, by the label in its first cell
    first_cell = r"^\s*(\S+) \[label=<<table[^>]*><tr><td>([^<]*)</td>"
    box_of = {label: node_id for node_id, label in re.findall(first_cell, graph.source, flags=re.M)}
    for j in range(2):
        for stage in ("x", "x̂", "y"):
            assert note_x[f"{stage} [·,{j}]"] == pytest.approx(x_of[box_of[f"{stage}[0,{j}]"]])


def test_the_same_graph_gives_the_same_dot_source_on_every_build():
    # DOT ids come from the topological order, not from memory addresses, so a rebuilt
    # graph (new objects at new addresses) is drawn identically
    sources = []
    for _ in range(2):
        *_, loss = scalar_bn(10, 2)
        loss.backward()
        sources.append(tb.draw(loss, collapse=True).source)
    assert sources[0] == sources[1]


def test_folding_also_works_on_unlabelled_inputs():
    rng = np.random.default_rng(1)
    x = [[Value(float(v)) for v in row] for row in rng.normal(size=(40, 2))]
    ys = F.batch_norm(x, [Value(1.0, label="γ[0]"), Value(1.0, label="γ[1]")], None)
    loss = Value.sum([v * (i + 1.0) for i, row in enumerate(ys) for v in row])
    source = tb.draw(loss, collapse=True).source
    folded = summaries(source)
    assert folded["x̂ [·,0]"] == 37 and folded["x̂ [·,1]"] == 37
    # the unlabelled inputs x and loss weights of the hidden samples are folded too, into
    # notes named by what made them: both are leaves, the products are "×" results
    assert folded["leaves [·,0]"] == 2 * 37 and folded["× results [·,1]"] == 37
    assert "leaves [·,0]\\n× 37 more samples\\n(74 nodes not drawn)" in source
    assert sum(folded.values()) == 37 * 2 * 7  # x, x−μ, (x−μ)², x̂, γ·x̂, weight, product


def per_sample_weighted_bn(n=16, c=2):
    """BN on scalars with one labelled loss weight per sample: L = Σ_ij w[i]·y[i,j]."""
    rng = np.random.default_rng(0)
    x = tb.values(rng.standard_normal((n, c)).tolist(), "x")
    gamma, beta = tb.values([1.0] * c, "γ"), tb.values([0.0] * c, "β")
    y = F.batch_norm(x, gamma, beta)
    w = tb.values([float(i + 1) for i in range(n)], "w")
    loss = Value.sum(w[i] * v for i, row in enumerate(y) for v in row).named("loss")
    loss.backward()
    return loss


def test_per_sample_weights_are_folded_with_their_sample():
    """ "w[i]" has one index and serves every feature of sample i: it is folded with
    sample i into a summary of its own, instead of being drawn with dangling edges."""
    n, c = 16, 2
    source = tb.draw(per_sample_weighted_bn(n, c), collapse=True).source
    shown = boxes(source)
    assert [label for label in shown if label.startswith("w[")] == ["w[0]", "w[1]", "w[2]"]
    folded = summaries(source)
    assert folded["w [·]"] == 13
    for j in range(c):  # x, x−μ, (x−μ)², x̂, γ·x̂, y, product per hidden sample
        for stage in ("x", "x − μ", "(x − μ)²", "x̂", "γ·x̂", "y", "× results"):
            assert folded[f"{stage} [·,{j}]"] == 13
    assert len(folded) == 1 + 7 * c


@pytest.mark.parametrize("rankdir", ["LR", "TB"])
def test_collapsed_graph_with_per_sample_weights_renders(tmp_path, rankdir):
    """Regression: `dot` failed with "lost ... edge" on this graph (flat edges touching
    record-shaped nodes in clusters); value boxes are HTML-like tables now."""
    graph = tb.draw(per_sample_weighted_bn(), rankdir=rankdir, collapse=True)
    assert "shape=record" not in graph.source
    path = graph.render(str(tmp_path / "collapsed"), format="png")
    with open(path, "rb") as picture:
        assert picture.read(8) == PNG_MAGIC


def test_labels_with_html_and_record_characters_are_shown_as_written(tmp_path):
    a = Value(1.5, label="a<b & {c|d}")
    loss = (a * a).named('"loss"')
    loss.backward()
    graph = tb.draw(loss)
    assert fields(value_line(graph.source, "a<b & {c|d}")) == ["a<b & {c|d}", "data 1.5", "grad 3"]
    assert fields(value_line(graph.source, '"loss"'))[0] == '"loss"'
    svg = render(graph, tmp_path / "odd.svg").read_text(encoding="utf-8")
    assert "a&lt;b &amp; {c|d}" in svg


def test_tensor_graph_nodes_show_shape_and_summaries():
    x, gamma, beta, loss = tensor_bn()
    loss.backward()
    source = tb.draw(loss).source
    line = value_line(source, "gamma")
    assert "(3,)" in line and "data [0.5, 1, 1.5]" in line
    assert "grad [" + ", ".join(f"{g:.4g}" for g in gamma.grad) + "]" in line
    x_line = value_line(source, "x")
    assert "(8, 3)" in x_line and f"range [{x.data.min():.4g}, {x.data.max():.4g}]" in x_line
    assert fields(value_line(source, "x̂"))[:2] == ["x̂", "(8, 3)"]
    assert fields(value_line(source, "μ"))[:2] == ["μ", "(1, 3)"]
    assert "darkorange" in source and "royalblue" in source
    assert source.count("op [label=mean shape=ellipse") == 2  # μ and σ²
    assert source.count('op [label="√" shape=ellipse') == 1


# -- render -------------------------------------------------------------------------------


def test_render_writes_a_real_png_and_svg_and_the_dot_source(tmp_path):
    _, gamma, *_, loss = scalar_bn(4, 2)
    loss.backward()
    png = render(loss, tmp_path / "bn.png")
    assert png == tmp_path / "bn.png" and png.read_bytes()[:8] == PNG_MAGIC
    assert "γ[0]" in (tmp_path / "bn.gv").read_text(encoding="utf-8")
    svg = render(loss, tmp_path / "pictures" / "bn", format="svg", rankdir="TB")
    assert svg == tmp_path / "pictures" / "bn.svg"
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "γ[0]" in text
    with pytest.raises(ValueError, match="unknown format"):
        render(loss, tmp_path / "bn.xyz")


def test_missing_dot_gives_the_install_hint_and_still_writes_the_source(tmp_path, monkeypatch):
    *_, loss = scalar_bn(3, 2)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no dot anywhere on PATH
    with pytest.raises(GraphvizNotFoundError) as error:
        render(loss, tmp_path / "bn.png")
    message = str(error.value)
    assert "apt-get install -y graphviz" in message and "brew install graphviz" in message
    assert "conda install graphviz" in message and str(tmp_path / "bn.gv") in message
    assert error.value.source_path == tmp_path / "bn.gv"
    assert "β[1]" in (tmp_path / "bn.gv").read_text(encoding="utf-8")
    assert not (tmp_path / "bn.png").exists()


def test_dot_failing_to_start_is_reported_the_same_way(tmp_path, monkeypatch):
    *_, loss = scalar_bn(3, 2)

    def not_found(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz, "render", not_found)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install -y graphviz"):
        render(loss, tmp_path / "bn.svg")
    assert (tmp_path / "bn.gv").exists()


# -- backward_steps -----------------------------------------------------------------------


def test_backward_steps_end_with_exactly_the_grads_of_backward():
    *_, loss = scalar_bn(6, 3)
    steps = list(tb.backward_steps(loss))
    stepped = all_grads(loss)
    loss.zero_grad()
    loss.backward()
    assert stepped == all_grads(loss)  # the same arithmetic: equal, not just close
    interior = [node for node in topological_order(loss) if node.parents]
    assert [s.node for s in steps] == interior[::-1]
    assert [s.number for s in steps] == list(range(1, len(interior) + 1))


def test_backward_steps_accumulate_like_backward():
    *_, loss = scalar_bn(4, 2)
    loss.backward()
    once = all_grads(loss)
    for _ in tb.backward_steps(loss):
        pass
    stepped_twice = all_grads(loss)
    loss.zero_grad()
    loss.backward(retain_graph=True)
    loss.backward()
    assert all_grads(loss) == pytest.approx([2 * g for g in once])
    assert stepped_twice == pytest.approx(all_grads(loss))


def test_each_step_shows_the_rule_and_what_it_added():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b).named("c")
    d = (c + a).named("d")
    first, second = tb.backward_steps(d)
    assert first.node is d and first.grad == 1.0
    assert [p.parent for p in first.pushes] == [c, a]
    assert "d = u + v   with u = c, v = a" in str(first)
    assert "→ c (u): ∂(u + v)/∂u = 1" in str(first) and "→ a (v): ∂(u + v)/∂v = 1" in str(first)
    assert second.node is c and second.grad == 1.0
    text = str(second)
    assert "c = u × v   with u = a, v = b" in text
    assert "→ a (u): ∂(u·v)/∂u = v = -3" in text and "adds -3 × 1 = -3" in text
    assert "→ b (v): ∂(u·v)/∂v = u = 2" in text and "adds 2 × 1 = 2" in text
    assert second.pushes[0].added == -3.0 and second.pushes[0].grad_after == 1.0 - 3.0
    assert (a.grad, b.grad) == (-2.0, 2.0)  # d(ab + a)/da = b + 1, d/db = a


def test_steps_of_powers_name_their_rule():
    a = Value(3.0, label="a")
    (square,) = tb.backward_steps(a**2)
    assert "∂(u^2)/∂u = 2·u^(2 − 1) = 6" in str(square) and square.pushes[0].added == 6.0
    a.zero_grad()
    (power_of_two,) = tb.backward_steps(2**a)
    assert "∂(2^u)/∂u = 2^u·ln 2" in str(power_of_two)
    assert power_of_two.pushes[0].added == pytest.approx(8 * math.log(2))


def test_step_text_lists_wide_reductions_briefly_and_fully_on_request():
    xs = [Value(float(i), label=f"v[{i}]") for i in range(20)]
    m = Value.mean(xs)
    (step,) = tb.backward_steps(m)
    assert "1/n = 1/20" in str(step) and "… and 12 more input(s)" in str(step)
    assert len(step.text(max_parents=None).splitlines()) == 22  # header, formula, 20 inputs
    assert all(push.added == pytest.approx(0.05) for push in step.pushes)


def test_backward_steps_on_tensors_match_backward():
    x, gamma, beta, loss = tensor_bn()
    steps = list(tb.backward_steps(loss))
    stepped = [x.grad.copy(), gamma.grad.copy(), beta.grad.copy()]
    loss.zero_grad()
    loss.backward()
    for got, want in zip(stepped, [x.grad, gamma.grad, beta.grad]):
        np.testing.assert_array_equal(got, want)
    texts = [str(s) for s in steps]
    assert any("∂(mean uᵢ)/∂uᵢ = 1/n" in t for t in texts)
    assert any("(8, 3)" in t for t in texts)
    with pytest.raises(ValueError, match="single-element"):
        next(tb.backward_steps(x * 2.0))
    with pytest.raises(ValueError, match="does not require grad"):
        next(tb.backward_steps(Tensor(np.ones(1))))


# -- tree ---------------------------------------------------------------------------------


def test_tree_shows_data_and_grad_of_each_node():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = (a * b).named("c")
    d = (c + a).named("d")
    d.backward()
    lines = tb.tree(d).splitlines()
    assert lines[0] == "d  data -4  grad 1  ← +"
    assert lines[1] == "├─ c  data -6  grad 1  ← ×"
    assert lines[2] == "│  ├─ a  data 2  grad -2"
    assert lines[3] == "│  └─ b  data -3  grad 2"
    assert lines[4] == "└─ a  data 2  grad -2"


def test_tree_limits_depth_width_and_shared_nodes():
    *_, loss = scalar_bn(10, 2)
    loss.backward()
    text = tb.tree(loss, depth=3)
    assert "β[0]" in text and "deeper than depth=3" in text
    assert "… 14 more input(s)" in text  # the loss sums 20 products, 6 are listed
    assert "(inputs shown above)" in tb.tree(loss, depth=12)
    assert len(tb.tree(loss, depth=50, max_lines=40).splitlines()) == 41
    chain = Value(0.1)
    for _ in range(20_000):  # deeper than Python's recursion limit
        chain = chain + 1.0
    assert len(tb.tree(chain, depth=30_000, max_lines=3000).splitlines()) == 3001


def test_tree_of_a_tensor_graph_shows_shapes():
    x, *_, loss = tensor_bn()
    loss.backward()
    text = tb.tree(loss, depth=10)
    assert "x (8, 3)" in text and "gamma (3,)" in text and "σ² (1, 3)" in text


# -- contributions ------------------------------------------------------------------------


def test_batch_norm_input_gradient_has_exactly_three_routes_matching_the_paper():
    n, c = 6, 2
    x, gamma, beta, y, w, loss = scalar_bn(n, c)
    loss.backward()
    nodes = {node.label: node for node in topological_order(loss)}
    m = n
    for i, j in [(0, 0), (4, 1)]:
        xi = x[i][j]
        routes = tb.contributions(xi, loss)
        parts = routes.by_role()
        assert set(parts) == {"x̂", "μ", "σ²"}
        assert routes.total == pytest.approx(xi.grad, rel=1e-12, abs=1e-12)
        mu, var = nodes[f"μ[0,{j}]"], nodes[f"σ²[0,{j}]"]
        xhat = nodes[f"x̂[{i},{j}]"]
        # Ioffe & Szegedy, section 3: the three terms of ∂L/∂xᵢ
        assert parts["x̂"] == pytest.approx(xhat.grad / math.sqrt(var.data + EPS))
        assert parts["σ²"] == pytest.approx(var.grad * 2 * (xi.data - mu.data) / m)
        assert parts["μ"] == pytest.approx(mu.grad / m)
        text = str(routes)
        assert "through x̂" in text and "through μ" in text and "through σ²" in text


def test_direct_contributions_are_one_per_consumer_edge():
    n, c = 5, 2
    _, gamma, *_, loss = scalar_bn(n, c)
    loss.backward()
    routes = tb.contributions(gamma[1], loss)
    assert [stage_of(r.via) for r in routes.routes] == ["γ·x̂"] * n
    assert sorted(index(r.via) for r in routes.routes) == [(i, 1) for i in range(n)]
    assert routes.total == pytest.approx(gamma[1].grad)
    a = Value(3.0, label="a")
    square = a * a  # the same node used twice by one consumer: two edges
    square.backward()
    both = tb.contributions(a, square)
    assert [r.amount for r in both.routes] == [3.0, 3.0] and both.total == a.grad == 6.0
    with pytest.raises(ValueError, match="not in the graph"):
        tb.contributions(Value(1.0), square)


def test_tensor_contributions_split_x_grad_into_the_three_routes():
    x, *_, loss = tensor_bn()
    loss.backward()
    routes = tb.contributions(x, loss)
    assert set(routes.by_role()) == {"x̂", "μ", "σ²"}
    np.testing.assert_allclose(routes.total, x.grad, atol=1e-12)
    # the μ route is ∂L/∂μ / m, the same for every sample
    mu_route = routes.by_role()["μ"]
    np.testing.assert_allclose(mu_route, np.broadcast_to(mu_route[0], mu_route.shape))
    x2, *_, loss2 = tensor_bn()
    with pytest.raises(ValueError, match="backward has not run on loss"):
        tb.contributions(x2, loss2)


def test_named_nn_parameters_are_highlighted():
    from tinybn import nn

    model = tb.viz.name_parameters(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)))
    assert [p.label for p in model.parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    x = Tensor(np.random.default_rng(0).normal(size=(6, 2)), label="x")
    loss = (model(x) * Tensor(np.arange(18.0).reshape(6, 3))).sum()
    loss.backward()
    source = tb.draw(loss).source
    assert "gradient path to 0.weight, 1.weight" in source
    assert "gradient path to 0.bias, 1.bias" in source
    line = value_line(source, "1.weight")
    assert "(3,)" in line and "fillcolor" in line


def test_steps_explain_the_fused_batch_norm_node():
    x, gamma, beta, _ = tensor_bn()
    y, _, _ = kernels.batch_norm_with_stats(x, gamma, beta)
    loss = (y * Tensor(np.arange(24.0).reshape(8, 3))).sum()
    texts = [str(step) for step in tb.backward_steps(loss)]
    fused = next(text for text in texts if "= batch_norm(u₁, u₂, u₃)   with u₁ = x" in text)
    assert "→ x (u₁): closed form" in fused and "Σ over the batch of G·x̂" in fused
    assert "Σ over the batch of G;" in fused


def test_digraph_render_without_dot_names_the_fix_and_keeps_the_source(tmp_path, monkeypatch):
    """``tb.draw(loss).render(...)`` (graphviz's own API) explains a missing `dot` too."""
    a = tb.Value(2.0, label="a")
    loss = (a * a).named("loss")
    graph = tb.draw(loss)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(tb.viz.GraphvizNotFoundError, match="apt-get install -y graphviz") as info:
        graph.render(str(tmp_path / "bn"), format="png")
    assert info.value.source_path.exists()
    assert "loss" in info.value.source_path.read_text()
    assert loss._repr_svg_() is None  # Jupyter falls back to the text repr
