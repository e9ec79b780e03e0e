"""Tensor: a numpy array, its gradient, and the same op vocabulary as ``Value``.

Each op is a method that computes the forward result and names its backward rule, a
small function defined right below it: ``rule(out, grad) -> grad for each parent``.
The node stores the rule (a plain function, not a closure over the node) and whatever
extra the rule needs (``_saved``), so no node refers to itself.

Broadcasting: numpy broadcasts in the forward pass; in the backward pass the gradient
for an input is summed back down to that input's shape (``_unbroadcast``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any, TypeGuard

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from tinybn import autograd, fast

_default_dtype: type = np.float32
# Python and numpy scalars: combined with a Tensor they take its dtype (no float64 upcast)
_NUMBERS = (int, float, np.integer, np.floating)


def get_default_dtype() -> type:
    """The dtype that Python numbers and lists become (float32, as in PyTorch).

    Examples:
        >>> import tinybn as tb
        >>> tb.get_default_dtype().__name__
        'float32'
    """
    return _default_dtype


def set_default_dtype(dtype: DTypeLike) -> None:
    """Set the dtype that Python numbers and lists become (as ``torch.set_default_dtype``).

    Args:
        dtype: a floating dtype, ``np.float32`` (the default) or ``np.float64``; anything
            else is a TypeError.

    Examples:
        >>> import numpy as np
        >>> import tinybn as tb
        >>> tb.set_default_dtype(np.float64)
        >>> tb.tensor([1.0, 2.0]).data.dtype
        dtype('float64')
        >>> tb.set_default_dtype(np.float32)  # back to PyTorch's default
    """
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"default dtype must be a floating dtype, got {dtype}")
    _default_dtype = dtype.type


def _as_array(data: Any) -> np.ndarray:
    if isinstance(data, (np.ndarray, np.generic)):
        if data.dtype.kind not in "fiub":
            raise TypeError(f"Tensor data must be numeric, got an array of dtype {data.dtype}")
        # a plain ndarray is kept as it is; a numpy scalar or an ndarray subclass becomes one
        return data if type(data) is np.ndarray else np.asarray(data)
    if isinstance(data, Tensor):
        return data.data
    try:
        array = np.asarray(data)
        # a float dtype would turn strings into numbers and None into NaN: refuse them
        if array.dtype.kind not in "fiubO" or (
            array.dtype.kind == "O" and not all(isinstance(v, Real) for v in array.flat)
        ):
            raise TypeError(f"got {type(data).__name__} {data!r}")
        array = array.astype(_default_dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"Tensor data must be numbers or nested lists of numbers: {error}"
        ) from None
    return array


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    if ndim == 0:  # PyTorch: a 0-d tensor takes axis 0 or -1, and reducing it changes nothing
        return ()
    return tuple(sorted(int(a) % ndim for a in axes))


def _swapped(ndim: int, dim0: int, dim1: int) -> tuple[int, ...]:
    """The permutation of ``ndim`` axes that swaps dim0 and dim1 (0-d and 1-d: none)."""
    size = max(ndim, 1)
    for d in (dim0, dim1):
        if not -size <= d < size:
            raise ValueError(f"transpose: axis {d} is out of range for {ndim} dimensions")
    order = list(range(ndim))
    if ndim:
        order[dim0 % ndim], order[dim1 % ndim] = order[dim1 % ndim], order[dim0 % ndim]
    return tuple(order)


def _expand_reduced(grad: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """Undo a reduction without keepdims: put size-1 axes back so grad broadcasts to shape."""
    keep_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
    return grad.reshape(keep_shape)


def _shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


class Tensor:
    """An n-d array node in a computation graph.

    Attributes:
        data: the numpy array.
        grad: dL/d(data) as an array of data's shape, or None before backward().
        requires_grad: whether backward() fills ``grad`` for this tensor.
        label: a name for drawings and reprs.
        op: the operation that produced this tensor ("" for a leaf).

    Examples:
        >>> from tinybn import Tensor
        >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        >>> loss = (x * x).sum()
        >>> loss.backward()
        >>> x.grad  # ∂(Σ x²)/∂x = 2x
        array([[2., 4.],
               [6., 8.]], dtype=float32)
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "label",
        "op",
        "role",
        "_parents",
        "_rule",
        "_saved",
        "_backward_runs",
    )
    __array_priority__ = 1000  # numpy array (op) Tensor → our reflected op, not numpy's

    def __init__(self, data: Any, requires_grad: bool = False, label: str = "") -> None:
        self.data = _as_array(data)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got dtype {self.data.dtype}")
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self.label = label
        self.op = ""
        self.role: str | None = None
        self._parents: tuple[Tensor, ...] = ()
        self._rule: Callable | None = None
        self._saved: Any = None
        self._backward_runs = 0  # see autograd._warn_if_repeated

    # -- building blocks -------------------------------------------------------------

    def _lift(self, other: Any) -> Tensor:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, _NUMBERS) and not isinstance(other, bool):
            # PyTorch: a number takes a float tensor's dtype; an int number takes an int
            # tensor's dtype (int32 + 1 stays int32; uint8 + (-1) wraps around, a C cast; a
            # bool tensor's becomes int64); a float number with an int tensor gives the
            # default float dtype
            kind = self.data.dtype.kind
            if kind != "f" and isinstance(other, (int, np.integer)):
                number = np.asarray(other)
                return Tensor(number.astype(self.data.dtype) if kind in "iu" else number)
            dtype = self.data.dtype if kind == "f" else _default_dtype
            return Tensor(np.asarray(other, dtype=dtype))
        return Tensor(other)

    def _operands(self, other: Any, divide: bool = False) -> tuple[Tensor, Tensor]:
        """self and other (lifted) in the dtypes PyTorch computes a binary op in.

        numpy would give float64 for int ⊗ float32 and for int / int; PyTorch gives the
        float operand's dtype, and the default float dtype for int / int. An int operand
        that is converted never requires grad; a 0-d float one is cast inside the graph.
        """
        if not isinstance(other, Tensor):
            other = self._lift(other)
        a, b = self.data.dtype, other.data.dtype
        # the common case first, cheaply: the same dtype (numpy shares dtype objects)
        if (a is b or a == b) and (not divide or a.kind == "f"):
            return self, other
        if a.kind == "f" and b.kind != "f":
            return self, other._converted(a)
        if b.kind == "f" and a.kind != "f":
            return self._converted(b), other
        if divide and a.kind != "f":  # int / int → the default float dtype
            return self._converted(_default_dtype), other._converted(_default_dtype)
        if a.kind == "f" and b.kind == "f":  # two float dtypes
            # PyTorch: a 0-d tensor joins a tensor with dimensions as a Python number does,
            # taking its dtype (float32 array + float64 0-d → float32); astype keeps the grad
            if other.ndim == 0 < self.ndim:
                return self, other.astype(a)
            if self.ndim == 0 < other.ndim:
                return self.astype(b), other
        return self, other

    def _converted(self, dtype: Any) -> Tensor:
        """A constant copy of this (int) tensor's values as ``dtype``, with its label."""
        return Tensor(self.data.astype(dtype), label=self.label)

    def _make(
        self,
        data: np.ndarray,
        parents: tuple[Tensor, ...],
        op: str,
        rule: Callable,
        saved: Any = None,
    ) -> Tensor:
        """The output node; it joins the graph only if grads are on and a parent needs them."""
        out = Tensor.__new__(Tensor)
        out.data = data
        out.grad = None
        out.label = ""
        out.op = op
        out.role = None
        out._backward_runs = 0
        needs_grad = autograd._grad_enabled and fast.needs_grad(parents)  # any(p.requires_grad)
        out.requires_grad = needs_grad
        out._parents = parents if needs_grad else ()
        out._rule = rule if needs_grad else None
        out._saved = saved if needs_grad else None
        if autograd._detect_anomaly and not np.all(np.isfinite(data)):
            names = ", ".join(f"{p.label or p.op or 'leaf'}{_shape_str(p.shape)}" for p in parents)
            raise FloatingPointError(f"detect_anomaly: op '{op}' produced NaN/inf from {names}")
        return out

    def _broadcast_check(self, other: Tensor, op: str) -> None:
        # numpy's rule, checked in Python: np.broadcast_shapes costs more than most small ops
        a, b = self.data.shape, other.data.shape
        if a == b or all(m == n or m == 1 or n == 1 for m, n in zip(a[::-1], b[::-1])):
            return
        raise ValueError(
            f"{op}: shapes {_shape_str(self.shape)} and {_shape_str(other.shape)} do not broadcast"
        )

    # -- arithmetic --------------------------------------------------------------------

    def __add__(self, other: Any) -> Tensor:
        a, b = self._operands(other)
        a._broadcast_check(b, "+")
        return a._make(a.data + b.data, (a, b), "+", _add_backward)

    def __sub__(self, other: Any) -> Tensor:
        a, b = self._operands(other)
        a._broadcast_check(b, "-")
        return a._make(a.data - b.data, (a, b), "-", _sub_backward)

    def __mul__(self, other: Any) -> Tensor:
        a, b = self._operands(other)
        a._broadcast_check(b, "*")
        return a._make(a.data * b.data, (a, b), "*", _mul_backward)

    def __truediv__(self, other: Any) -> Tensor:
        a, b = self._operands(other, divide=True)
        a._broadcast_check(b, "/")
        return a._make(a.data / b.data, (a, b), "/", _div_backward)

    def __radd__(self, other: Any) -> Tensor:
        return self._lift(other) + self

    def __rsub__(self, other: Any) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other: Any) -> Tensor:
        return self._lift(other) * self

    def __rtruediv__(self, other: Any) -> Tensor:
        return self._lift(other) / self

    def __neg__(self) -> Tensor:
        return self._make(-self.data, (self,), "neg", _neg_backward)

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor):
            raise TypeError("**: the exponent must be a number, not a Tensor (use exp/log)")
        if not isinstance(exponent, _NUMBERS):
            raise TypeError(f"**: the exponent must be a number, got {type(exponent).__name__}")
        if not float(exponent).is_integer() and self.data.size and np.any(self.data < 0):
            raise ValueError(f"**: negative base to fractional power {exponent}")
        if isinstance(exponent, np.generic):  # a numpy scalar acts as a Python number
            exponent = exponent.item()
        # PyTorch: an int tensor to a float power gives the default float dtype (numpy:
        # float64), and a bool tensor to an int power int64 (numpy: bool)
        base = self.data
        if base.dtype.kind != "f" and isinstance(exponent, float):
            base = base.astype(_default_dtype)
        elif base.dtype.kind == "b":
            base = base.astype(np.int64)
        # squares are the common case (variance); x*x is faster and exact
        data = base * base if exponent == 2 else base**exponent
        return self._make(data, (self,), f"**{exponent}", _pow_backward, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        """c ** x for a positive number c: c^x = e^(x·ln c), in PyTorch's result dtype."""
        if not isinstance(base, _NUMBERS) or isinstance(base, bool):
            return NotImplemented
        if not base > 0:
            raise ValueError(f"**: number ** Tensor needs a positive base, got {base!r}")
        exponent, lifted_base = self._operands(base)
        data = lifted_base.data**exponent.data
        return exponent._make(data, (exponent,), f"{base}**", _rpow_backward, math.log(base))

    def __matmul__(self, other: Any) -> Tensor:
        other = self._lift(other)
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError("@: both operands need at least one dimension")
        inner_a = self.shape[-1]
        inner_b = other.shape[-2] if other.ndim > 1 else other.shape[0]
        if inner_a != inner_b:
            raise ValueError(
                f"@: shapes {_shape_str(self.shape)} and {_shape_str(other.shape)} cannot be "
                f"multiplied ({inner_a} != {inner_b})"
            )
        try:
            data = self.data @ other.data
        except ValueError as error:
            raise ValueError(
                f"@: shapes {_shape_str(self.shape)} and {_shape_str(other.shape)} cannot be "
                f"multiplied: {error}"
            ) from None
        return self._make(data, (self, other), "@", _matmul_backward)

    def __rmatmul__(self, other: Any) -> Tensor:
        return self._lift(other) @ self

    # -- elementwise functions -----------------------------------------------------------

    def _float_data(self) -> np.ndarray:
        """data for a function whose values are not integers (exp, log, σ, mean, ...): an
        integer or bool tensor's values in the default float dtype, as in PyTorch (numpy
        would give float16 for int8 and float64 for int64); a float tensor's data as it is."""
        data = self.data
        return data if data.dtype.kind == "f" else data.astype(_default_dtype)

    def exp(self) -> Tensor:
        return self._make(np.exp(self._float_data()), (self,), "exp", _exp_backward)

    def log(self) -> Tensor:
        if np.any(self.data < 0):
            raise ValueError("log: argument has negative entries")
        with np.errstate(divide="ignore"):
            data = np.log(self._float_data())
        return self._make(data, (self,), "log", _log_backward)

    def sqrt(self) -> Tensor:
        """Elementwise square root; ∂√x/∂x = 1/(2√x). Negative entries: ValueError.

        Examples:
            >>> from tinybn import Tensor
            >>> Tensor([4.0, 9.0]).sqrt().data
            array([2., 3.], dtype=float32)
        """
        if np.any(self.data < 0):
            raise ValueError("sqrt: argument has negative entries")
        return self._make(np.sqrt(self._float_data()), (self,), "sqrt", _sqrt_backward)

    def tanh(self) -> Tensor:
        return self._make(np.tanh(self._float_data()), (self,), "tanh", _tanh_backward)

    def relu(self) -> Tensor:
        data = np.maximum(self.data, fast.scalar(0, self.data.dtype))
        return self._make(data, (self,), "relu", _relu_backward)

    def sigmoid(self) -> Tensor:
        # two forms so that exp never overflows and σ(x) ≈ e^x keeps its relative precision
        # for very negative x: 1/(1 + e^(−x)) for x >= 0, e^x/(1 + e^x) for x < 0
        # (an integer input gives the default float dtype, as in PyTorch)
        x = self._float_data()
        e = np.exp(-np.abs(x))  # in (0, 1]
        data = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self._make(data.astype(x.dtype, copy=False), (self,), "sigmoid", _sigmoid_backward)

    def abs(self) -> Tensor:
        return self._make(np.abs(self.data), (self,), "abs", _abs_backward)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Limit values to [min, max]; the grad passes only where the value was inside.

        An integer tensor with a float bound gives the default float dtype (PyTorch's rule)."""
        data = self.data
        if data.dtype.kind != "f" and any(isinstance(b, (float, np.floating)) for b in (min, max)):
            data = data.astype(_default_dtype)
        elif data.dtype.kind == "b":
            data = data.astype(np.int64)
        return self._make(np.clip(data, min, max), (self,), "clip", _clip_backward, (min, max))

    # -- reductions --------------------------------------------------------------------

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """The sum over ``axis`` (an int, a tuple of ints, or None for all), as
        ``torch.sum``; backward sends the output's grad to every summed entry.

        Examples:
            >>> from tinybn import Tensor
            >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).sum(axis=0).data
            array([4., 6.], dtype=float32)
        """
        axes = _axes(axis, self.ndim)
        # PyTorch sums integers and bools as int64 (numpy: uint64 for unsigned ints)
        dtype = np.int64 if self.data.dtype.kind in "iub" else None
        data = np.asarray(self.data.sum(axis=axes, keepdims=keepdims, dtype=dtype))
        return self._make(data, (self,), "sum", _sum_backward, (axes, keepdims))

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """The mean over ``axis`` (an int, a tuple of ints, or None for all); backward sends
        grad / (number of averaged entries) to each. An integer or bool tensor's mean is
        computed in float64 and given in the default float dtype (PyTorch refuses integer
        input here).

        Examples:
            >>> from tinybn import Tensor
            >>> Tensor([[1.0, 2.0], [3.0, 4.0]]).mean(axis=0, keepdims=True).data
            array([[2., 3.]], dtype=float32)
        """
        axes = _axes(axis, self.ndim)
        data = np.asarray(self.data.mean(axis=axes, keepdims=keepdims))
        if self.data.dtype.kind != "f":
            data = data.astype(_default_dtype)
        return self._make(data, (self,), "mean", _mean_backward, (axes, keepdims))

    def var(
        self,
        axis: Any = None,
        keepdims: bool = False,
        unbiased: bool = False,
        correction: int | None = None,
    ) -> Tensor:
        """Variance: Σ(x-mean)²/(n - correction); correction 0 (biased, the default) or 1.

        An integer or bool tensor's variance is computed in float64 and given in the
        default float dtype (PyTorch refuses integer input here)."""
        ddof = int(unbiased) if correction is None else correction
        axes = _axes(axis, self.ndim)
        count = int(np.prod([self.shape[a] for a in axes], dtype=int))
        if count - ddof <= 0:
            raise ValueError(f"var: {count} value(s) over axis {axis} with correction {ddof}")
        data = np.asarray(self.data.var(axis=axes, keepdims=keepdims, ddof=ddof))
        if self.data.dtype.kind != "f":
            data = data.astype(_default_dtype)
        return self._make(data, (self,), "var", _var_backward, (axes, keepdims, ddof))

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """The largest values over ``axis``; tied maxima share the gradient equally."""
        axes = _axes(axis, self.ndim)
        data = np.asarray(self.data.max(axis=axes, keepdims=keepdims))
        return self._make(data, (self,), "max", _max_backward, (axes, keepdims))

    # -- shape -------------------------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        """The same entries in a new shape (ints or one tuple; -1 once for "the rest").

        Examples:
            >>> from tinybn import Tensor
            >>> Tensor([1.0, 2.0, 3.0, 4.0]).reshape(2, -1).shape
            (2, 2)
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            data = self.data.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape {_shape_str(self.shape)} to {shape}"
            ) from None
        return self._make(data, (self,), "reshape", _reshape_backward)

    def transpose(self, *axes: int) -> Tensor:
        """Two ints swap those two axes (PyTorch's ``transpose(dim0, dim1)``); a full
        permutation (ints or one tuple) reorders the axes, and none reverses them (numpy)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        elif len(axes) == 2:  # on a matrix (1, 0) is also numpy's swap; (0, 1) swaps too
            axes = _swapped(self.ndim, *axes)
        axes = axes or tuple(reversed(range(self.ndim)))
        if sorted(int(a) % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
            raise ValueError(
                f"transpose: axes {axes} are not a permutation of the {self.ndim} axes of a "
                f"tensor of shape {_shape_str(self.shape)} (or two axes to swap)"
            )
        data = self.data.transpose(axes)
        # saved as non-negative axes: the backward inverts the permutation with argsort
        axes = tuple(int(a) % self.ndim for a in axes)
        return self._make(data, (self,), "transpose", _transpose_backward, axes)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return self._make(np.asarray(self.data[index]), (self,), "index", _index_backward, index)

    # -- autograd ----------------------------------------------------------------------

    def pushes(self, grad: np.ndarray | None = None) -> list[tuple[Tensor, np.ndarray]]:
        """What ``grad`` = dL/d(self) (default: ``self.grad``) sends to each parent that
        requires grad: ``(parent, amount)``, the amount in the parent's shape.

        The op's rule maps the incoming gradient to one per parent, in the output's shape;
        where broadcasting stretched a parent, that is summed back to the parent's shape.
        """
        if grad is None:
            grad = self.grad
        if grad is None or self._rule is None:
            return []
        amounts = self._rule(self, grad)
        pushes = []
        for parent, amount in zip(self._parents, amounts):
            if amount is None or not parent.requires_grad:
                continue
            if amount.shape != parent.data.shape:
                amount = _unbroadcast(amount, parent.data.shape)
            pushes.append((parent, amount))
        return pushes

    def push_grad(self) -> list[tuple[Tensor, np.ndarray]]:
        """One step of backpropagation: add ``self.pushes()`` to the parents' grads."""
        incoming = self.grad
        pushes = self.pushes(incoming)
        if not isinstance(incoming, Tensor):  # create_graph makes Tensor grads: the plain loop
            fast.push_array_grads(incoming, pushes)  # the loop below, fewer copies (tinybn/fast)
            return pushes
        for parent, amount in pushes:
            parent._accumulate_grad(amount)
        return pushes

    def _accumulate_grad(self, grad: np.ndarray) -> None:
        if isinstance(grad, Tensor) or isinstance(self.grad, Tensor):  # create_graph
            self.grad = grad if self.grad is None else self.grad + grad
            return
        if self._parents:
            # An interior node: only its own backward rule reads this grad. The first
            # contribution is kept without a copy (it may be shared with another node, or
            # be a read-only broadcast view), so it is never modified in place: a second
            # one makes a new array. Copying every intermediate grad of a training step
            # cost as much as the arithmetic of the elementwise ops.
            if grad.dtype != self.data.dtype:
                grad = grad.astype(self.data.dtype)
            self.grad = grad if self.grad is None else self.grad + grad
        elif self.grad is None:
            # a leaf (a parameter, an input) owns its grad: an optimizer may update it in place
            self.grad = np.array(grad, dtype=self.data.dtype)
        else:
            self.grad += grad

    def _zero_grad(self) -> None:
        self.grad = None

    def backward(
        self, grad: Any = None, *, retain_graph: bool = False, create_graph: bool = False
    ) -> None:
        """Fill ``.grad`` of every tensor that requires grad in this graph.

        Grads accumulate over calls, as in PyTorch; a second call on the same root without
        ``zero_grad()`` warns once, unless this first call said ``retain_graph=True``.
        ``create_graph=True``: every grad is a Tensor with a graph of its own (built by the
        same backward rules), so it can be drawn and differentiated again.
        """
        seed = self._backward_seed(grad, create_graph)
        if retain_graph:
            self._backward_runs = -1
        autograd.run_backward(self, seed, create_graph)

    def _backward_seed(self, grad: Any, create_graph: bool) -> np.ndarray | Tensor:
        """dL/d(self) to start backward from: an array, or a Tensor under create_graph (a
        given Tensor keeps its own graph there, as in PyTorch)."""
        seed = self._seed(grad, "backward")
        if not create_graph:
            return seed
        return grad if isinstance(grad, Tensor) else Tensor(seed)

    def _seed(self, grad: Any, caller: str) -> np.ndarray:
        """dL/d(self) as an array of self's shape and dtype: 1 for one element, else ``grad``."""
        if not self.requires_grad:
            raise ValueError(f"{caller}: this tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"{caller}: grad can be implied only for a single-element output, this one "
                    f"has shape {_shape_str(self.shape)}; pass grad= of that shape"
                )
            # a one of the output's shape; np.ones and np.ones_like are Python-level wrappers
            return np.array(1, dtype=self.data.dtype).reshape(self.data.shape)
        seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
        if seed.shape != self.shape:
            raise ValueError(
                f"{caller}: grad shape {_shape_str(seed.shape)} != output shape "
                f"{_shape_str(self.shape)}"
            )
        return seed

    def zero_grad(self) -> None:
        """Set grad to None for every tensor in this graph."""
        autograd.zero_grad_graph(self)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = flag
        return self

    def named(self, label: str, role: str | None = None) -> Tensor:
        """Set the label (and the role, see ``Value.role``) and return self."""
        self.label = label
        if role is not None:
            self.role = role
        return self

    @property
    def parents(self) -> tuple[Tensor, ...]:
        return self._parents

    # -- numpy-like conveniences -----------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def astype(self, dtype: Any) -> Tensor:
        """This tensor as ``dtype``, like PyTorch's ``.to(dtype)``: between float dtypes it
        stays in the graph (the backward casts the grad back); an integer result is a
        constant, as integers carry no gradient."""
        data = self.data.astype(dtype)
        if data.dtype.kind != "f":
            return Tensor(data)
        return self._make(data, (self,), f"astype {data.dtype}", _astype_backward)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, threshold=8, edgeitems=2)
        extra = f", label={self.label!r}" if self.label else ""
        extra += f", op={self.op!r}" if self.op else ""
        extra += ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}, dtype={self.data.dtype}{extra})"

    def _repr_svg_(self) -> str | None:  # Jupyter shows a Tensor with a graph as that graph
        from tinybn.viz.graph import jupyter_svg

        return jupyter_svg(self)

    # -- comparisons, selection and more ops, as PyTorch names them ----------------------
    # Comparisons return bool tensors outside the graph. Defining __eq__ would make the
    # class unhashable; nodes stay hashed by identity (autograd's seen-sets rely on it).

    __hash__ = object.__hash__

    def _compare(self, other: Any, op: np.ufunc) -> Any:
        if isinstance(other, Tensor):
            other = other.data
        elif not isinstance(other, (_NUMBERS, bool, np.ndarray, list, tuple)):
            return NotImplemented  # e.g. t == None is False, as in PyTorch
        try:
            return Tensor(np.asarray(op(self.data, other)))
        except ValueError:
            shape = _shape_str(np.shape(other))
            raise ValueError(
                f"{op.__name__}: shapes {_shape_str(self.shape)} and {shape} do not broadcast"
            ) from None

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {_shape_str(self.shape)} is ambiguous "
                "(use .any() or .all() on its data)"
            )
        return bool(self.data)

    def where(self, condition: Any, other: Any) -> Tensor:
        """self where ``condition`` holds, else ``other`` (PyTorch's ``x.where(cond, y)``);
        the grad goes to self where the condition holds, to other elsewhere."""
        mask = np.asarray(getattr(condition, "data", condition))
        if mask.dtype != bool:
            raise TypeError(f"where: condition must be boolean, got dtype {mask.dtype}")
        a, b = self._operands(other)
        try:
            data = np.where(mask, a.data, b.data)
        except ValueError:
            raise ValueError(
                f"where: condition {_shape_str(mask.shape)}, x {_shape_str(a.shape)} and "
                f"y {_shape_str(b.shape)} do not broadcast"
            ) from None
        return a._make(data, (a, b), "where", _where_backward, mask)

    def maximum(self, other: Any) -> Tensor:
        """Elementwise max(a, b); at ties each gets half the grad (as PyTorch)."""
        a, b = self._operands(other)
        a._broadcast_check(b, "maximum")
        return a._make(np.maximum(a.data, b.data), (a, b), "maximum", _maximum_backward)

    def minimum(self, other: Any) -> Tensor:
        """Elementwise min(a, b); at ties each gets half the grad (as PyTorch)."""
        a, b = self._operands(other)
        a._broadcast_check(b, "minimum")
        return a._make(np.minimum(a.data, b.data), (a, b), "minimum", _maximum_backward)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """The smallest values over ``axis``; tied minima share the gradient equally."""
        axes = _axes(axis, self.ndim)
        data = np.asarray(self.data.min(axis=axes, keepdims=keepdims))
        return self._make(data, (self,), "min", _max_backward, (axes, keepdims))

    def std(
        self,
        axis: Any = None,
        keepdims: bool = False,
        unbiased: bool = False,
        correction: int | None = None,
    ) -> Tensor:
        """√var, with var's arguments and default (biased, as tinybn's ``var``)."""
        return self.var(axis, keepdims, unbiased, correction).sqrt()

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        """log Σ exp(x) over ``axis``, as m + log Σ exp(x − m) with m the max (no overflow).
        Its gradient is softmax(x) over the same axes."""
        axes = _axes(axis, self.ndim)
        if self.data.size == 0:
            shift = np.zeros(_expand_reduced(np.zeros(()), self.shape, axes).shape)
        else:
            shift = self.data.max(axis=axes, keepdims=True)
            shift = np.where(np.isfinite(shift), shift, 0).astype(self.data.dtype)
        with np.errstate(divide="ignore"):  # all −inf → log 0 = −inf, as PyTorch
            data = np.log(np.exp(self.data - shift).sum(axis=axes, keepdims=True)) + shift
        if not keepdims:
            data = data.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))
        data = np.asarray(data, dtype=self.data.dtype)
        return self._make(data, (self,), "logsumexp", _logsumexp_backward, (axes, keepdims))

    def expand(self, *sizes: int) -> Tensor:
        """A broadcast view of new ``sizes`` (−1 keeps a size; new axes go in front); the
        backward sums the grad over the copies."""
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(
                f"expand: {len(sizes)} sizes for a tensor of {self.ndim} dimensions "
                f"{_shape_str(self.shape)}"
            )
        shape: list[int] = []
        for i, n in enumerate(sizes):
            old = self.shape[i - lead] if i >= lead else None
            if n == -1:
                if old is None:
                    raise ValueError(f"expand: -1 is not allowed for the new leading axis {i}")
                n = old
            if old is not None and old not in (1, n):
                raise ValueError(
                    f"expand: axis {i} of size {old} cannot become {n} (only size 1 expands)"
                )
            shape.append(n)
        data = np.broadcast_to(self.data, tuple(shape))
        return self._make(data, (self,), "expand", _expand_backward)

    def rsqrt(self) -> Tensor:
        """1/√x."""
        if np.any(self.data < 0):
            raise ValueError("rsqrt: argument has negative entries")
        with np.errstate(divide="ignore"):
            data = 1.0 / np.sqrt(self.data)
        return self._make(data.astype(self.data.dtype), (self,), "rsqrt", _rsqrt_backward)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        """x for x > 0, else negative_slope·x."""
        x = self.data
        data = np.where(x > 0, x, x * fast.scalar(negative_slope, x.dtype)).astype(x.dtype)
        return self._make(data, (self,), "leaky_relu", _leaky_relu_backward, negative_slope)

    def permute(self, *dims: int) -> Tensor:
        """The axes reordered: output axis i is input axis dims[i] (PyTorch's permute)."""
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) != self.ndim:
            raise ValueError(
                f"permute: {len(dims)} axes given for a tensor of {self.ndim} dimensions"
            )
        return self.transpose(tuple(dims))  # type: ignore[arg-type]  # one tuple: a permutation


