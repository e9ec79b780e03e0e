"""The scalar engine: every Value op's output and gradient, graph shape, accumulation, errors."""

import gc
import math
import sys

import numpy as np
import pytest
from helpers import check_op, garbage_after_building
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinybn as tb
from tinybn import Value
from tinybn.check import GradientCheckError, check_grad

# -- every op: output vs math, gradient vs hand derivative and finite differences ------------

# (name, tinybn function, math reference, hand derivative(s), points)
UNARY = [
    ("neg", lambda a: -a, lambda a: -a, lambda a: -1.0, [-1.5, 0.3, 2.0]),
    ("relu", lambda a: a.relu(), lambda a: max(a, 0.0), lambda a: float(a > 0), [-1.2, 0.7]),
    ("tanh", lambda a: a.tanh(), math.tanh, lambda a: 1 - math.tanh(a) ** 2, [-2.0, 0.1, 1.3]),
    ("exp", lambda a: a.exp(), math.exp, math.exp, [-3.0, 0.0, 1.7]),
    ("log", lambda a: a.log(), math.log, lambda a: 1 / a, [0.2, 1.0, 5.0]),
    ("sqrt", lambda a: a.sqrt(), math.sqrt, lambda a: 0.5 / math.sqrt(a), [0.3, 4.0]),
    (
        "sigmoid",
        lambda a: a.sigmoid(),
        lambda a: 1 / (1 + math.exp(-a)),
        lambda a: math.exp(-a) / (1 + math.exp(-a)) ** 2,
        [-30.0, -1.0, 0.0, 2.5, 30.0],
    ),
    ("pow 2", lambda a: a**2, lambda a: a**2, lambda a: 2 * a, [-1.5, 0.5]),
    ("pow 3 (int)", lambda a: a**3, lambda a: a**3, lambda a: 3 * a**2, [-1.5, 0.5]),
    ("pow -1", lambda a: a**-1, lambda a: 1 / a, lambda a: -1 / a**2, [-2.0, 0.5]),
    ("pow 0.5", lambda a: a**0.5, math.sqrt, lambda a: 0.5 / math.sqrt(a), [0.25, 3.0]),
    ("pow 0", lambda a: a**0, lambda a: 1.0, lambda a: 0.0, [-2.0, 3.0]),
    ("radd", lambda a: 2.5 + a, lambda a: 2.5 + a, lambda a: 1.0, [1.0]),
    ("rsub", lambda a: 2.5 - a, lambda a: 2.5 - a, lambda a: -1.0, [1.0]),
    ("rmul", lambda a: 2.5 * a, lambda a: 2.5 * a, lambda a: 2.5, [1.0]),
    ("rtruediv", lambda a: 2.5 / a, lambda a: 2.5 / a, lambda a: -2.5 / a**2, [-0.7, 1.3]),
]

BINARY = [
    ("+", lambda a, b: a + b, lambda a, b: a + b, lambda a, b: (1.0, 1.0)),
    ("-", lambda a, b: a - b, lambda a, b: a - b, lambda a, b: (1.0, -1.0)),
    ("*", lambda a, b: a * b, lambda a, b: a * b, lambda a, b: (b, a)),
    ("/", lambda a, b: a / b, lambda a, b: a / b, lambda a, b: (1 / b, -a / b**2)),
]


@pytest.mark.parametrize("name, fn, ref, deriv, points", UNARY, ids=[u[0] for u in UNARY])
def test_unary_op_value_and_grad(name, fn, ref, deriv, points):
    for x in points:
        check_op(
            fn,
            [x],
            ref,
            grad_reference=lambda a, dout: [deriv(a) * dout],
            atol=1e-12,
            rtol=1e-9,
        )


