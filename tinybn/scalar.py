"""Value: one float, its gradient, the op that made it and the values it came from.

Each operation computes its result, and names its local derivatives ∂out/∂input: a
small rule function right below the class, ``rule(out, inputs) -> (∂out/∂input, ...)``,
whose formula sits beside the op's in a comment. Backward is then the same one line for
every op — the chain rule (``pushes`` and ``push_grad``):

    parent.grad += (∂out/∂parent) · out.grad

A rule computes with whatever it is given: the floats ``out.data`` and the inputs' data in a
plain backward pass, or the Values themselves in ``backward(create_graph=True)``, where its
arithmetic builds a graph of the gradient that can be drawn and differentiated again.

Storing a plain function instead of a per-node closure (as micrograd does) means a node
holds no reference to itself, so graphs are freed by reference counting alone, never by
the cycle collector, and each node costs a fraction of the memory.

Bad input raises before a node is made: a ValueError/TypeError naming the op and the
value (log of a non-positive number, ...). A result too large for a float: ``+ - * /``
and ``exp`` follow IEEE arithmetic and give ±inf, as PyTorch does (``exp(1000) = inf``);
where Python's float arithmetic raises instead — ``**``, the exact sums of ``sum`` and
``mean``, an int beyond 1.8e308 — the error is an ``OverflowError`` (the inputs are valid,
the result does not fit) whose message names the op and the operands.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import Any, cast

from tinybn import autograd, fast

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
        digits = len(str(abs(int(data))))  # type: ignore[arg-type]
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
    """A scalar node in a computation graph: ``Value(data, label="")``.

    Make leaves with ``Value(2.0, label="a")`` (or many at once with ``tb.values``);
    arithmetic on Values makes the inner nodes, and ``backward()`` fills every ``grad``.
    (The constructor's other arguments are how operations link a new node to its
    parents; they are not for users.) Taught in chapter 0, *Backprop in ten minutes*.

    Examples:
        >>> from tinybn import Value
        >>> a, b = Value(2.0, label="a"), Value(-3.0, label="b")
        >>> L = (a * b + a).named("L")
        >>> L.backward()
        >>> L.data, a.grad, b.grad
        (-4.0, -2.0, 2.0)

    Attributes:
        data: the float this node holds.
        grad: dL/d(this node) after ``backward()``; starts at 0.0.
        label: a name for drawings and reprs (settable).
        op: the operation that produced this node ("" for a leaf).
        role: the stage of a normalization this node is ("mean", "xhat", ...; see
            ``tinybn.functional.NORM_STAGES``), set where that formula builds it; else None.
    """

    __slots__ = (
        "data",
        "grad",
        "label",
        "op",
        "role",
        "_parents",
        "_rule",
        "_backward_runs",
    )

    def __init__(
        self,
        data: Number,
        _parents: tuple[Value, ...] = (),
        op: str = "",
        _rule: Callable | None = None,
        label: str = "",
    ) -> None:
        self.data = data if type(data) is float else _check_number(data, "Value")
        self.grad: float | Value = 0.0  # a Value under create_graph
        self.label = label
        self.op = op
        self.role: str | None = None
        self._parents = _parents
        self._rule = _rule
        self._backward_runs = 0  # see autograd._warn_if_repeated

    # -- building blocks -------------------------------------------------------------

    @staticmethod
    def _lift(other: Value | Number, op: str) -> Value:
        return other if isinstance(other, Value) else Value(_check_number(other, op))

    def _result(self, data: float, parents: tuple[Value, ...], op: str, rule: Callable) -> Value:
        """A new node; records the graph edge only while gradients are being recorded."""
        if autograd._grad_enabled:
            return Value(data, parents, op, rule)
        return Value(data)

    # -- arithmetic: forward value and local derivatives side by side ------------------

    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other, "+")
        # d(a+b)/da = 1, d(a+b)/db = 1
        return self._result(self.data + other.data, (self, other), "+", _add_rule)

    def __sub__(self, other: Value | Number) -> Value:
        other = self._lift(other, "-")
        # d(a-b)/da = 1, d(a-b)/db = -1
        return self._result(self.data - other.data, (self, other), "-", _sub_rule)

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other, "*")
        # d(a·b)/da = b, d(a·b)/db = a
        return self._result(self.data * other.data, (self, other), "*", _mul_rule)

    def __truediv__(self, other: Value | Number) -> Value:
        other = self._lift(other, "/")
        if other.data == 0.0:
            raise ValueError(f"/: division by zero ({self.data!r} / 0.0{_named(other)})")
        out = self.data * (1.0 / other.data)
        # d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -out/b
        return self._result(out, (self, other), "/", _div_rule)

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
        return self._result(out, (self,), f"**{exponent}", functools.partial(_pow_rule, k))

    def __neg__(self) -> Value:
        # d(-a)/da = -1
        return self._result(-self.data, (self,), "neg", _neg_rule)

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
        return self._result(out, (self,), f"{base}**", functools.partial(_rpow_rule, math.log(c)))

    # -- elementary functions ---------------------------------------------------------

    def relu(self) -> Value:
        positive = self.data > 0.0
        # d relu(a)/da = 1 if a > 0 else 0
        return self._result(self.data if positive else 0.0, (self,), "relu", _relu_rule)

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        # d tanh(a)/da = 1 - tanh(a)²
        return self._result(t, (self,), "tanh", _tanh_rule)

    def sigmoid(self) -> Value:
        a = self.data
        # two forms so that exp never overflows
        s = 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))
        # d σ(a)/da = σ(a)·(1 - σ(a))
        return self._result(s, (self,), "sigmoid", _sigmoid_rule)

    def exp(self) -> Value:
        try:
            e = math.exp(self.data)
        except OverflowError:
            e = math.inf
        # d e^a/da = e^a
        return self._result(e, (self,), "exp", _exp_rule)

    def log(self) -> Value:
        if self.data <= 0.0:
            raise ValueError(f"log: argument must be positive, got {self.data!r}{_named(self)}")
        # d ln(a)/da = 1/a
        return self._result(math.log(self.data), (self,), "log", _log_rule)

    def sqrt(self) -> Value:
        if self.data < 0.0:
            raise ValueError(f"sqrt: argument must be >= 0, got {self.data!r}{_named(self)}")
        s = math.sqrt(self.data)
        # d √a/da = 1 / (2√a)
        return self._result(s, (self,), "sqrt", _sqrt_rule)

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
        return parents[0]._result(total, parents, "sum", _sum_rule)

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
        return parents[0]._result(mean, parents, "mean", _mean_rule)

    # -- autograd ---------------------------------------------------------------------

    def pushes(self, grad: float | Value | None = None) -> list[tuple[Value, float | Value]]:
        """What ``grad`` = dL/d(self) (default: ``self.grad``) sends to each parent:
        ``(parent, ∂self/∂parent · grad)`` — the chain rule, for every op at once.

        A float grad (a plain backward pass) gives floats; a Value grad (create_graph)
        gives Values, computed by the same rule from the Values themselves.
        """
        if grad is None:
            grad = self.grad
        parents = self._parents
        if self._rule is None:  # a leaf: nothing to push to
            return []
        if type(grad) is float:
            if len(parents) < 3:
                return fast.float_pushes(self, grad)  # the same, unrolled (see tinybn/fast)
            locals_ = self._rule(self.data, [parent.data for parent in parents])
            return [(parent, local * grad) for parent, local in zip(parents, locals_)]
        locals_ = self._rule(self, parents)
        value_grad = cast(Value, grad)  # create_graph: the grad is a node
        return [(parent, _times(local, value_grad)) for parent, local in zip(parents, locals_)]

    def push_grad(self) -> list[tuple[Value, float | Value]]:
        """One step of backpropagation: add ``self.pushes()`` to the parents' grads."""
        pushes = self.pushes()
        if type(self.grad) is float:
            for parent, amount in pushes:
                parent.grad += amount
        else:
            for parent, amount in pushes:
                parent._accumulate_grad(amount)
        return pushes

    def _accumulate_grad(self, grad: float | Value) -> None:
        if type(self.grad) is float and self.grad == 0.0 and isinstance(grad, Value):
            self.grad = grad  # create_graph: the first grad is the pushed Value itself
        else:
            self.grad += grad

    def _zero_grad(self) -> None:
        self.grad = 0.0

    def backward(
        self,
        grad: Number | Value = 1.0,
        *,
        retain_graph: bool = False,
        create_graph: bool = False,
    ) -> None:
        """Fill ``.grad`` of every node this one depends on with d(self)/d(node).

        Grads accumulate over calls, as in PyTorch; a second call on the same root without
        ``zero_grad()`` warns once, unless this first call said ``retain_graph=True``.
        ``create_graph=True``: every grad is a Value with a graph of its own (built by the
        same local rules), so it can be drawn, stepped and differentiated again.
        """
        if retain_graph:
            self._backward_runs = -1
        autograd.run_backward(self, self._backward_seed(grad, create_graph), create_graph)

    def _backward_seed(self, grad: Number | Value | None, create_graph: bool) -> float | Value:
        """dL/d(self) to start backward from: a float, or a Value under create_graph."""
        if isinstance(grad, Value):
            return grad if create_graph else grad.data
        seed = 1.0 if grad is None else _check_number(grad, "backward")
        return Value(seed) if create_graph else seed

    def zero_grad(self) -> None:
        """Set the grad of every node in this graph to 0."""
        autograd.zero_grad_graph(self)

    def named(self, label: str, role: str | None = None) -> Value:
        """Set the label (and the role) and return self, for chaining: ``(a * b).named("ab")``."""
        self.label = label
        if role is not None:
            self.role = role
        return self

    @property
    def parents(self) -> tuple[Value, ...]:
        """The values this one was computed from."""
        return self._parents

    @property
    def local_grads(self) -> tuple[float, ...]:
        """∂self/∂parent for each parent, at the values of this graph."""
        if self._rule is None:
            return ()
        return tuple(self._rule(self.data, [parent.data for parent in self._parents]))

    def __repr__(self) -> str:
        name = f"label={self.label!r}, " if self.label else ""
        grad = _data(self.grad)  # a grad with a graph (create_graph) shows its value
        return f"Value({name}data={_significant(self.data)}, grad={_significant(grad)})"

    def _repr_svg_(self) -> str | None:  # Jupyter shows a Value as its graph
        from tinybn.viz.graph import jupyter_svg

        return jupyter_svg(self)


