"""The one chain-rule core (node.pushes / node.push_grad), the Stepper, roles and tb.nodes."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinybn as tb
from tinybn import Tensor, Value
from tinybn import functional as F
from tinybn.autograd import topological_order
from tinybn.functional import NORM_STAGES

X1 = [33, 72, 40, 104, 52, 56, 89, 24, 52, 73]
X2 = [9, 8, 7, 10, 5, 8, 7, 9, 8, 7]


def worked_example():
    """The lecture notes' batch, γ = 1, β = 0, and L = Σ (i + 1)·y[i, j]."""
    x = tb.values([[a, b] for a, b in zip(X1, X2)], "x")
    gamma, beta = tb.values([1.0, 1.0], "γ"), tb.values([0.0, 0.0], "β")
    y = F.batch_norm(x, gamma, beta, eps=1e-5)
    loss = Value.sum((i + 1) * v for i, row in enumerate(y) for v in row).named("L")
    return x, gamma, beta, loss


def tensor_example(seed=0):
    rng = np.random.default_rng(seed)
    x = Tensor(rng.normal(size=(6, 3)), requires_grad=True, label="x")
    gamma = Tensor(rng.uniform(0.5, 1.5, size=3), requires_grad=True, label="gamma")
    beta = Tensor(rng.normal(size=3), requires_grad=True, label="beta")
    weights = Tensor(rng.normal(size=(6, 3)), label="w")
    loss = (F.batch_norm(x, gamma, beta) * weights).sum().named("L")
    return x, gamma, beta, loss


def grads(root):
    return [
        np.array(n.grad) if isinstance(n.grad, np.ndarray) else n.grad
        for n in topological_order(root)
    ]


# -- random scalar graphs (hypothesis) -------------------------------------------------------

UNARY = {
    "tanh": lambda v: v.tanh(),
    "sigmoid": lambda v: v.sigmoid(),
    "relu": lambda v: v.relu(),
    "exp": lambda v: (v * 0.1).exp(),
    "square": lambda v: v**2,
    "neg": lambda v: -v,
}
BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@st.composite
def scalar_graphs(draw):
    """A random DAG over a few leaves: each new node applies an op to earlier nodes."""
    leaves = [
        Value(draw(st.floats(-2, 2, allow_nan=False)), label=f"x{i}")
        for i in range(draw(st.integers(1, 4)))
    ]
    pool = list(leaves)
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["unary", "binary", "sum"]))
        pick = st.integers(0, len(pool) - 1)
        if kind == "unary":
            pool.append(UNARY[draw(st.sampled_from(sorted(UNARY)))](pool[draw(pick)]))
        elif kind == "binary":
            op = BINARY[draw(st.sampled_from(sorted(BINARY)))]
            pool.append(op(pool[draw(pick)], pool[draw(pick)]))
        else:
            chosen = draw(st.lists(pick, min_size=1, max_size=4))
            pool.append(Value.sum(pool[i] for i in chosen))
    root = Value.sum(pool[len(leaves) :] or pool)
    return leaves, root


@settings(max_examples=60, deadline=None)
@given(scalar_graphs())
def test_stepping_a_random_graph_gives_backwards_grads_and_pushes_add_up(graph):
    leaves, root = graph
    root.backward()
    want = grads(root)
    root.zero_grad()
    stepper = tb.backward_steps(root)
    received: dict[int, float] = {}
    steps = list(stepper)
    assert len(steps) == stepper.total == sum(1 for n in topological_order(root) if n.parents)
    for step in steps:
        for push in step.pushes:
            received[id(push.parent)] = received.get(id(push.parent), 0.0) + push.added
    assert grads(root) == want  # the same arithmetic: equal, not just close
    # every grad is exactly the sum of what the steps pushed to it (the root: the seed)
    for node in topological_order(root):
        expected = 1.0 if node is root else received.get(id(node), 0.0)
        assert node.grad == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("engine", ["scalar", "tensor"])
def test_run_all_on_the_bn_graph_equals_backward_on_both_engines(engine):
    x, gamma, beta, loss = worked_example() if engine == "scalar" else tensor_example()
    loss.backward()
    want = grads(loss)
    loss.zero_grad()
    stepper = tb.backward_steps(loss)
    last = stepper.run(stepper.total)
    assert last.number == stepper.total and stepper.done
    for got, expected in zip(grads(loss), want):
        np.testing.assert_array_equal(got, expected)
    # contributions' routes add up to x's grad, through x̂, μ and σ²
    x0 = x[0][0] if engine == "scalar" else x
    routes = tb.contributions(x0, loss)
    assert set(routes.by_role()) == {"x̂", "μ", "σ²"}
    np.testing.assert_allclose(routes.total, x0.grad, rtol=1e-9, atol=1e-12)


# -- the Stepper in a REPL --------------------------------------------------------------------