# -- backward rules: rule(out, grad) -> one grad per parent (None = no grad) -----------------
# Each returns gradients in the output's shape; ``Tensor.pushes`` sums them back to each
# parent's shape when broadcasting stretched it.
#
# Each rule is written ONCE and runs on either kind of value. In a plain backward pass the
# incoming ``grad`` is a numpy array and the rule reads its inputs as numpy arrays
# (``_inputs``). In ``backward(create_graph=True)`` the incoming grad is a Tensor, and the
# rule reads its inputs (and the output) as the Tensors themselves: the same arithmetic then
# builds a graph of the gradient, which can be drawn and differentiated again. Masks (which
# entries were positive, which was the maximum) are constants either way: their derivative
# is zero almost everywhere.


def _graph_mode(grad: Any) -> TypeGuard[Tensor]:
    """True when the rule is building a graph of the gradient (create_graph=True): the
    incoming grad is a Tensor, not a numpy array (or a numpy scalar, from a 0-d result)."""
    return isinstance(grad, Tensor)


def _inputs(out: Tensor, grad: Any) -> Sequence[Any]:
    """The node's inputs as the rule computes with them: arrays, or (graph mode) Tensors."""
    if isinstance(grad, Tensor):
        return out._parents
    return [parent.data for parent in out._parents]


