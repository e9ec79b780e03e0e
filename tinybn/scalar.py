"""Value: one float, its gradient, the op that made it and the values it came from.

Each operation computes its result AND its local derivatives ∂out/∂input right there,
beside the forward formula, and stores the derivatives on the new node. Backward is
then the same one line for every op — the chain rule:

    parent.grad += (∂out/∂parent) · out.grad

Storing numbers instead of a per-node closure (as micrograd does) means a node holds
no reference to itself, so graphs are freed by reference counting alone, never by the
cycle collector, and each node costs a fraction of the memory.

Bad input raises before a node is made: a ValueError/TypeError naming the op and the
value (log of a non-positive number, ...). A result too large for a float: ``+ - * /``
and ``exp`` follow IEEE arithmetic and give ±inf, as PyTorch does (``exp(1000) = inf``);
where Python's float arithmetic raises instead — ``**``, the exact sums of ``sum`` and
``mean``, an int beyond 1.8e308 — the error is an ``OverflowError`` (the inputs are valid,
the result does not fit) whose message names the op and the operands.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from numbers import Real

from tinybn import autograd

Number = int | float


def _check_number(data: object, op: str) -> float:
    # the common cases first, without the much slower isinstance(·, Real) check
    if type(data) is float:
        return data
    if type(data) is not int and (isinstance(data, bool) or not isinstance(data, Real)):
        raise TypeError(
            f"{op}: Value data must be a real number, got {type(data).__name__} {data!r}"
        )
    try:
        return float(data)
    except OverflowError:  # an int (or Fraction) beyond ~1.8e308
        digits = len(str(abs(int(data))))
        raise OverflowError(
            f"{op}: the number {str(data)[:12]}... ({digits} digits) is too large for a "
            f"float (max {sys.float_info.max:.6g})"
        ) from None


def _power(base: float, exponent: float, what: str) -> float:
    """base ** exponent; ``what`` names the operands in the OverflowError that replaces
    Python's bare "(34, 'Numerical result out of range')"."""
    try:
        return base**exponent
    except OverflowError:
        raise OverflowError(
            f"**: {what} overflows a float (|result| > {sys.float_info.max:.6g})"
        ) from None


