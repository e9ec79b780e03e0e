"""detect_anomaly() in backward: the op whose backward rule made a NaN/inf grad is named.

PyTorch's anomaly mode: "Function 'SqrtBackward0' returned nan values in its 0th output".
Forward outputs of Tensor ops are checked as they are made (tests/engine/test_tensor.py); here,
the backward rules of both engines, and the forward outputs of a scalar Value graph.
"""

import math

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, Value, autograd


def sqrt_at_zero_times_zero_tensor():
    # forward is finite everywhere: √0 = 0, 0·0 = 0; backward of √ at 0 is 0/(2·0) = NaN
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True, label="x")
    return x, (x.sqrt() * Tensor(np.array([0.0, 1.0]))).sum()


def test_tensor_backward_names_the_op_whose_rule_made_nan():
    x, loss = sqrt_at_zero_times_zero_tensor()
    with np.errstate(all="ignore"), tb.detect_anomaly():
        with pytest.raises(
            FloatingPointError,
            match=r"backward of op 'sqrt' produced NaN/inf in the gradient of its input 0 "
            r"\(x of shape \(2,\)\)",
        ):
            loss.backward()


def test_outside_the_context_the_nan_grad_flows_silently():
    x, loss = sqrt_at_zero_times_zero_tensor()
    with np.errstate(all="ignore"):
        loss.backward()
    assert np.isnan(x.grad[0]) and x.grad[1] == pytest.approx(0.25)


def test_outside_the_context_backward_runs_no_check_at_all(monkeypatch):
    # the flag is read once per backward call; no per-node check is even called
    def fail(*args):
        raise AssertionError("an anomaly check ran outside detect_anomaly()")

    monkeypatch.setattr(autograd, "_backward_checked", fail)
    monkeypatch.setattr(autograd, "_check_forward", fail)
    x = Tensor(np.array([1.0, 4.0]), requires_grad=True)
    (x.sqrt() * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [1.5, 0.75])
    a = Value(4.0)
    (a.sqrt() * 3.0).backward()
    assert a.grad == pytest.approx(0.75)


def test_value_backward_names_the_op_whose_rule_made_nan():
    a = Value(0.0, label="a")
    out = a.sqrt() * 0.0  # d√a/da = +∞ at 0, times an incoming grad of 0: NaN
    with tb.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"backward of op 'sqrt' .* input 0 \(a\)"):
            out.backward()
    out.zero_grad()
    out.backward()  # outside the context: NaN, no error
    assert math.isnan(a.grad)


def test_value_forward_nan_is_named_when_backward_runs_in_the_context():
    a = Value(1000.0, label="a")
    big = a.exp()  # +inf: the first non-finite value
    loss = (big - big).named("inf − inf") * 2.0  # NaN downstream
    with tb.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"op 'exp' produced NaN/inf from a"):
            loss.backward()
    assert a.grad == 0.0  # refused before any grad was pushed


def test_a_tensor_graph_built_outside_the_context_is_checked_by_backward_inside():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True, label="x")
    with np.errstate(all="ignore"):
        total = ((x * 0.0) / x).sum()  # 0/0 = NaN at entry 0, made outside the context
    with tb.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"op '/' produced NaN/inf"):
            total.backward()
    assert x.grad is None


def test_a_grad_already_nan_from_an_earlier_pass_is_not_blamed_on_a_later_op():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True, label="x")
    with np.errstate(all="ignore"):
        (x.sqrt() * Tensor(np.array([0.0, 1.0]))).sum().backward()  # x.grad[0] = NaN
    with tb.detect_anomaly():
        (x * 2.0).sum().backward()  # '*' adds a finite 2 to an already-NaN grad: no error
    assert np.isnan(x.grad[0]) and x.grad[1] == pytest.approx(2.25)