def _output(out: Tensor, grad: Any) -> Any:
    """The node's output as the rule computes with it: an array, or (graph mode) the node."""
    return out if isinstance(grad, Tensor) else out.data


def _through_composed(out: Tensor, grad: Tensor, composed: Callable) -> tuple:
    """The rule of a node computed by a fast numpy kernel (tinybn.fast.kernels, tinybn.conv) when a
    graph of the gradient is wanted: rebuild the node's output from its inputs with the
    composed source, ``composed(*inputs)`` in Tensor ops, and differentiate that — so
    second derivatives follow the formula the kernel computes."""
    with autograd.enable_grad():
        rebuilt = composed(*out._parents)
    wanted = [parent for parent in out._parents if parent.requires_grad]
    found = iter(autograd.grad(rebuilt, wanted, grad, create_graph=True, allow_unused=True))
    return tuple(next(found) if parent.requires_grad else None for parent in out._parents)


def _add_backward(out: Tensor, grad: Any) -> tuple:
    return grad, grad


def _sub_backward(out: Tensor, grad: Any) -> tuple:
    return grad, -grad


def _mul_backward(out: Tensor, grad: Any) -> tuple:
    a, b = _inputs(out, grad)
    need_a, need_b = (parent.requires_grad for parent in out._parents)
    return (grad * b if need_a else None, grad * a if need_b else None)