# -- local derivatives: rule(out, inputs) -> ∂out/∂input for each input -------------------
# ``out`` and ``inputs`` are floats in a plain backward pass and Values under create_graph:
# each formula is written once, with operations both understand. A comparison (relu, the
# special points of √ and powers) reads the float; the result there is a constant.


def _data(v: float | Value) -> float:
    return v.data if isinstance(v, Value) else v


def _times(local: float | Value, grad: Value) -> Value:
    """local · grad in a gradient graph, without a node for a factor of ±1."""
    if type(local) is float:
        if local == 1.0:
            return grad
        if local == -1.0:
            return -grad
    return local * grad


def _add_rule(out, inputs):  # d(a+b)/da = 1, d(a+b)/db = 1
    return (1.0, 1.0)


def _sub_rule(out, inputs):  # d(a-b)/da = 1, d(a-b)/db = -1
    return (1.0, -1.0)


def _mul_rule(out, inputs):  # d(a·b)/da = b, d(a·b)/db = a
    a, b = inputs
    return (b, a)


def _div_rule(out, inputs):  # d(a/b)/da = 1/b, d(a/b)/db = -a/b² = -out/b
    inverse = 1.0 / inputs[1]
    return (inverse, -out * inverse)


def _neg_rule(out, inputs):  # d(-a)/da = -1
    return (-1.0,)