class Value:
    """A scalar node in a computation graph.

    Attributes:
        data: the float this node holds.
        grad: dL/d(this node) after ``backward()``; starts at 0.0.
        label: a name for drawings and reprs (settable).
        op: the operation that produced this node ("" for a leaf).
    """

    __slots__ = ("data", "grad", "label", "op", "_parents", "_local_grads")

    def __init__(
        self,
        data: Number,
        _parents: tuple[Value, ...] = (),
        op: str = "",
        _local_grads: tuple[float, ...] = (),
        label: str = "",
    ) -> None:
        self.data = data if type(data) is float else _check_number(data, "Value")
        self.grad = 0.0
        self.label = label
        self.op = op
        self._parents = _parents
        self._local_grads = _local_grads

    # -- building blocks -------------------------------------------------------------

    @staticmethod
    def _lift(other: Value | Number, op: str) -> Value:
        return other if isinstance(other, Value) else Value(_check_number(other, op))

    def _result(self, data: float, parents: tuple[Value, ...], op: str, local: tuple) -> Value:
        """A new node; records the graph edge only while gradients are being recorded."""
        if autograd._grad_enabled:
            return Value(data, parents, op, local)
        return Value(data)

    # -- arithmetic: forward value and local derivatives side by side ------------------

    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other, "+")
        # d(a+b)/da = 1, d(a+b)/db = 1
        return self._result(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __sub__(self, other: Value | Number) -> Value:
        other = self._lift(other, "-")
        # d(a-b)/da = 1, d(a-b)/db = -1
        return self._result(self.data - other.data, (self, other), "-", (1.0, -1.0))

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other, "*")
        # d(a·b)/da = b, d(a·b)/db = a
        return self._result(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __truediv__(self, other: Value | Number) -> Value:
        other = self._lift(other, "/")
        if other.data == 0.0:
            raise ValueError(f"/: division by zero ({self.data!r} / 0.0{_named(other)})")
        inverse = 1.0 / other.data
        out = self.data * inverse
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b²
        return self._result(out, (self, other), "/", (inverse, -out * inverse))

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, Value):
            raise TypeError("**: the exponent must be a number, not a Value (use exp/log)")
        k = _check_number(exponent, "**")
        base = self.data
        if base < 0.0 and not k.is_integer():
            raise ValueError(f"**: negative base {base!r}{_named(self)} to fractional power {k!r}")
        if base == 0.0 and k < 0.0:
            raise ValueError(f"**: zero base{_named(self)} to negative power {k!r}")
        out = _power(base, k, f"{base!r}{_named(self)} to power {k!r}")
        # d(a^k)/da = k·a^(k-1); at a = 0 with 0 < k < 1 that is +∞ (as for √a)
        if k == 0.0:
            local = 0.0
        elif base == 0.0 and k < 1.0:
            local = math.inf
        else:
            local = _pow_derivative(base, k)
        return self._result(out, (self,), f"**{exponent}", (local,))

    def __neg__(self) -> Value:
        # d(-a)/da = -1
        return self._result(-self.data, (self,), "neg", (-1.0,))

    def __radd__(self, other: Number) -> Value:
        return self._lift(other, "+") + self

    def __rsub__(self, other: Number) -> Value:
        return self._lift(other, "-") - self

    def __rmul__(self, other: Number) -> Value:
        return self._lift(other, "*") * self

    def __rtruediv__(self, other: Number) -> Value:
        return self._lift(other, "/") / self

    def __rpow__(self, base: Number) -> Value:
        """c ** a for a positive number c: c^a = e^(a·ln c)."""
        c = _check_number(base, "**")
        if c <= 0.0:
            raise ValueError(
                f"**: number ** Value needs a positive base, got {base!r}{_named(self)}"
            )
        out = _power(c, self.data, f"{base!r} to power {self.data!r}{_named(self)}")
        # d(c^a)/da = c^a·ln c
        return self._result(out, (self,), f"{base}**", (out * math.log(c),))

    # -- elementary functions ---------------------------------------------------------

    def relu(self) -> Value:
        positive = self.data > 0.0
        # d relu(a)/da = 1 if a > 0 else 0
        return self._result(self.data if positive else 0.0, (self,), "relu", (float(positive),))

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        # d tanh(a)/da = 1 - tanh(a)²
        return self._result(t, (self,), "tanh", (1.0 - t * t,))

    def sigmoid(self) -> Value:
        a = self.data
        # two forms so that exp never overflows
        s = 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))
        # d σ(a)/da = σ(a)·(1 - σ(a))
        return self._result(s, (self,), "sigmoid", (s * (1.0 - s),))

    def exp(self) -> Value:
        try:
            e = math.exp(self.data)
        except OverflowError:
            e = math.inf
        # d e^a/da = e^a
        return self._result(e, (self,), "exp", (e,))

    def log(self) -> Value:
        if self.data <= 0.0:
            raise ValueError(f"log: argument must be positive, got {self.data!r}{_named(self)}")
        # d ln(a)/da = 1/a
        return self._result(math.log(self.data), (self,), "log", (1.0 / self.data,))

    def sqrt(self) -> Value:
        if self.data < 0.0:
            raise ValueError(f"sqrt: argument must be >= 0, got {self.data!r}{_named(self)}")
        s = math.sqrt(self.data)
        # d √a/da = 1 / (2√a)
        return self._result(s, (self,), "sqrt", (0.5 / s if s > 0.0 else math.inf,))

    # -- n-ary reductions: ONE node with n parents -------------------------------------

    @staticmethod
    def sum(values: Iterable[Value | Number]) -> Value:
        """Σ values as one node (d Σ/d vᵢ = 1), not a chain of n-1 binary additions."""
        parents = tuple(Value._lift(v, "sum") for v in values)
        if not parents:
            raise ValueError("sum: needs at least one value")
        try:
            total = math.fsum(p.data for p in parents)
        except (OverflowError, ValueError) as error:
            total = _fsum_fallback(parents, "sum", error)
        return parents[0]._result(total, parents, "sum", (1.0,) * len(parents))

    @staticmethod
    def mean(values: Iterable[Value | Number]) -> Value:
        """(1/n) Σ values as one node (d mean/d vᵢ = 1/n)."""
        parents = tuple(Value._lift(v, "mean") for v in values)
        if not parents:
            raise ValueError("mean: needs at least one value")
        n = len(parents)
        try:
            mean = math.fsum(p.data for p in parents) / n
        except (OverflowError, ValueError) as error:
            mean = _fsum_fallback(parents, "mean", error, n)
        return parents[0]._result(mean, parents, "mean", (1.0 / n,) * n)

    # -- autograd ---------------------------------------------------------------------

    def _backward(self) -> None:
        grad = self.grad
        for parent, local in zip(self._parents, self._local_grads):
            parent.grad += local * grad

    def _accumulate_grad(self, grad: float) -> None:
        self.grad += grad

    def _zero_grad(self) -> None:
        self.grad = 0.0

    def backward(self, grad: Number = 1.0) -> None:
        """Fill ``.grad`` of every node this one depends on with d(self)/d(node)."""
        autograd.run_backward(self, float(grad))

    def zero_grad(self) -> None:
        """Set the grad of every node in this graph to 0."""
        autograd.zero_grad_graph(self)

    def named(self, label: str) -> Value:
        """Set the label and return self, for chaining: ``(a * b).named("ab")``."""
        self.label = label
        return self

    @property
    def parents(self) -> tuple[Value, ...]:
        """The values this one was computed from."""
        return self._parents

    @property
    def local_grads(self) -> tuple[float, ...]:
        """∂self/∂parent for each parent, as computed in the forward pass."""
        return self._local_grads

    def __repr__(self) -> str:
        name = f"label={self.label!r}, " if self.label else ""
        return f"Value({name}data={_significant(self.data)}, grad={_significant(self.grad)})"

    def _repr_svg_(self) -> str | None:  # Jupyter shows a Value as its graph
        from tinybn.viz.graph import jupyter_svg

        return jupyter_svg(self)