def _div_backward(out: Tensor, grad: Any) -> tuple:
    _, b = _inputs(out, grad)
    grad_a = grad / b
    return grad_a, (-grad_a * _output(out, grad) if out._parents[1].requires_grad else None)


def _neg_backward(out: Tensor, grad: Any) -> tuple:
    return (-grad,)


def _pow_backward(out: Tensor, grad: Any) -> tuple:
    (a,), k = _inputs(out, grad), out._saved
    # d(a^k)/da = k·a^(k-1); for k = 0 that is 0 everywhere, also at a = 0 (not 0·∞)
    if k == 0:
        return (grad * 0.0,)
    return (grad * (k * a if k == 2 else k * a ** (k - 1)),)


def _astype_backward(out: Tensor, grad: Any) -> tuple:
    return (grad.astype(out._parents[0].data.dtype),)


def _rpow_backward(out: Tensor, grad: Any) -> tuple:
    # d(c^x)/dx = c^x·ln c; out._saved holds ln c
    return (grad * _output(out, grad) * out._saved,)


def _swap_last_two(x: Any) -> Any:
    """x with its last two axes swapped (a matrix transposed, batch axes kept)."""
    order = list(range(x.ndim))
    order[-2], order[-1] = order[-1], order[-2]
    return x.transpose(*order)