@pytest.mark.parametrize("name, fn, ref, deriv", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("a, b", [(1.5, -2.0), (-0.3, 0.8), (2.0, 2.0)])
def test_binary_op_value_and_grad(name, fn, ref, deriv, a, b):
    check_op(fn, [a, b], ref, grad_reference=lambda x, y, dout: deriv(x, y), atol=1e-12)


def test_binary_ops_with_plain_numbers_on_either_side():
    a = Value(3.0)
    assert [(a + 1).data, (1 + a).data, (a - 1).data, (1 - a).data] == [4.0, 4.0, 2.0, -2.0]
    assert [(a * 2).data, (2 * a).data, (a / 2).data, (6 / a).data] == [6.0, 6.0, 1.5, 2.0]


def test_sigmoid_does_not_overflow_at_extremes():
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(1000.0).sigmoid().data == 1.0


def test_exp_overflow_is_inf_not_an_exception():
    assert Value(1000.0).exp().data == math.inf


def test_sqrt_and_fractional_power_at_zero_have_infinite_slope():
    for make in (lambda v: v.sqrt(), lambda v: v**0.5):
        x = Value(0.0)
        y = make(x)
        y.backward()
        assert y.data == 0.0 and x.grad == math.inf


def test_each_op_records_op_name_and_parents():
    a, b = Value(2.0, label="a"), Value(3.0, label="b")
    c = a * b
    assert c.op == "*" and c.parents == (a, b) and c.local_grads == (3.0, 2.0)
    assert (a**2).op == "**2" and a.op == "" and a.parents == ()
    assert [op(a).op for op in (Value.relu, Value.tanh, Value.exp, Value.log)] == [
        "relu",
        "tanh",
        "exp",
        "log",
    ]


# -- hypothesis: random expression graphs vs finite differences ------------------------------

# smooth ops only (relu's kink would make finite differences meaningless at 0);
# each keeps its domain valid for any real input
BINARY_STEPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
}
UNARY_STEPS = {
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "exp": lambda a: (a.tanh() * 2.0).exp(),
    "log": lambda a: (a * a + 0.5).log(),
    "sqrt": lambda a: (a * a + 0.1).sqrt(),
    "square": lambda a: a**2,
    "cube": lambda a: a**3,
    "neg": lambda a: -a,
    "inv": lambda a: 1.0 / (a * a + 1.0),
}

step = st.one_of(
    st.tuples(st.sampled_from(sorted(BINARY_STEPS)), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.sampled_from(sorted(UNARY_STEPS)), st.integers(0, 99)),
    st.tuples(st.just("sum"), st.lists(st.integers(0, 99), min_size=1, max_size=5)),
    st.tuples(st.just("mean"), st.lists(st.integers(0, 99), min_size=1, max_size=5)),
)


def run_program(program, leaves):
    """Each step combines earlier nodes (indices mod pool size): nodes get reused freely."""
    pool = list(leaves)
    for name, *args in program:
        if name in BINARY_STEPS:
            node = BINARY_STEPS[name](pool[args[0] % len(pool)], pool[args[1] % len(pool)])
        elif name in UNARY_STEPS:
            node = UNARY_STEPS[name](pool[args[0] % len(pool)])
        else:
            chosen = [pool[i % len(pool)] for i in args[0]]
            node = Value.sum(chosen) if name == "sum" else Value.mean(chosen)
        pool.append(node)
    return pool


@settings(max_examples=60, deadline=None)
@given(
    inputs=st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=4),
    program=st.lists(step, min_size=1, max_size=10),
)
def test_random_expression_graphs_match_finite_differences(inputs, program):
    pool = run_program(program, [Value(x) for x in inputs])
    assume(all(abs(node.data) < 1e3 for node in pool))

    def f(*leaves):
        nodes = run_program(program, leaves)
        # every node feeds the output, with different weights
        return Value.sum(node * (1.0 + 0.1 * i) for i, node in enumerate(nodes))

    check_grad(f, inputs, h=1e-6, atol=1e-5, rtol=1e-4)


def test_gradient_checker_catches_a_wrong_gradient():
    def wrong(a):
        out = a.tanh()
        out._rule = lambda out, inputs: (1.0,)  # the true derivative is 1 - tanh²
        return out

    with pytest.raises(GradientCheckError, match="x0"):
        check_grad(wrong, [0.5])


# -- graph shape and backward semantics -----------------------------------------------------