def test_stepper_repr_step_run_goto_reset_and_current():
    x, gamma, beta, loss = worked_example()
    st_ = tb.backward_steps(loss)
    total = st_.total
    assert repr(st_) == f"<Stepper: step 0 of {total}, next: L (Σ of 20 inputs)>"
    assert st_.current is None and gamma[0].grad == 0.0
    first = next(st_)
    assert first.node is loss and st_.current is first and st_.position == 1
    assert repr(st_).startswith(f"<Stepper: step 1 of {total}, next: ")
    third = st_.run(2)
    assert third.number == 3 and st_.position == 3
    st_.run()
    assert repr(st_) == f"<Stepper: step {total} of {total}, done>"
    assert gamma[0].grad == pytest.approx(2.081284, abs=1e-6) and beta[0].grad == 55.0
    with pytest.raises(StopIteration):
        st_.step()
    back = st_.goto(3)  # replayed from zeroed grads: β has not been reached yet
    assert back.number == 3 and beta[0].grad == 0.0 and loss.grad == 1.0
    st_.reset()
    assert st_.position == 0 and st_.current is None
    assert all(n.grad == 0.0 for n in topological_order(loss))
    with pytest.raises(ValueError, match="between 0 and"):
        st_.goto(total + 1)
    with pytest.raises(ValueError, match=">= 0"):
        st_.run(-1)


def test_step_text_names_inputs_by_label_and_never_reuses_a_users_letter():
    # micrograd's own example: labels a … f; the rule letters must not be a or b
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = (a * b).named("e")
    d = (e + c).named("d")
    f = Value(-2.0, label="f")
    L = (d * f).named("L")
    first = next(tb.backward_steps(L))
    text = str(first)
    assert "L = u × v   with u = d, v = f" in text
    assert "→ d (u): ∂(u·v)/∂u = v = -2" in text and "→ f (v): ∂(u·v)/∂v = u = 4" in text
    # a graph that uses u and v as labels gets other letters
    u, v = Value(3.0, label="u"), Value(4.0, label="v")
    text = str(next(tb.backward_steps((u * v).named("w"))))
    assert "w = p × q   with p = u, q = v" in text and "∂(p·q)/∂p = q = 4" in text


def test_stepper_draw_shows_filled_grads_and_blanks_the_rest():
    x, gamma, beta, loss = worked_example()
    st_ = tb.backward_steps(loss)
    st_.run(2)
    source = st_.draw(collapse=False, max_nodes=5000).source
    current = st_.current.node
    blank = source.count("grad ·")
    assert blank > 0 and "color=red" in source and "penwidth=3" in source
    # exactly the nodes this pass has reached show a number
    shown = re.findall(r"<td>grad (-?[0-9.e+-]+)</td>", source)
    assert len(shown) >= 2 and f"grad {current.grad:.4g}" in source
    st_.run()
    assert "grad ·" not in st_.draw(collapse=False, max_nodes=5000).source


# -- roles, ε and tb.nodes --------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["scalar", "tensor"])
def test_normalization_stages_are_roles_on_the_nodes_and_eps_is_named(engine):
    _, _, _, loss = worked_example() if engine == "scalar" else tensor_example()
    order = topological_order(loss)
    roles = {n.role for n in order} - {None}
    assert roles == set(NORM_STAGES)
    for node in order:
        if node.role is not None and node.role != "eps":
            assert node.label.split("[")[0] == NORM_STAGES[node.role][0]
    (eps,) = [n for n in order if n.role == "eps"]  # ONE ε node, shared by every feature
    assert eps.label == "ε" and float(np.asarray(eps.data)) == 1e-5 and not eps.parents


def test_nodes_looks_labels_up_in_unicode_or_ascii():
    x, gamma, beta, loss = worked_example()
    nodes = tb.nodes(loss)
    assert nodes["xhat[3,0]"] is nodes["x̂[3,0]"]
    assert nodes["x - mu[0,0]"] is nodes["x − μ[0,0]"] is nodes["x-mu[0,0]"]
    assert nodes["sqrt(var + eps)[0,1]"] is nodes["√(σ² + ε)[0,1]"]
    assert nodes["mu[0,1]"].data == pytest.approx(7.8)
    assert nodes["var[0,0]"].data == pytest.approx(565.65)
    assert nodes["eps"] is nodes["ε"] and nodes["gamma[1]"] is gamma[1]
    assert nodes["(x - mu)^2[4,1]"].role == "squared"
    assert "x̂[3,0]" in nodes and len(nodes) > 100
    with pytest.raises(KeyError, match="no node labelled 'xhat\\[99,0\\]'"):
        nodes["xhat[99,0]"]
    with pytest.raises(TypeError, match="expected a Value or a Tensor"):
        tb.nodes([1, 2])
    rows = tb.nodes(F.batch_norm(tb.values([[1.0], [3.0]], "x")))  # rows of y: all their graphs
    assert rows["xhat[1,0]"].data == pytest.approx(1.0, abs=1e-5) and rows["x[0,0]"].role is None


def test_the_three_former_copies_of_the_chain_rule_are_gone():
    """viz applies no backward rule of its own and touches no private engine attribute."""
    viz = Path(tb.__file__).parent / "viz"
    for path in viz.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for private in ("_local_grads", "._rule", "_unbroadcast", "_backward(", "._parents"):
            assert private not in source, f"{path.name} uses {private}"
    # and the engines' backward is the nodes' own push_grad
    a = Value(1.5)
    b = a.tanh()
    assert b.pushes(2.0) == [(a, pytest.approx(2.0 * (1 - math.tanh(1.5) ** 2)))]


def test_contributions_before_backward_says_so():
    x, gamma, beta, loss = worked_example()
    with pytest.raises(ValueError, match="backward has not run on L"):
        tb.contributions(x[0][0], loss)


def test_a_leaf_pushes_nothing_on_either_engine():
    assert Value(1.5).pushes(2.0) == [] and Value(1.5).push_grad() == []
    assert Tensor(np.ones(2), requires_grad=True).pushes(np.ones(2)) == []