def _matmul_backward(out: Tensor, grad: Any) -> tuple:
    a, b = _inputs(out, grad)
    need_a, need_b = (parent.requires_grad for parent in out._parents)
    if a.ndim == 1 and b.ndim == 1:  # dot product: a scalar output
        return (grad * b if need_a else None, grad * a if need_b else None)
    a_ndim, b_ndim, g = a.ndim, b.ndim, grad
    # treat 1-d operands as a row (a) or column (b) matrix, as numpy's matmul does
    if a_ndim == 1:
        a, g = a.reshape(1, a.shape[0]), g.reshape(*g.shape[:-1], 1, g.shape[-1])
    if b_ndim == 1:
        b, g = b.reshape(b.shape[0], 1), g.reshape(*g.shape, 1)
    grad_a = g @ _swap_last_two(b) if need_a else None
    grad_b = _swap_last_two(a) @ g if need_b else None
    # sums over the axes that are not the operand's, written so that a length-0 axis works
    # (reshape(-1, 0) cannot infer the -1)
    if grad_a is not None and a_ndim == 1:  # (..., 1, n) → (n,)
        grad_a = grad_a.sum(axis=tuple(range(grad_a.ndim - 1)))
    if grad_b is not None and b_ndim == 1:  # (..., n, 1) → (n,)
        grad_b = grad_b[..., 0].sum(axis=tuple(range(grad_b.ndim - 2)))
    if grad_b is not None and grad_b.ndim > b_ndim:  # b was broadcast over batch dims
        grad_b = grad_b.sum(axis=tuple(range(grad_b.ndim - b_ndim)))
    return grad_a, grad_b