def test_million_deep_chain_backward_has_no_recursion_error():
    # the cycle collector is paused only for speed: it would rescan a million live nodes
    # several times while they are built, and this test is about depth, not memory
    gc.disable()
    try:
        x = Value(1.5, label="x")
        bottom = -x  # the first of a million negations: its grad has travelled the whole chain
        y = bottom
        for _ in range(999_999):
            y = -y  # one node per step; an even number of negations gives back x
        y.backward()
        assert y.data == 1.5
        assert bottom.grad == -1.0 and x.grad == 1.0
        del y  # freeing a million-deep chain must not crash either
    finally:
        gc.enable()


def test_node_used_twice_gets_both_contributions():
    a = Value(3.0)
    b = a * a  # d(a·a)/da = 2a via two edges from the same node
    c = b + a  # and a third route
    c.backward()
    assert a.grad == 2 * 3.0 + 1.0
    assert b.grad == 1.0


def test_backward_twice_accumulates_like_pytorch():
    a, b = Value(2.0), Value(3.0)
    c = a * b  # interior
    d = c + a
    d.backward()
    first = (a.grad, b.grad, c.grad, d.grad)
    assert first == (4.0, 2.0, 1.0, 1.0)
    with pytest.warns(UserWarning, match=r"backward\(\) ran again .* without zero_grad\(\)"):
        d.backward()
    # PyTorch (retain_graph, retain_grad): every grad is the sum of both passes
    assert (a.grad, b.grad, c.grad, d.grad) == tuple(2 * g for g in first)


def test_repeated_backward_warns_once_and_not_when_meant_or_zeroed():
    import warnings

    a = Value(2.0)
    d = a * a + a
    d.backward()
    with pytest.warns(UserWarning, match="zero_grad"):
        d.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d.backward()  # warned once per graph already
        meant = a * 3.0
        meant.backward(retain_graph=True)
        meant.backward()  # the first call said the repeat is meant
        zeroed = a * 5.0
        zeroed.backward()
        zeroed.zero_grad()
        zeroed.backward()  # zero_grad in between: nothing doubles
    assert a.grad == 5.0


def test_backward_with_seed_scales_every_grad():
    a = Value(2.0)
    y = a**3
    y.backward(0.5)
    assert a.grad == pytest.approx(0.5 * 3 * 4.0)


def test_zero_grad_resets_the_whole_graph():
    a, b = Value(2.0), Value(-1.0)
    loss = (a * b).tanh() + a
    loss.backward()
    assert a.grad != 0.0 and b.grad != 0.0
    loss.zero_grad()
    assert (a.grad, b.grad, loss.grad) == (0.0, 0.0, 0.0)
    loss.backward()  # after zeroing, one pass gives the one-pass grads again
    assert a.grad == pytest.approx(-1.0 * (1 - math.tanh(-2.0) ** 2) + 1.0)
    assert b.grad == pytest.approx(2.0 * (1 - math.tanh(-2.0) ** 2))


def test_no_grad_records_no_graph():
    a = Value(2.0)
    with tb.no_grad():
        b = a * 3.0
    assert b.parents == () and b.op == "" and b.data == 6.0
    assert (a * 3.0).parents != ()


def test_sum_and_mean_are_one_node_with_n_parents():
    xs = [Value(float(i)) for i in range(64)]
    total = Value.sum(xs)
    mean = Value.mean(xs)
    for node, local in ((total, 1.0), (mean, 1.0 / 64)):
        assert len(node.parents) == 64 and node.parents == tuple(xs)
        assert all(p.parents == () for p in node.parents)  # no chain of binary '+'
        assert node.local_grads == (local,) * 64
    assert (total.op, total.data, mean.op, mean.data) == ("sum", 2016.0, "mean", 31.5)
    mean.backward()
    assert all(x.grad == 1.0 / 64 for x in xs)


def test_sum_is_exactly_rounded_and_accepts_numbers():
    # math.fsum: 1e16 + 1 - 1e16 is 1, where a running float sum would lose the 1
    assert Value.sum([1e16, Value(1.0), -1e16]).data == 1.0
    with pytest.raises(ValueError, match="at least one"):
        Value.sum([])


