"""Result dtypes of Tensor arithmetic follow PyTorch's type promotion, not numpy's.

PyTorch (torch.result_type): a Python number takes a float tensor's dtype; an int number
keeps an int tensor's dtype (a bool tensor's becomes int64); a float number with an int
tensor gives the DEFAULT float dtype; true division of ints gives the default float dtype;
int tensor ⊗ float tensor gives the float tensor's dtype. numpy gives float64 for the last
three.
"""

import operator

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn

OPS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}
TENSOR_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.float32, np.float64]


def pytorch_dtype(tensor_dtype, number, op: str):
    """The table of PyTorch's rule for tensor ⊗ Python number (either order)."""
    tensor_dtype = np.dtype(tensor_dtype)
    if tensor_dtype.kind == "f":
        return tensor_dtype
    if isinstance(number, float) or op == "/":
        return np.dtype(tb.get_default_dtype())
    return np.dtype(np.int64) if tensor_dtype.kind == "b" else tensor_dtype


@pytest.fixture(params=[np.float32, np.float64], ids=["default-f32", "default-f64"])
def default_dtype(request):
    previous = tb.get_default_dtype()
    tb.set_default_dtype(request.param)
    yield request.param
    tb.set_default_dtype(previous)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("number", [3, 2.5])
@pytest.mark.parametrize("tensor_dtype", TENSOR_DTYPES, ids=lambda d: np.dtype(d).name)
def test_tensor_with_a_python_number(default_dtype, tensor_dtype, number, op):
    data = np.array([1, 2, 4]).astype(tensor_dtype)
    t = Tensor(data)
    fn = OPS[op]
    expected = pytorch_dtype(tensor_dtype, number, op)
    forms = [
        ("tensor op number", lambda: fn(t, number)),
        ("number op tensor", lambda: fn(number, t)),
    ]
    for form, compute in forms:
        with np.errstate(divide="ignore"):
            out = compute()
        assert out.dtype == expected, f"{form}: {out.dtype} != {expected}"
        # the values: computed in the result dtype, as PyTorch does
        a, b = (data, number) if form == "tensor op number" else (number, data)
        a, b = np.asarray(a).astype(expected), np.asarray(b).astype(expected)
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(out.data, fn(a, b).astype(expected))


def test_int_tensor_times_a_float_is_the_default_dtype_not_float64():
    # the reported gap: numpy gives float64 here
    out = Tensor(np.array([1, 2, 3])) * 0.5
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.data, np.array([0.5, 1.0, 1.5], dtype=np.float32))


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_int_tensor_with_a_float_tensor_gives_the_float_dtype_and_float_grads(op, float_dtype):
    ints = Tensor(np.array([[1, -2], [3, 4]], dtype=np.int64), label="ints")
    floats = Tensor(np.array([0.5, 2.0], dtype=float_dtype), requires_grad=True)
    fn = OPS[op]
    for out in (fn(ints, floats), fn(floats, ints)):
        assert out.dtype == float_dtype
    # d/dfloats of Σ w ⊙ (ints op floats), by hand for each op
    weights = np.array([[1.0, 2.0], [-1.0, 0.5]])
    (fn(ints, floats) * Tensor(weights.astype(float_dtype))).sum().backward()
    i, f = ints.data.astype(float), floats.data.astype(float)
    local = {"+": np.ones_like(i), "-": -np.ones_like(i), "*": i, "/": -i / f**2}[op]
    assert floats.grad.dtype == float_dtype
    np.testing.assert_allclose(floats.grad, (weights * local).sum(axis=0), rtol=1e-6)


@pytest.mark.parametrize("int_dtype", [np.int64, np.int32])
def test_int_true_division_gives_the_default_float_dtype(default_dtype, int_dtype):
    a = Tensor(np.array([1, 7, -3], dtype=int_dtype))
    b = Tensor(np.array([2, 2, 4], dtype=int_dtype))
    out = a / b
    assert out.dtype == default_dtype
    np.testing.assert_array_equal(out.data, np.array([0.5, 3.5, -0.75], dtype=default_dtype))


def test_float_tensors_of_different_widths_widen_as_in_pytorch():
    a = Tensor(np.ones(2, dtype=np.float32))
    b = Tensor(np.ones(2, dtype=np.float64))
    assert (a + b).dtype == np.float64 and (b * a).dtype == np.float64


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_a_0d_float_tensor_takes_the_dtype_of_a_tensor_with_dimensions(op):
    # PyTorch: float32 array ⊗ float64 0-d → float32 (numpy 2 gives float64); grads keep
    # each input's own dtype and flow through the cast
    fn = OPS[op]

    def leaves(array_dtype):
        return (
            Tensor(np.array([1.0, 2.0, 4.0], dtype=array_dtype), requires_grad=True),
            Tensor(np.array(2.0, dtype=np.float64), requires_grad=True),
        )

    array, zero_d = leaves(np.float32)
    for out in (fn(array, zero_d), fn(zero_d, array)):
        assert out.dtype == np.float32
        out.sum().backward()
    assert array.grad.dtype == np.float32 and zero_d.grad.dtype == np.float64
    # the grads are those of the same computation done all in float64
    array64, zero_d64 = leaves(np.float64)
    for out in (fn(array64, zero_d64), fn(zero_d64, array64)):
        out.sum().backward()
    np.testing.assert_allclose(array.grad, array64.grad, rtol=1e-6)
    np.testing.assert_allclose(zero_d.grad, zero_d64.grad, rtol=1e-6, atol=1e-12)
    # both 0-d, or both with dimensions: the wider float wins, as before
    assert (Tensor(np.float32(1.0)) + Tensor(np.float64(1.0))).dtype == np.float64