def _exp_backward(out: Tensor, grad: Any) -> tuple:
    return (grad * _output(out, grad),)


def _log_backward(out: Tensor, grad: Any) -> tuple:
    return (grad / _inputs(out, grad)[0],)


def _sqrt_backward(out: Tensor, grad: Any) -> tuple:
    return (grad / (2.0 * _output(out, grad)),)


def _tanh_backward(out: Tensor, grad: Any) -> tuple:
    tanh = _output(out, grad)
    return (grad * (1.0 - tanh * tanh),)


def _relu_backward(out: Tensor, grad: Any) -> tuple:
    x = out._parents[0].data
    mask = (x > fast.scalar(0, x.dtype)).astype(x.dtype)  # 0/1 in grad's dtype: numpy's fast loop
    if _graph_mode(grad):
        return (grad * mask,)
    mask *= grad  # a new array: multiplied in place, so no second one is needed
    return (mask,)


def _sigmoid_backward(out: Tensor, grad: Any) -> tuple:
    sigmoid = _output(out, grad)
    return (grad * sigmoid * (1.0 - sigmoid),)


def _abs_backward(out: Tensor, grad: Any) -> tuple:
    return (grad * np.sign(out._parents[0].data),)


def _clip_backward(out: Tensor, grad: Any) -> tuple:
    x, (low, high) = out._parents[0].data, out._saved
    inside = np.ones(x.shape, dtype=x.dtype)
    if low is not None:
        inside *= x >= low
    if high is not None:
        inside *= x <= high
    return (grad * inside,)