def _mlp_like_graph(value_class):
    xs = [value_class(0.1 * i) for i in range(20)]
    ws = [value_class(0.05 * i - 0.3) for i in range(20)]
    out = xs[0] * ws[0]
    for x, w in zip(xs[1:], ws[1:]):
        out = out + (x * w).relu()
    out.backward()


def test_graphs_hold_no_reference_cycles():
    assert garbage_after_building(lambda: _mlp_like_graph(Value), Value) == 0


def test_cycle_test_would_catch_micrograd_style_closures():
    micrograd = pytest.importorskip("micrograd.engine")
    # micrograd's per-node _backward closure refers to its own node: every node is a cycle
    assert garbage_after_building(lambda: _mlp_like_graph(micrograd.Value), micrograd.Value) > 50


# -- labels and repr ---------------------------------------------------------------------------


def test_repr_shows_label_data_and_grad():
    gamma = Value(1.0, label="γ")
    gamma.grad = 0.25
    assert repr(gamma) == "Value(label='γ', data=1.0, grad=0.25)"
    assert repr(Value(-2.5)) == "Value(data=-2.5, grad=0.0)"


def test_named_sets_label_and_returns_the_node():
    a = Value(2.0)
    b = (a * 2).named("2a")
    assert b.label == "2a" and b.data == 4.0
    b.label = "renamed"
    assert b.label == "renamed"


def test_values_builds_labelled_leaves():
    rows = tb.values([[1, 2], [3, 4]], label="x")
    assert [[v.label for v in row] for row in rows] == [["x[0,0]", "x[0,1]"], ["x[1,0]", "x[1,1]"]]
    assert rows[1][0].data == 3.0 and isinstance(rows[1][0].data, float)
    from_numpy = tb.values(np.array([[1, 2], [3, 4]]), label="x")  # a numpy array works too
    assert [[v.data for v in row] for row in from_numpy] == [[1.0, 2.0], [3.0, 4.0]]
    assert from_numpy[1][1].label == "x[1,1]"


# -- bad input: a clear error naming the op and the value ---------------------------------------


@pytest.mark.parametrize("bad", ["3", None, [1.0], True, 1 + 2j])
def test_non_numeric_data_is_a_type_error(bad):
    with pytest.raises(TypeError, match="real number"):
        Value(bad)