def test_astype_between_floats_stays_in_the_graph():
    x = Tensor(np.array([1.0, -2.0], dtype=np.float32), requires_grad=True)
    wide = x.astype(np.float64)
    assert wide.dtype == np.float64 and wide.requires_grad
    (wide * wide).sum().backward()  # d(x²)/dx = 2x
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, -4.0])
    # an integer result carries no gradient (PyTorch: .to(int) does not require grad)
    assert not x.astype(np.int64).requires_grad


def test_int_tensors_with_int_numbers_stay_integer():
    t = Tensor(np.array([250, 3], dtype=np.uint8))
    assert (t + 1).dtype == np.uint8  # numpy 2 alone: the 0-d int64 operand would widen it
    np.testing.assert_array_equal((t - 1).data, [249, 2])
    assert (Tensor(np.array([2, 3])) ** 3).dtype == np.int64
    # a number outside the int dtype's range is cast the C way, as PyTorch does
    np.testing.assert_array_equal((t + (-1)).data, [249, 2])
    np.testing.assert_array_equal((Tensor(np.array([1, 2], dtype=np.uint8)) + 300).data, [45, 46])


# -- integer input never comes back cast to int; tb.tensor's dtypes --------------------------------


INT_DTYPES = [np.int64, np.int32, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "name, op, reference",
    [
        ("exp", lambda t: t.exp(), np.exp),
        ("log", lambda t: t.log(), np.log),
        ("sqrt", lambda t: t.sqrt(), np.sqrt),
        ("tanh", lambda t: t.tanh(), np.tanh),
        ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        ("nn.Sigmoid", lambda t: nn.Sigmoid()(t), lambda a: 1 / (1 + np.exp(-a))),
        ("nn.Tanh", lambda t: nn.Tanh()(t), np.tanh),
        ("mean", lambda t: t.mean(), np.mean),
        ("var", lambda t: t.var(), np.var),
        ("** 0.5", lambda t: t**0.5, np.sqrt),
        ("clip(0.5, 1.5)", lambda t: t.clip(0.5, 1.5), lambda a: np.clip(a, 0.5, 1.5)),
    ],
)
def test_integer_input_gives_the_default_float_dtype(name, op, reference, dtype):
    data = np.array([1, 2, 3, 1]).astype(dtype)
    out = op(Tensor(data))
    assert out.dtype == tb.get_default_dtype(), name
    np.testing.assert_allclose(out.data, reference(data.astype(np.float64)), rtol=1e-6)


def test_sigmoid_of_an_int_tensor_is_not_cast_back_to_int():
    y = Tensor(np.array([1, 2, -3])).sigmoid()
    np.testing.assert_allclose(y.data, [0.7310586, 0.8807971, 0.0474259], rtol=1e-6)


def test_integer_sums_are_int64_and_integer_ops_that_stay_integer_do():
    assert Tensor(np.array([200, 100], dtype=np.uint8)).sum().item() == 300  # no uint8 wrap
    assert Tensor(np.array([200, 100], dtype=np.uint8)).sum().dtype == np.int64
    assert Tensor(np.array([True, True, False])).sum().dtype == np.int64
    x = Tensor(np.array([1, -2, 3]))
    for out in (x.relu(), x.abs(), x.max(), x**2, -x, x.clip(0, 2)):
        assert out.dtype == np.int64  # as PyTorch: these have integer values


def test_integer_ops_match_pytorch_dtypes():
    torch = pytest.importorskip("torch")
    data = np.array([1, 2, 3])
    theirs = torch.tensor(data)
    for name in ("exp", "log", "sqrt", "tanh", "sigmoid", "sum", "abs", "relu"):
        ours = getattr(Tensor(data), name)()
        theirs_out = getattr(torch, name)(theirs)
        assert str(ours.dtype) == str(theirs_out.dtype).removeprefix("torch."), name
        np.testing.assert_allclose(ours.data, theirs_out.numpy(), rtol=1e-6)


def test_tb_tensor_is_the_pytorch_style_factory():
    t = tb.tensor([1, 2, 3])
    assert isinstance(t, Tensor) and t.dtype == np.int64
    assert tb.tensor([1.0, 2.5]).dtype == tb.get_default_dtype()
    assert tb.tensor([True, False]).dtype == np.bool_
    assert tb.tensor(np.arange(3.0)).dtype == np.float64  # an array keeps its dtype
    w = tb.tensor([[1, 2]], dtype=np.float64, requires_grad=True)
    assert w.dtype == np.float64 and w.requires_grad and w.shape == (1, 2)
    source = np.zeros(3)
    copy = tb.tensor(source)
    copy.data[0] = 5.0
    assert source[0] == 0.0  # a copy, as torch.tensor
    with pytest.raises(TypeError, match="floating"):
        tb.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="numbers"):
        tb.tensor(["a"])


def test_tb_tensor_matches_torch_tensor_dtypes():
    torch = pytest.importorskip("torch")
    for data in ([1, 2], [1.0, 2.0], [1, 2.0], [[True]], 3, 2.5, []):
        assert str(tb.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")