def _broadcast_to(grad: Any, shape: tuple[int, ...]) -> Any:
    """grad repeated to ``shape`` (numpy's broadcast_to; a graph op in graph mode)."""
    if not _graph_mode(grad):
        return np.broadcast_to(grad, shape)
    return grad._make(np.broadcast_to(grad.data, shape), (grad,), "broadcast_to", _unbroadcast_rule)


def _unbroadcast_rule(out: Tensor, grad: Any) -> tuple:
    # broadcast_to's backward: sum back over the stretched axes (Tensor.pushes does it)
    return (grad,)


def _sum_backward(out: Tensor, grad: Any) -> tuple:
    (a,), (axes, keepdims) = out._parents, out._saved
    if not keepdims:
        grad = _expand_reduced(grad, a.shape, axes)
    return (_broadcast_to(grad, a.shape),)


def _mean_backward(out: Tensor, grad: Any) -> tuple:
    (a,), (axes, keepdims) = out._parents, out._saved
    count = int(np.prod([a.shape[i] for i in axes], dtype=int))
    if not keepdims:
        grad = _expand_reduced(grad, a.shape, axes)
    return (_broadcast_to(grad / count, a.shape),)


def _var_backward(out: Tensor, grad: Any) -> tuple:
    (a,), (axes, keepdims, ddof) = _inputs(out, grad), out._saved
    count = int(np.prod([a.shape[i] for i in axes], dtype=int))
    if not keepdims:
        grad = _expand_reduced(grad, a.shape, axes)
    centered = a - a.mean(axis=axes, keepdims=True)
    # d var/d xᵢ = 2 (xᵢ - mean) / (n - ddof)
    return (grad * centered * (2.0 / (count - ddof)),)


def _max_backward(out: Tensor, grad: Any) -> tuple:
    (a,), (axes, keepdims) = out._parents, out._saved
    maxima = out.data if keepdims else _expand_reduced(out.data, a.shape, axes)
    if not keepdims:
        grad = _expand_reduced(grad, a.shape, axes)
    is_max = a.data == maxima
    share = is_max / is_max.sum(axis=axes, keepdims=True)
    return (grad * share.astype(a.data.dtype),)


def _reshape_backward(out: Tensor, grad: Any) -> tuple:
    return (grad.reshape(out._parents[0].shape),)


def _transpose_backward(out: Tensor, grad: Any) -> tuple:
    return (grad.transpose(*np.argsort(out._saved).tolist()),)


def _index_backward(out: Tensor, grad: Any) -> tuple:
    (a,), index = out._parents, out._saved
    if _graph_mode(grad):
        full = _scatter(grad.data, a.shape, index)
        return (grad._make(full, (grad,), "scatter", _gather_rule, index),)
    return (_scatter(grad, a.shape, index),)


def _scatter(grad: np.ndarray, shape: tuple[int, ...], index: Any) -> np.ndarray:
    full = np.zeros(shape, dtype=grad.dtype)
    np.add.at(full, index, grad)  # scatter-add: repeated indices each add their share
    return full


def _gather_rule(out: Tensor, grad: Any) -> tuple:
    # scatter's backward: read the scattered entries back (the index op)
    return (grad[out._saved],)