def test_arithmetic_with_non_numbers_is_a_type_error():
    with pytest.raises(TypeError, match=r"\+.*str"):
        Value(1.0) + "2"
    with pytest.raises(TypeError, match="exponent"):
        Value(2.0) ** Value(2.0)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: Value(-8.0) ** (1 / 3), r"\*\*: negative base -8\.0 to fractional power"),
        (lambda: Value(0.0) ** -1, r"\*\*: zero base"),
        (lambda: Value(0.0).log(), r"log: .*positive, got 0\.0"),
        (lambda: Value(-1.5).log(), r"log: .*positive, got -1\.5"),
        (lambda: Value(-4.0).sqrt(), r"sqrt: .*>= 0, got -4\.0"),
        (lambda: Value(1.0) / 0, r"/: division by zero \(1\.0 / 0\.0"),
        (lambda: 2.0 / Value(0.0), r"/: division by zero \(2\.0 / 0\.0"),
    ],
)
def test_domain_errors_are_value_errors_naming_op_and_value(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_domain_error_names_the_labelled_operand():
    with pytest.raises(ValueError, match="label 'σ²'"):
        Value(-1.0, label="σ²").sqrt()


def test_negative_base_to_integer_power_is_fine():
    check_op(lambda a: a**3, [-2.0], lambda a: a**3, grad_reference=lambda a, d: [3 * a**2])


def test_number_to_the_power_of_a_value():
    # d(c^a)/da = c^a·ln c, checked against the closed form and finite differences
    check_op(
        lambda a: 2.5**a,
        [1.3],
        lambda a: 2.5**a,
        grad_reference=lambda a, d: [2.5**a * math.log(2.5)],
    )
    check_op(lambda a: 0.5**a, [-2.0], lambda a: 0.5**a)
    for base in (0, -2.0):
        with pytest.raises(ValueError, match=r"\*\*: number \*\* Value needs a positive base"):
            base ** Value(1.5)


# -- Value results too large for a float: a clear OverflowError naming the op and operands.


FLOAT_MAX = sys.float_info.max


@pytest.mark.parametrize(
    "base, exponent, shown",
    [
        (10.0, 400, r"\*\*: 10\.0 \(label 'a'\) to power 400\.0 overflows a float"),
        (-10.0, 401, r"\*\*: -10\.0 \(label 'a'\) to power 401\.0 overflows a float"),
        (1e-200, -2, r"\*\*: 1e-200 \(label 'a'\) to power -2\.0 overflows a float"),
    ],
)
def test_pow_that_overflows_names_the_op_and_the_operands(base, exponent, shown):
    a = Value(base, label="a")
    with pytest.raises(OverflowError, match=shown):
        a**exponent


def test_pow_whose_derivative_alone_overflows_gives_an_infinite_local_grad():
    # (1e-154)^-2 = 1e308 fits; d/da = -2·a^-3 = -2e462 does not: -inf, as √ at 0 gives +inf
    y = Value(1e-154) ** -2
    assert y.data == pytest.approx(1e308) and y.local_grads == (-math.inf,)
    # a negative base: (-1e-154)^-2 = 1e308; d/da = -2·(-1e-154)^-3 = +2e462 → +inf
    y = Value(-1e-154) ** -2
    assert y.data == pytest.approx(1e308) and y.local_grads == (math.inf,)
    # (1e-200)^-1.5 = 1e300; d/da = -1.5·(1e-200)^-2.5 → -inf
    y = Value(1e-200) ** -1.5
    assert y.data == pytest.approx(1e300) and y.local_grads == (-math.inf,)


def test_an_int_beyond_the_float_range_is_named():
    with pytest.raises(
        OverflowError, match=r"Value: the number 1000.* \(401 digits\) is too large"
    ):
        Value(10**400)
    with pytest.raises(OverflowError, match=r"\*: the number .* is too large for a float"):
        Value(2.0) * 10**400


def test_sum_that_overflows_names_the_op_the_count_and_the_largest_value():
    values = [Value(1.0), Value(1e308, label="big"), Value(1e308)]
    with pytest.raises(OverflowError, match=r"sum: the sum of 3 .*1e\+308 .*'big'"):
        Value.sum(values)


def test_sum_and_mean_are_exact_when_only_a_partial_sum_overflows():
    # math.fsum alone raises "intermediate overflow" on all of these
    assert Value.sum([1e308, 1e308, -1e308]).data == 1e308
    assert Value.sum([1e308] * 4 + [-1e308] * 3 + [3.0]).data == 1e308 + 3.0
    assert Value.mean([1e308, 1e308]).data == 1e308
    mean = Value.mean([1.5e308, 1.7e308, 1.1e308])
    assert mean.data == pytest.approx(1.4333333333333333e308, rel=1e-15)
    mean.backward()
    assert mean.parents[0].grad == pytest.approx(1 / 3)


def test_sum_of_plus_and_minus_inf_is_a_named_value_error():
    with pytest.raises(ValueError, match=r"sum: the values include both \+inf and -inf"):
        Value.sum([math.inf, 1.0, -math.inf])
    with pytest.raises(ValueError, match=r"mean: the values include both \+inf and -inf"):
        Value.mean([Value(-math.inf), Value(math.inf)])
    assert Value.sum([math.inf, 1.0]).data == math.inf  # one-signed infinities are fine
    # also when finite values alone would overflow fsum's partial sums
    assert Value.sum([1e308, 1e308, -math.inf]).data == -math.inf
    assert Value.mean([math.inf, 1e308, 1e308]).data == math.inf
    with pytest.raises(ValueError, match=r"sum: the values include both"):
        Value.sum([1e308, 1e308, math.inf, -math.inf])


def test_ieee_ops_still_overflow_to_inf_as_in_pytorch():
    assert (Value(1e200) * 1e200).data == math.inf
    assert (Value(-1e308) - 1e308).data == -math.inf
    assert Value(1000.0).exp().data == math.inf