def _significant(number: float) -> str:
    """``number`` to 6 significant digits, as a float literal: 1e-09 (not 0.0), 2.08128, 55.0."""
    text = f"{number:.6g}"
    return text if any(c in text for c in ".enai") else text + ".0"


def _named(value: Value) -> str:
    return f" (label {value.label!r})" if value.label else ""


def _pow_derivative(base: float, k: float) -> float:
    """k·base^(k−1); ±∞ (not Python's bare OverflowError) when only the derivative
    overflows, e.g. base = 1e-200, k = −1.5 — as the local grad of √ at 0 is +∞."""
    try:
        return k * base ** (k - 1.0)
    except OverflowError:
        # base < 0 only with an integer k (checked by the caller): base^(k−1) < 0 iff k−1 is odd
        negative_power = base < 0.0 and (k - 1.0) % 2.0 == 1.0
        return math.copysign(math.inf, -k if negative_power else k)


def _fsum_fallback(parents: tuple[Value, ...], op: str, error: Exception, n: int = 1) -> float:
    """Σ vᵢ / n exactly, where math.fsum alone raised ``error``.

    fsum raises a bare OverflowError when a partial sum exceeds the float range, even if
    the total fits (1e308 + 1e308 − 1e308), and a bare ValueError for +∞ and −∞ together.
    Here every term is scaled by a power of two 2⁻ᵏ ≤ 1/m (m values; exact for normal
    floats), so that no partial sum can overflow, and the scale is divided out at the end.
    Only a sum (n = 1) can then still be too large; a mean cannot exceed the largest |vᵢ|.
    """
    infinities = {p.data for p in parents if math.isinf(p.data)}
    if isinstance(error, ValueError) or len(infinities) == 2:
        raise ValueError(f"{op}: the values include both +inf and -inf (the sum is NaN)") from None
    if infinities:  # one-signed infinities: the sum is that infinity, not an overflow
        return infinities.pop()
    scale = 2.0 ** -math.ceil(math.log2(len(parents)))
    result = math.fsum(p.data * scale for p in parents) / (n * scale)
    if math.isinf(result):
        largest = max(parents, key=lambda p: abs(p.data))
        raise OverflowError(
            f"{op}: the sum of {len(parents)} values overflows a float (|sum| > "
            f"{sys.float_info.max:.6g}; largest value {largest.data!r}{_named(largest)})"
        )
    return result


def values(data: Sequence, label: str = "") -> list:
    """Nested lists of numbers → the same nesting of leaf Values, labelled ``label[i,j]``."""
    # a numpy array becomes nested lists first (its rows are neither lists nor numbers)
    return _build_values(data.tolist() if hasattr(data, "tolist") else list(data), (), label)


def _build_values(item: object, index: tuple[int, ...], label: str) -> object:
    # A module-level function, not a closure inside values(): a recursive closure refers
    # to itself, so every call would leave a reference cycle for the garbage collector.
    if isinstance(item, (list, tuple)):
        return [_build_values(sub, index + (i,), label) for i, sub in enumerate(item)]
    name = f"{label}[{','.join(map(str, index))}]" if label else ""
    return Value(_check_number(item, "values"), label=name)