# rules of the comparisons-and-selection block (where, maximum/minimum, logsumexp, ...)


def _where_backward(out: Tensor, grad: Any) -> tuple:
    mask = out._saved.astype(out.data.dtype)  # the condition, a constant 0/1
    return grad * mask, grad * (1 - mask)


def _maximum_backward(out: Tensor, grad: Any) -> tuple:
    # the winner gets the grad, a tie halves it (PyTorch); also minimum's rule
    a, b = out._parents
    share_a = (a.data == out.data).astype(out.data.dtype)
    share_a -= 0.5 * (a.data == b.data)
    return grad * share_a, grad * (1 - share_a)


def _logsumexp_backward(out: Tensor, grad: Any) -> tuple:
    (a,), result, (axes, keepdims) = _inputs(out, grad), _output(out, grad), out._saved
    if not keepdims:
        result = _expand_reduced(result, a.shape, axes)
        grad = _expand_reduced(grad, a.shape, axes)
    softmax = (a - result).exp() if _graph_mode(grad) else np.exp(a - result)
    return (grad * softmax,)  # the softmax over the axes


def _expand_backward(out: Tensor, grad: Any) -> tuple:
    return (grad,)  # Tensor.pushes sums it over the expanded axes


def _rsqrt_backward(out: Tensor, grad: Any) -> tuple:
    rsqrt = _output(out, grad)
    return (grad * -0.5 * rsqrt**3,)  # d(x^(−1/2))/dx = −½ x^(−3/2)


def _leaky_relu_backward(out: Tensor, grad: Any) -> tuple:
    x, slope = out._parents[0].data, out._saved
    return (grad * np.where(x > 0, 1, slope).astype(x.dtype),)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """x where ``condition`` holds, else y (``torch.where``); x or y may be numbers.

    Examples:
        >>> import tinybn as tb
        >>> x = tb.tensor([-1.0, 2.0, -3.0])
        >>> tb.tensor_module.where(x.data > 0, x, 0.0).data
        array([0., 2., 0.], dtype=float32)
    """
    if not isinstance(x, Tensor):
        if not isinstance(y, Tensor):
            x = Tensor(x)
        else:
            x = y._lift(x)
    return x.where(condition, y)


def _concat_backward(out: Tensor, grad: Any) -> tuple:
    axis, sizes = out._saved
    edges = np.cumsum([0, *sizes]).tolist()
    before = (slice(None),) * axis
    return tuple(grad[before + (slice(lo, hi),)] for lo, hi in zip(edges, edges[1:]))


def _stack_backward(out: Tensor, grad: Any) -> tuple:
    axis = out._saved
    before = (slice(None),) * axis
    return tuple(grad[before + (i,)] for i in range(len(out._parents)))


def _as_tensors(tensors: Sequence[Any], op: str) -> list[Tensor]:
    """The inputs of a join as Tensors (arrays are wrapped); at least one is needed."""
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    return tensors


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis.

    Examples:
        >>> import tinybn as tb
        >>> tb.concatenate([tb.tensor([[1.0, 2.0]]), tb.tensor([[3.0, 4.0]])]).shape
        (2, 2)
    """
    tensors = _as_tensors(tensors, "concatenate")
    try:
        data = np.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(_shape_str(t.shape) for t in tensors)
        raise ValueError(f"concatenate: shapes {shapes} do not match off axis {axis}") from None
    axis = axis % data.ndim
    sizes = [t.shape[axis] for t in tensors]
    return tensors[0]._make(data, tuple(tensors), "concat", _concat_backward, (axis, sizes))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis.

    Examples:
        >>> import tinybn as tb
        >>> tb.stack([tb.tensor([1.0, 2.0]), tb.tensor([3.0, 4.0])], axis=1).shape
        (2, 2)
    """
    tensors = _as_tensors(tensors, "stack")
    try:
        data = np.stack([t.data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(_shape_str(t.shape) for t in tensors)
        raise ValueError(f"stack: shapes {shapes} differ") from None
    return tensors[0]._make(data, tuple(tensors), "stack", _stack_backward, axis % data.ndim)


def tensor(
    data: Tensor | ArrayLike, dtype: DTypeLike | None = None, requires_grad: bool = False
) -> Tensor:
    """A new leaf Tensor holding a copy of ``data``, like ``torch.tensor``.

    The dtype is inferred as PyTorch does: Python floats → the default float dtype
    (float32), Python ints → int64, bools → bool; a numpy array (or a Tensor) keeps its
    dtype. ``dtype`` converts explicitly. Unlike ``Tensor(data)``, which turns every list
    into floats, ``tensor([1, 2, 3])`` is an int64 tensor, as in PyTorch.

    Args:
        data: a number, nested lists of numbers, a numpy array or a Tensor (copied; a
            Tensor's graph is not kept).
        dtype: a numpy dtype (np.float32, "float64", np.int64, ...) or None.
        requires_grad: make it a leaf whose .grad backward() fills (floating dtypes only).

    Examples:
        >>> import tinybn as tb
        >>> tb.tensor([1, 2, 3]).data.dtype  # integers stay integers, as torch.tensor
        dtype('int64')
        >>> tb.tensor([1.0, 2.0]).data.dtype  # floats take the default dtype
        dtype('float32')
    """
    if isinstance(data, Tensor):
        array = data.data.copy()
    elif isinstance(data, (np.ndarray, np.generic)):
        array = np.array(data)
    else:
        array = np.array(data)
        if array.dtype.kind == "f":
            array = array.astype(_default_dtype)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
        elif array.dtype.kind != "b":
            array = _as_array(data)  # raises the TypeError for non-numbers
    if dtype is not None:
        array = array.astype(dtype)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"tensor: data must be numeric, got dtype {array.dtype}")
    return Tensor(array, requires_grad=requires_grad)
