"""Value results too large for a float: a clear OverflowError naming the op and operands."""

import math
import sys

import pytest

from tinybn import Value

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