def _pow_rule(k, out, inputs):  # d(a^k)/da = k·a^(k-1)
    (a,) = inputs
    if k == 0.0:
        return (0.0,)
    if _data(a) == 0.0 and k < 1.0:  # +∞ at 0 for 0 < k < 1, as for √a
        return (math.inf,)
    if isinstance(a, Value):
        return (k * a ** (k - 1.0),)
    return (_pow_derivative(a, k),)


def _rpow_rule(log_c, out, inputs):  # d(c^a)/da = c^a·ln c
    return (out * log_c,)


def _relu_rule(out, inputs):  # d relu(a)/da = 1 if a > 0 else 0
    return (1.0 if _data(inputs[0]) > 0.0 else 0.0,)


def _tanh_rule(out, inputs):  # d tanh(a)/da = 1 - tanh(a)²
    return (1.0 - out * out,)


def _sigmoid_rule(out, inputs):  # d σ(a)/da = σ(a)·(1 - σ(a))
    return (out * (1.0 - out),)


def _exp_rule(out, inputs):  # d e^a/da = e^a
    return (out,)


def _log_rule(out, inputs):  # d ln(a)/da = 1/a
    return (1.0 / inputs[0],)


def _sqrt_rule(out, inputs):  # d √a/da = 1/(2√a); +∞ at a = 0
    return (0.5 / out if _data(out) > 0.0 else math.inf,)


def _sum_rule(out, inputs):  # d Σ/d vᵢ = 1
    return (1.0,) * len(inputs)


def _mean_rule(out, inputs):  # d mean/d vᵢ = 1/n
    return (1.0 / len(inputs),) * len(inputs)


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
    """Nested lists of numbers → the same nesting of leaf Values, labelled ``label[i,j]``.

    Examples:
        >>> import tinybn as tb
        >>> x = tb.values([[1.0, 2.0], [3.0, 4.0]], "x")
        >>> x[1][0]
        Value(label='x[1,0]', data=3.0, grad=0.0)
    """
    # a numpy array becomes nested lists first (its rows are neither lists nor numbers)
    return _build_values(data.tolist() if hasattr(data, "tolist") else list(data), (), label)


def _build_values(item: object, index: tuple[int, ...], label: str) -> Any:
    # A module-level function, not a closure inside values(): a recursive closure refers
    # to itself, so every call would leave a reference cycle for the garbage collector.
    if isinstance(item, (list, tuple)):
        return [_build_values(sub, index + (i,), label) for i, sub in enumerate(item)]
    name = f"{label}[{','.join(map(str, index))}]" if label else ""
    return Value(_check_number(item, "values"), label=name)
