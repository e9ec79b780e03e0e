"""ValueArray: an n-d array of scalar Values that speaks the Tensor op vocabulary.

This is what lets ``tinybn.functional`` be written once: ``batch_norm`` calls
``x.mean(axis=0, keepdims=True)``, ``x - mu``, ``(var + eps).sqrt()`` ... and on a
ValueArray each of those becomes one scalar ``Value`` node per element (reductions
one n-ary node per output), so the resulting graph can be drawn and stepped through.

Elementwise arithmetic and broadcasting come from numpy object arrays, which call the
Python operators of the Values they hold.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinybn.scalar import Value, _check_number

_apply = {
    name: np.frompyfunc(getattr(Value, name), 1, 1)
    for name in ("relu", "tanh", "sigmoid", "exp", "log", "sqrt")
}


def _to_values(item: Any) -> Any:
    return item if isinstance(item, Value) else Value(_check_number(item, "ValueArray"))


class ValueArray:
    """An object ndarray of Values with Tensor-like methods (shape, mean, sqrt, ...).

    Examples:
        >>> import tinybn as tb
        >>> a = tb.ValueArray([[1.0, 2.0], [3.0, 4.0]]).named("a")
        >>> a.shape
        (2, 2)
        >>> m = a.mean(axis=0)
        >>> [v.data for v in m.values.ravel()]
        [2.0, 3.0]
    """

    __slots__ = ("values",)
    values: np.ndarray

    def __init__(self, data: Any) -> None:
        if isinstance(data, ValueArray):
            data = data.values
        elif not isinstance(data, np.ndarray):
            data = _object_array(data)
        self.values = np.frompyfunc(_to_values, 1, 1)(data).astype(object)

    @classmethod
    def _wrap(cls, values: np.ndarray) -> ValueArray:
        array = cls.__new__(cls)
        array.values = values
        return array

    # -- shape ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim

    def reshape(self, *shape: Any) -> ValueArray:
        return ValueArray._wrap(self.values.reshape(*shape))

    def __getitem__(self, index: Any) -> Any:
        item = self.values[index]
        return ValueArray._wrap(item) if isinstance(item, np.ndarray) else item

    def __len__(self) -> int:
        return len(self.values)

    def tolist(self) -> Any:
        """Back to nested lists of Values."""
        return self.values.tolist()

    @property
    def data(self) -> np.ndarray:
        """The float data as a numpy array."""
        return np.vectorize(lambda v: v.data, otypes=[float])(self.values)

    @property
    def grad(self) -> np.ndarray:
        """The grads as a numpy array."""
        return np.vectorize(lambda v: v.grad, otypes=[float])(self.values)

    # -- elementwise ops: numpy broadcasts, Values do the math -----------------------

    def _binary(self, other: Any, op: Any) -> ValueArray:
        other_values = other.values if isinstance(other, ValueArray) else other
        other_shape = np.shape(other_values)
        # checked first, so that a Value's own ValueError (e.g. division by zero) propagates
        try:
            np.broadcast_shapes(self.shape, other_shape)
        except ValueError:
            raise ValueError(
                f"{op.__name__}: shapes {self.shape} and {other_shape} do not broadcast"
            ) from None
        return ValueArray._wrap(np.asarray(op(self.values, other_values), dtype=object))

    def __add__(self, other: Any) -> ValueArray:
        return self._binary(other, np.add)

    def __radd__(self, other: Any) -> ValueArray:
        return ValueArray._wrap(np.asarray(np.add(other, self.values), dtype=object))

    def __sub__(self, other: Any) -> ValueArray:
        return self._binary(other, np.subtract)

    def __rsub__(self, other: Any) -> ValueArray:
        return ValueArray._wrap(np.asarray(np.subtract(other, self.values), dtype=object))

    def __mul__(self, other: Any) -> ValueArray:
        return self._binary(other, np.multiply)

    def __rmul__(self, other: Any) -> ValueArray:
        return ValueArray._wrap(np.asarray(np.multiply(other, self.values), dtype=object))

    def __truediv__(self, other: Any) -> ValueArray:
        return self._binary(other, np.true_divide)

    def __pow__(self, exponent: float) -> ValueArray:
        return ValueArray._wrap(np.frompyfunc(lambda v: v**exponent, 1, 1)(self.values))

    def __neg__(self) -> ValueArray:
        return ValueArray._wrap(np.frompyfunc(Value.__neg__, 1, 1)(self.values))

    def relu(self) -> ValueArray:
        return ValueArray._wrap(_apply["relu"](self.values))

    def tanh(self) -> ValueArray:
        return ValueArray._wrap(_apply["tanh"](self.values))

    def sigmoid(self) -> ValueArray:
        return ValueArray._wrap(_apply["sigmoid"](self.values))

    def exp(self) -> ValueArray:
        return ValueArray._wrap(_apply["exp"](self.values))

    def log(self) -> ValueArray:
        return ValueArray._wrap(_apply["log"](self.values))

    def sqrt(self) -> ValueArray:
        return ValueArray._wrap(_apply["sqrt"](self.values))

    # -- reductions: one n-ary Value node per output element ---------------------------

    def _reduce(self, reducer: Any, axis: Any, keepdims: bool) -> Any:
        axes = _normalize_axes(axis, self.ndim)
        kept = [a for a in range(self.ndim) if a not in axes]
        # move the reduced axes to the end, then reduce each row of the flattened view
        moved = self.values.transpose(kept + list(axes))
        kept_shape = tuple(self.shape[a] for a in kept)
        rows = moved.reshape(int(np.prod(kept_shape, dtype=int)), -1)
        out: np.ndarray = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            out[i] = reducer(row)
        out = out.reshape(kept_shape)
        if keepdims:
            out = out.reshape(tuple(1 if a in axes else n for a, n in enumerate(self.shape)))
        if out.ndim == 0:
            return out.item()
        return ValueArray._wrap(out)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce(Value.sum, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Any:
        return self._reduce(Value.mean, axis, keepdims)

    # -- labels -----------------------------------------------------------------------

    def named(self, label: str, role: str | None = None) -> ValueArray:
        """Label every element ``label[i,j,...]`` (its name in a formula and its index), and
        give each the ``role`` (its stage in a normalization), if one is given."""
        if not self.shape:
            self.values.item().named(label, role)  # the one Value of a 0-d array
            return self
        for index, value in zip(_index_strings(self.shape), self.values.flat):
            value.label = f"{label}[{index}]"
            if role is not None:
                value.role = role
        return self

    def __repr__(self) -> str:
        return f"ValueArray(shape={self.shape})"


@functools.lru_cache(maxsize=64)
def _index_strings(shape: tuple[int, ...]) -> tuple[str, ...]:
    """The strings "i,j,..." for every index of ``shape``, in C order.

    Cached per shape: batch norm labels nine arrays of the same few shapes, and building
    these strings (not the labelling itself) was most of the cost of ``named``.
    """
    return tuple(",".join(map(str, index)) for index in itertools.product(*map(range, shape)))


def _normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _object_array(data: Sequence) -> np.ndarray:
    """Nested lists → an object ndarray, refusing ragged rows with their lengths."""
    array: np.ndarray
    if not isinstance(data, (list, tuple)):
        array = np.empty((), dtype=object)
        array[()] = data
        return array
    if data and all(isinstance(row, (list, tuple)) for row in data):
        lengths = sorted({len(row) for row in data})
        if len(lengths) > 1:
            raise ValueError(f"ragged rows: row lengths {lengths} differ")
        rows = [_object_array(row) for row in data]
        return np.stack(rows) if rows else np.empty((0,), dtype=object)
    array = np.empty(len(data), dtype=object)
    for i, item in enumerate(data):
        if isinstance(item, (list, tuple)):
            raise ValueError("ragged rows: mixed numbers and lists")
        array[i] = item
    return array
