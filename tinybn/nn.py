"""Layers with state: PyTorch's ``torch.nn`` names, defaults, shapes and state_dict keys.

A ``Module`` owns three kinds of state, each kept in its own ordered dict:

* parameters — ``Parameter`` tensors the optimizer updates (``Linear.weight``, ...);
* buffers — tensors that are state but not learned (``running_mean``, ``num_batches_tracked``);
* submodules — the layers of a ``Sequential``, for example.

Assigning an attribute files it in the right dict (``self.weight = Parameter(...)``), so
``parameters()``, ``state_dict()`` and ``train()``/``eval()`` can walk the whole tree.
The math of each layer lives in ``tinybn.functional``; a module only holds its state and
calls it — in particular ``BatchNorm1d`` calls ``functional.batch_norm_with_stats`` and keeps
the running statistics that eval mode uses.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, overload

import numpy as np

from tinybn import fast
from tinybn import functional as F
from tinybn.autograd import no_grad
from tinybn.fast import kernels
from tinybn.random import default_generator
from tinybn.tensor import Tensor, get_default_dtype


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module: it requires grad by default.

    Examples:
        >>> from tinybn import nn
        >>> w = nn.Parameter([1.0, 2.0])  # a Tensor that wants a grad
        >>> w.requires_grad
        True
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _check_int(value: Any, name: str, minimum: int) -> int:
    """A size argument: TypeError if it is not an int, ValueError if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_real(value: Any, name: str) -> float:
    """A numeric option (eps, momentum, p): TypeError if it is not a real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    return value  # type: ignore[return-value]  # a numpy number is kept as it is


def _as_tensor(x: Any, layer: str) -> Tensor:
    """A module's input: a Tensor, or a numeric numpy array (wrapped, keeping its dtype)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, np.ndarray):
        return Tensor(x)
    raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}")


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped, as PyTorch's ``_IncompatibleKeys``."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class StateDictError(ValueError, RuntimeError):
    """A state_dict that does not fit the model (a ValueError; also a RuntimeError, as in
    PyTorch, so code written for either catches it)."""


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign their parameters, buffers and
    submodules as attributes, and define ``forward``. Calling the module calls ``forward``.

    Attributes:
        training: True in training mode (batch statistics, dropout on), False after eval().

    Examples:
        >>> from tinybn import Tensor, nn
        >>> class Affine(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.scale = nn.Parameter([2.0])  # in parameters(), state_dict()
        ...
        ...     def forward(self, x):
        ...         return x * self.scale
        >>> model = Affine()
        >>> model(Tensor([1.0, 3.0])).data
        array([2., 6.], dtype=float32)
        >>> list(model.state_dict())
        ['scale']
    """

    # names of this module's state that load_state_dict may find missing (the module keeps
    # its current value); see BatchNorm1d
    _optional_state: frozenset[str] = frozenset()

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist already
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    # -- registration ------------------------------------------------------------------

    def _dicts(self) -> tuple[dict, dict, dict]:
        try:
            d = self.__dict__
            return d["_parameters"], d["_buffers"], d["_modules"]
        except KeyError:
            raise AttributeError(
                f"cannot assign to {type(self).__name__} before Module.__init__() is called "
                "(call super().__init__() first in your __init__)"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        params, buffers, modules = self._dicts()
        if isinstance(value, Parameter):
            self._file(name, value, params)
        elif isinstance(value, Module):
            self._file(name, value, modules)
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter '{name}' "
                    "(a Parameter or None is required)"
                )
            self._file(name, None, params)
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                value = Tensor(np.asarray(value))
            self._file(name, value, buffers)
        elif name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to submodule '{name}' "
                    "(a Module or None is required)"
                )
            self._file(name, None, modules)
        else:
            object.__setattr__(self, name, value)

    def _file(self, name: str, value: Any, registry: dict) -> None:
        """File ``value`` under ``name`` in ``registry``, and remove it from the other two.

        Replacing an entry within the same registry keeps its position (the order of a
        Sequential's layers and of state_dict keys), as in PyTorch.
        """
        for other in self._dicts():
            if other is not registry:
                other.pop(name, None)
        registry[name] = value
        fast.mirror_attribute(self, name, value)  # read without __getattr__ (tinybn/fast)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: look in the three registries
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in self._dicts():
            if name in registry:
                del registry[name]
                self.__dict__.pop(name, None)  # the plain-attribute copy (fast.mirror_attribute)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, which state_dict skips)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter '{name}' must be a Parameter or None, got {type(param)}")
        self._file(name, param, self._dicts()[0])

    def register_buffer(self, name: str, value: Any) -> None:
        """Add a buffer: state saved in state_dict but not trained (None is skipped)."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        self._file(name, value, self._dicts()[1])

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name`` (used by Sequential: "0", "1", ...)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{name} is not a Module: {type(module).__name__}")
        self._file(name, module, self._dicts()[2])

    # -- calling -----------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The layer's computation; a subclass defines it, and ``module(x)`` calls it.

        Examples:
            >>> from tinybn import Tensor, nn
            >>> class Double(nn.Module):
            ...     def forward(self, x):
            ...         return x * 2
            >>> Double()(Tensor([1.0, 2.0])).data
            array([2., 4.], dtype=float32)
        """
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- walking the tree --------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every module below it with its dotted name, depth first; a module
        used twice is listed once unless remove_duplicate is False (as in PyTorch)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry: str, prefix: str, recurse: bool) -> Iterator[tuple]:
        seen: set[int] = set()  # a shared tensor is listed once, as in PyTorch
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, tensor in getattr(module, registry).items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                yield (f"{module_name}.{name}" if module_name else name), tensor

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every learned tensor of this module (and of its children with ``recurse``), each
        once, in the order they were assigned: what an optimizer is given.

        Examples:
            >>> from tinybn import nn
            >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
            >>> [tuple(p.shape) for p in model.parameters()]
            [(3, 2), (3,), (3,), (3,)]
        """
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and grads -----------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Training mode (mode=True) or eval mode (mode=False), for this module and below."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Eval mode: BatchNorm uses its running statistics, Dropout is the identity."""
        return self.train(False)

    def _cast_floats(self, dtype: type) -> Module:
        for tensor in list(self.parameters()) + list(self.buffers()):
            if tensor.data.dtype.kind == "f":
                tensor.data = tensor.data.astype(dtype)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.astype(dtype)
        return self

    def double(self) -> Module:
        """Cast every floating parameter and buffer to float64 (e.g. for gradient checks)."""
        return self._cast_floats(np.float64)

    def float(self) -> Module:
        """Cast every floating parameter and buffer to float32."""
        return self._cast_floats(np.float32)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (None, or zeros in place)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad[...] = 0

    # -- state_dict ----------------------------------------------------------------------

    def _state_entries(self) -> Iterator[tuple[str, Module, str, Tensor]]:
        """(key, module, name, tensor) in PyTorch's order: per module, parameters then
        buffers, depth first.

        Unlike parameters(), nothing is de-duplicated: a module used twice (and so a tensor
        shared by two modules) appears under both keys, as in PyTorch's state_dict.
        """
        for module_name, module in self.named_modules(remove_duplicate=False):
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None:
                        key = f"{module_name}.{name}" if module_name else name
                        yield key, module, name, tensor

    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """(key, tensor) of every parameter and buffer, as in state_dict."""
        for key, _, _, tensor in self._state_entries():
            yield key, tensor

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Every parameter and buffer as a numpy array, keyed as PyTorch keys them.

        The arrays are copies: a snapshot that later training does not change.
        E.g. Sequential(Linear(2, 3), BatchNorm1d(3)) → "0.weight", "0.bias", "1.weight",
        "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked".
        """
        return OrderedDict((key, tensor.data.copy()) for key, tensor in self._state_items())

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays into the parameters and buffers with the same keys.

        Values may be numpy arrays (e.g. a PyTorch state_dict converted with .numpy()),
        Tensors or numbers; each is cast to the dtype of the tensor it replaces. Everything
        is checked first: missing or unexpected keys (when strict) and any shape mismatch
        raise ONE StateDictError listing them all, and the model is left unchanged.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        entries = list(self._state_entries())
        targets = OrderedDict((key, tensor) for key, _, _, tensor in entries)
        # a key a module may do without (BatchNorm's num_batches_tracked, absent from old
        # PyTorch checkpoints) keeps its current value, as PyTorch does
        optional = {key for key, module, name, _ in entries if name in module._optional_state}
        missing = [key for key in targets if key not in state_dict and key not in optional]
        unexpected = [key for key in state_dict if key not in targets]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        arrays = {}
        for key, tensor in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = np.asarray(value.data if isinstance(value, Tensor) else value)
            if array.dtype.kind not in "fiub":
                problems.append(f"{key!r} holds non-numeric data of dtype {array.dtype}")
            elif array.shape != tensor.shape:
                problems.append(
                    f"{key!r} has shape {array.shape} in the state_dict but {tensor.shape} "
                    "in the model"
                )
            else:
                arrays[key] = array
        if problems:
            raise StateDictError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(problems)
            )
        for key, array in arrays.items():
            tensor = targets[key]
            tensor.data = array.astype(tensor.data.dtype, copy=True)
        return LoadResult(missing, unexpected)

    # -- printing ------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The arguments shown inside this module's parentheses in repr."""
        return ""

    def __repr__(self) -> str:
        children = [
            f"({name}): " + repr(module).replace("\n", "\n  ")
            for name, module in self.named_children()
        ]
        extra = self.extra_repr()
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


# -- layers ----------------------------------------------------------------------------------


class Linear(Module):
    """Affine map y = x Wᵀ + b.

    Args:
        in_features: size D of each input row.
        out_features: size M of each output row.
        bias: whether to learn b.
        rng: numpy Generator for the initial weights (None: tinybn's default generator,
            which ``tb.manual_seed`` seeds).
    Shapes: x (..., D) → y (..., M); weight (M, D); bias (M,).
    Init (PyTorch's default, kaiming_uniform with a=√5): W and b ~ U(−1/√D, 1/√D).

    Examples:
        >>> from tinybn import Tensor, nn
        >>> layer = nn.Linear(3, 2)
        >>> tuple(layer.weight.shape), tuple(layer.bias.shape)
        ((2, 3), (2,))
        >>> layer(Tensor([[1.0, 2.0, 3.0]])).shape
        (1, 2)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_int(in_features, "Linear: in_features", 0)
        self.out_features = _check_int(out_features, "Linear: out_features", 0)
        rng = rng if rng is not None else default_generator()
        dtype = get_default_dtype()
        # kaiming_uniform(a=√5): gain √(2/(1+a²)) = √(1/3), bound gain·√(3/fan_in) = 1/√fan_in
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))
        if bias:
            self.bias = Parameter(rng.uniform(-bound, bound, size=out_features).astype(dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        x = _as_tensor(x, "Linear")
        shape = x.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input of shape {x.shape} does not end in in_features="
                f"{self.in_features} (weight is {self.weight.shape})"
            )
        return F.linear(x, self.weight, self.bias)  # one node: x @ W.T + b

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


_ONE = np.array(1, dtype=np.int64)  # num_batches_tracked's step (int64, as the buffer)
_ONE.flags.writeable = False


# -- the normalization family: one base ------------------------------------------------------


class _NormBase(Module):
    """What every normalization layer shares, written once: the checks of eps and momentum,
    the affine parameters — weight γ (ones) and bias β (zeros) of ``param_shape`` —, the
    running statistics (running_mean, running_var, num_batches_tracked) with their reset
    and update, the input's channel check, and extra_repr.

    PyTorch's ``_NormBase`` covers BatchNorm and InstanceNorm; here LayerNorm, GroupNorm
    and RMSNorm take the parameter half too (they keep no running statistics).
    Subclasses list what their repr shows: ``_repr_head`` (values) then ``_repr_keys``
    (key=value; "bias" shows whether β is learned).
    """

    # PyTorch checkpoints from before version 2 of BatchNorm have no num_batches_tracked;
    # PyTorch loads them keeping the buffer's current value, and so does tinybn
    _optional_state = frozenset({"num_batches_tracked"})
    # PyTorch refuses a training batch with one value per channel; keras.BatchNormalization
    # sets this (Keras gives y = β)
    _allow_batch_of_one = False
    _repr_head: tuple[str, ...] = ("num_features",)
    _repr_keys: tuple[str, ...] = ("eps", "momentum", "affine", "bias", "track_running_stats")

    def __init__(
        self,
        param_shape: tuple[int, ...],
        eps: float | None,
        affine: bool,
        bias: bool = True,
        weight_only: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        # eps = 0 is allowed, as in PyTorch (for eval with running stats); `not >=` refuses NaN
        if eps is not None and not _check_real(eps, f"{name}: eps") >= 0:
            raise ValueError(f"{name}: eps must be >= 0, got {eps}")
        self.eps = eps
        dtype = get_default_dtype()
        if affine:
            self.weight = Parameter(np.ones(param_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        if affine and bias and not weight_only:
            self.bias = Parameter(np.zeros(param_shape, dtype=dtype))
        elif not weight_only:
            self.register_parameter("bias", None)

    def _running_stats(
        self, num_features: int, momentum: float | None, track_running_stats: bool
    ) -> None:
        """Check momentum; keep running_mean (C,) = 0, running_var (C,) = 1 and
        num_batches_tracked = 0 if ``track_running_stats``."""
        name = type(self).__name__
        if momentum is not None and not 0.0 <= _check_real(momentum, f"{name}: momentum") <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        dtype = get_default_dtype()
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """running_mean ← 0, running_var ← 1, num_batches_tracked ← 0."""
        if getattr(self, "running_mean", None) is not None:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Running statistics reset, γ ← 1, β ← 0."""
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if getattr(self, "bias", None) is not None:
            self.bias.data[...] = 0

    def _update_running_stats(
        self, batch_mean: np.ndarray, batch_var: np.ndarray, m: int, factor: float | None = None
    ) -> None:
        """EMA (or cumulative average) of μ_B and of the unbiased σ²_B·m/(m−1), each (C,).

        ``factor`` None: the batch-norm rule (momentum, or 1/num_batches_tracked when
        momentum is None, counting this batch); else that weight of the new value."""
        # plain numpy on the buffers' arrays (no graph), updated in place, so the buffers stay
        # the same arrays; m/(m−1) rides on the variance's factor
        if factor is None:
            num_batches = self.num_batches_tracked.data
            num_batches += _ONE
            keep, mean_weight, var_weight = self._running_average_weights(m)
        else:
            keep, mean_weight, var_weight = 1.0 - factor, factor, factor * m / (m - 1)
        running_mean, running_var = self.running_mean.data, self.running_var.data
        dtype = running_mean.dtype
        keep = fast.scalar(keep, dtype)
        running_mean *= keep
        running_mean += fast.scalar(mean_weight, dtype) * batch_mean.reshape(-1)
        running_var *= keep
        running_var += fast.scalar(var_weight, dtype) * batch_var.reshape(-1)

    def _running_average_weights(self, m: int) -> tuple[float, float, float]:
        """(weight of the old value, of μ_B, of the biased σ²_B) in the running averages:
        1 − f, f and f·m/(m − 1) (PyTorch's convention, above). keras.BatchNormalization
        overrides this with Keras's: momentum, 1 − momentum, 1 − momentum (biased)."""
        f = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
        return 1.0 - f, f, f * m / (m - 1)

    def _check_channels(
        self, x: Tensor, ndims: tuple[int, ...], shapes: str, size: str = "num_features"
    ) -> None:
        """x has one of ``ndims`` dimensions and as many channels on axis 1 as the
        attribute named ``size`` says."""
        name, shape, channels = type(self).__name__, x.data.shape, getattr(self, size)
        if len(shape) not in ndims:
            raise ValueError(
                f"{name}: expected input of shape {shapes}, got {len(shape)}-d input of shape "
                f"{shape}"
            )
        if shape[1] != channels:
            raise ValueError(
                f"{name}: input of shape {shape} has {shape[1]} channels on axis 1, "
                f"but {size}={channels}"
            )

    def _check_trailing(self, x: Tensor) -> int:
        """x ends in normalized_shape (LayerNorm, RMSNorm); returns its length."""
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape or x.ndim < k:
            raise ValueError(
                f"{type(self).__name__}: input of shape {x.shape} does not end in "
                f"normalized_shape {self.normalized_shape}"
            )
        return k

    def _repr_value(self, key: str) -> Any:
        return self.bias is not None if key == "bias" else getattr(self, key)

    def extra_repr(self) -> str:
        head = [str(getattr(self, key)) for key in self._repr_head]
        return ", ".join(head + [f"{key}={self._repr_value(key)}" for key in self._repr_keys])


class _BatchNorm(_NormBase):
    """Batch normalization; BatchNorm1d and BatchNorm2d differ only in the input they take.

    Training: normalize with the batch mean μ_B and biased variance σ²_B of each channel
    (over N and the positions), and update the running statistics with the unbiased variance:
        running_mean ← (1 − f)·running_mean + f·μ_B
        running_var  ← (1 − f)·running_var  + f·σ²_B·m/(m − 1),   m = values per channel
    where f = momentum (PyTorch's convention: the weight of the NEW value), or, if
    momentum is None, f = 1/num_batches_tracked — a cumulative average with the paper's
    formula, E_B[μ_B] and m/(m−1)·E_B[σ²_B]. It is the paper's estimate only over batches
    of equal size from a frozen network; averaged during training it keeps stale
    statistics of earlier weights (the paper recomputes them with the final network).
    Eval: normalize with running_mean and running_var (as PyTorch, whenever the buffers
    exist — also if track_running_stats was switched off after construction).

    Args:
        num_features: C.
        eps: added to the variance before the square root; >= 0. As in PyTorch, eps = 0
            is accepted but works only in eval mode with running statistics.
        momentum: f above (0.1), or None for the cumulative average.
        affine: learn weight γ (ones) and bias β (zeros), each (C,).
        bias: with affine, learn β too; False keeps β = 0 (Keras's center=False).
            Keyword-only, as PyTorch's (2.13).
        track_running_stats: keep running_mean (C,), running_var (C,) and
            num_batches_tracked (0-d int64). If False there are no such buffers and the
            batch statistics are used in eval mode too.
        composed: train through the composed graph of ``functional.batch_norm`` (one node
            per step of the formula: drawable, steppable) instead of the fused kernel (one
            node with the closed-form backward, faster). Same outputs, grads and running
            statistics. Keyword-only; not in PyTorch.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> bn = nn.BatchNorm1d(2)
        >>> y = bn(Tensor([[1.0, 10.0], [3.0, 30.0]]))  # training: batch statistics
        >>> np.round(y.data, 4)
        array([[-1., -1.],
               [ 1.,  1.]], dtype=float32)
        >>> bn.running_mean.data, bn.running_var.data  # 0.9·old + 0.1·batch (unbiased variance)
        (array([0.2, 2. ], dtype=float32), array([ 1.1, 20.9], dtype=float32))
        >>> _ = bn.eval()  # eval: the running statistics
        >>> np.round(bn(Tensor([[1.0, 10.0]])).data, 4)
        array([[0.7628, 1.7499]], dtype=float32)
    """

    eps: float  # never None here (only RMSNorm's is)

    _input_ndims: tuple[int, ...] = (2, 3)
    _input_shapes = "(N, C) or (N, C, L)"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        composed: bool = False,
    ) -> None:
        name = type(self).__name__
        num_features = _check_int(num_features, f"{name}: num_features", 1)
        if not isinstance(composed, bool):
            raise TypeError(f"{name}: composed must be True or False, got {composed!r}")
        super().__init__((num_features,), eps, affine, bias)
        self.num_features = num_features
        self.affine = affine
        self.composed = composed
        self._running_stats(num_features, momentum, track_running_stats)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        name = type(self).__name__
        x = _as_tensor(x, name)
        self._check_channels(x, self._input_ndims, self._input_shapes)
        # as PyTorch: batch statistics in training, and in eval when there are no buffers
        use_batch_stats = self.training or self.running_mean is None
        if use_batch_stats and self.eps == 0:  # as PyTorch: eps = 0 only with running stats
            raise ValueError(f"{name}: eps must be positive when using batch statistics, got 0")
        mean = var = None
        if not use_batch_stats:
            mean, var = self.running_mean.data, self.running_var.data
        # the one call into the BN math: its composed source, or the fused kernel registered
        # for it (the same numbers, faster); it raises on one value per channel, before any
        # state below has changed
        batch_norm = F.batch_norm_with_stats if self.composed else kernels.batch_norm_with_stats
        y, batch_mean, batch_var = batch_norm(
            x,
            self.weight,
            self.bias,
            self.eps,
            mean=mean,
            var=var,
            allow_batch_of_one=self._allow_batch_of_one,
        )
        if self.training and self.track_running_stats and self.running_mean is not None:
            m = x.data.size // self.num_features  # values per channel: N, N·L or N·H·W
            self._update_running_stats(batch_mean.data, batch_var.data, m)
        return y


class BatchNorm1d(_BatchNorm):
    __doc__ = "Batch normalization over (N, C) or (N, C, L) inputs.\n" + (_BatchNorm.__doc__ or "")


class BatchNorm2d(_BatchNorm):
    __doc__ = (
        "Spatial batch normalization over (N, C, H, W) inputs: one μ and σ² per channel,\n"
        "    over N·H·W values (every position of every example).\n" + (_BatchNorm.__doc__ or "")
    )

    _input_ndims = (4,)
    _input_shapes = "(N, C, H, W)"


class _InstanceNorm(_NormBase):
    """Instance normalization: each channel of each example normalized over its own
    positions (μ_nc, σ²_nc over L or H·W); PyTorch's defaults affine=False,
    track_running_stats=False.

    With track_running_stats the running statistics are updated in training with the
    batch average of the per-instance μ and unbiased σ² (weight momentum; momentum None
    leaves them unchanged, as PyTorch), and used in eval. num_batches_tracked is kept but,
    as in PyTorch, not counted. An unbatched (C, ...) input is normalized as a batch of one.

    Args:
        num_features: C. A different channel count is an error with affine or running
            statistics, and a warning otherwise (as PyTorch).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> y = nn.InstanceNorm2d(3)(Tensor(np.random.default_rng(0).normal(size=(2, 3, 4, 4))))
        >>> np.round(y.data.std(axis=(2, 3)), 3)
        array([[1., 1., 1.],
               [1., 1., 1.]])
    """

    eps: float  # never None here (only RMSNorm's is)

    _input_ndims: tuple[int, ...] = (3,)
    _input_shapes = "(N, C, L)"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        bias: bool = True,
    ) -> None:
        name = type(self).__name__
        num_features = _check_int(num_features, f"{name}: num_features", 1)
        super().__init__((num_features,), eps, affine, bias)
        self.num_features = num_features
        self.affine = affine
        self._running_stats(num_features, momentum, track_running_stats)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        name = type(self).__name__
        x = _as_tensor(x, name)
        batched = self._input_ndims[0]
        if x.ndim == batched - 1:  # unbatched: a batch of one
            return self.forward(x.reshape(1, *x.shape)).reshape(x.shape)
        shapes = f"{self._input_shapes} or unbatched (C, ...)"
        if x.ndim != batched:
            self._check_channels(x, self._input_ndims, shapes)
        if x.shape[1] != self.num_features:
            if self.affine or self.running_mean is not None:
                self._check_channels(x, self._input_ndims, shapes)
            warnings.warn(
                f"{name}: input has {x.shape[1]} channels but num_features={self.num_features}; "
                "normalizing anyway (affine=False, no running statistics)",
                stacklevel=2,
            )
        use_input_stats = self.training or not self.track_running_stats
        mean = var = None
        if not use_input_stats:
            mean, var = self.running_mean.data, self.running_var.data
        y, used_mean, used_var = F.instance_norm_with_stats(
            x, self.weight, self.bias, self.eps, mean=mean, var=var
        )
        if use_input_stats and self.running_mean is not None and self.momentum is not None:
            m = x.data[0, 0].size  # positions per instance
            self._update_running_stats(
                used_mean.data.mean(axis=0), used_var.data.mean(axis=0), m, self.momentum
            )
        return y


class InstanceNorm1d(_InstanceNorm):
    __doc__ = "Instance normalization of (N, C, L) inputs.\n" + (_InstanceNorm.__doc__ or "")


class InstanceNorm2d(_InstanceNorm):
    __doc__ = "Instance normalization of (N, C, H, W) inputs.\n" + (_InstanceNorm.__doc__ or "")

    _input_ndims = (4,)
    _input_shapes = "(N, C, H, W)"


class GroupNorm(_NormBase):
    """Group normalization (Wu & He 2018): per example, the channels in ``num_groups``
    groups, each normalized over its channels and positions; γ, β per channel. No running
    statistics: training and eval behave the same, and any batch size works.

    Args:
        num_groups: G, dividing num_channels.
        num_channels: C.
        eps: added to the variance before the square root.
        affine: learn weight γ (ones) and bias β (zeros), each (C,).
    Shapes: x (N, C, *) → y of the same shape.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> gn = nn.GroupNorm(2, 4)  # 4 channels in 2 groups
        >>> y = gn(Tensor(np.random.default_rng(0).normal(size=(3, 4, 2, 2))))
        >>> np.round(y.data[:, :2].mean(axis=(1, 2, 3)), 6) + 0.0  # per example and group
        array([0., 0., 0.])
    """

    eps: float  # never None here (only RMSNorm's is)

    _repr_head = ("num_groups", "num_channels")
    _repr_keys = ("eps", "affine", "bias")

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        bias: bool = True,
    ) -> None:
        num_groups = _check_int(num_groups, "GroupNorm: num_groups", 1)
        num_channels = _check_int(num_channels, "GroupNorm: num_channels", 1)
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        super().__init__((num_channels,), eps, affine, bias)
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.affine = affine

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        x = _as_tensor(x, "GroupNorm")
        self._check_channels(x, tuple(range(2, 9)), "(N, C, *)", "num_channels")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def _normalized_shape(shape: Any, name: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(
            f"{name}: normalized_shape must be an int or a tuple of ints, "
            f"got {type(shape).__name__} {shape!r}"
        )
    shape = tuple(_check_int(n, f"{name}: normalized_shape entry", 1) for n in shape)
    if not shape:
        raise ValueError(f"{name}: normalized_shape must not be empty")
    return shape


class LayerNorm(_NormBase):
    """Layer normalization: each example normalized over its last len(normalized_shape) axes.

    Args:
        normalized_shape: int H or tuple, the trailing shape of the input to normalize.
        eps: added to the variance before the square root.
        elementwise_affine: learn weight γ (ones) and, if bias, β (zeros), of normalized_shape.
        bias: learn β too (PyTorch ≥ 2.1).
    Shapes: x (..., *normalized_shape) → y of the same shape. No running statistics:
    training and eval behave the same.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> ln = nn.LayerNorm(3)
        >>> np.round(ln(Tensor([[1.0, 2.0, 3.0]])).data, 4)  # per example: no batch needed
        array([[-1.2247,  0.    ,  1.2247]], dtype=float32)
    """

    eps: float  # never None here (only RMSNorm's is)

    _repr_head = ("normalized_shape",)
    _repr_keys = ("eps", "elementwise_affine", "bias")

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        shape = _normalized_shape(normalized_shape, "LayerNorm")
        super().__init__(shape, eps, elementwise_affine, bias)
        self.normalized_shape = shape
        self.elementwise_affine = elementwise_affine

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        x = _as_tensor(x, "LayerNorm")
        k = self._check_trailing(x)
        return F.layer_norm(x, self.weight, self.bias, self.eps, normalized_ndim=k)


class RMSNorm(_NormBase):
    """RMS normalization (Zhang & Sennrich 2019; PyTorch ≥ 2.4): y = x / √(mean(x²) + ε)·γ
    over the last len(normalized_shape) axes — layer norm without the centering or β.

    Args:
        normalized_shape: int or tuple, the trailing shape to normalize.
        eps: None (the default) means the machine epsilon of the input's dtype.
        elementwise_affine: learn weight γ (ones) of normalized_shape.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> np.round(nn.RMSNorm(2)(Tensor([[3.0, 4.0]])).data, 4)
        array([[0.8485, 1.1314]], dtype=float32)
    """

    _repr_head = ("normalized_shape",)
    _repr_keys = ("eps", "elementwise_affine")

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float | None = None,
        elementwise_affine: bool = True,
    ) -> None:
        shape = _normalized_shape(normalized_shape, "RMSNorm")
        super().__init__(shape, eps, elementwise_affine, weight_only=True)
        self.normalized_shape = shape
        self.elementwise_affine = elementwise_affine

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        x = _as_tensor(x, "RMSNorm")
        self._check_trailing(x)
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class Dropout(Module):
    """Inverted dropout: in training, zero each entry with probability p and scale the
    survivors by 1/(1 − p), so the expected output equals the input; identity in eval.

    Args:
        p: probability of zeroing, in [0, 1].
        rng: numpy Generator for the masks (None: tinybn's default generator at each call,
            which ``tb.manual_seed`` seeds).

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> drop = nn.Dropout(0.5, rng=np.random.default_rng(0))
        >>> sorted(set(drop(Tensor(np.ones((1, 8)))).data.ravel().tolist()))
        [0.0, 2.0]
        >>> _ = drop.eval()
        >>> drop(Tensor([1.0, 2.0])).data
        array([1., 2.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= _check_real(p, "Dropout: p") <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.rng = rng

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.dropout(_as_tensor(x, "Dropout"), self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    """max(0, x), elementwise.

    Examples:
        >>> from tinybn import Tensor, nn
        >>> nn.ReLU()(Tensor([-1.0, 2.0])).data
        array([0., 2.], dtype=float32)
    """

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.relu(_as_tensor(x, "ReLU"))


class Sigmoid(Module):
    """1 / (1 + e^(−x)), elementwise.

    Examples:
        >>> from tinybn import Tensor, nn
        >>> nn.Sigmoid()(Tensor([0.0])).data
        array([0.5], dtype=float32)
    """

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.sigmoid(_as_tensor(x, "Sigmoid"))


class LeakyReLU(Module):
    """x for x > 0, else negative_slope·x, elementwise.

    Examples:
        >>> from tinybn import Tensor, nn
        >>> nn.LeakyReLU(0.1)(Tensor([-2.0, 3.0])).data
        array([-0.2,  3. ], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _check_real(negative_slope, "LeakyReLU: negative_slope")

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.leaky_relu(_as_tensor(x, "LeakyReLU"), self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """tanh(x), elementwise.

    Examples:
        >>> from tinybn import Tensor, nn
        >>> nn.Tanh()(Tensor([0.0])).data
        array([0.], dtype=float32)
    """

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.tanh(_as_tensor(x, "Tanh"))


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``dim`` (computed stably), e.g. dim=-1 for (N, K) scores.

    PyTorch's default dim=None guesses the axis (with a warning); here it is the last axis.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> np.round(nn.Softmax(dim=-1)(Tensor([[0.0, 0.0]])).data, 4)
        array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = _check_int(dim, "Softmax: dim", -(2**31))

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return F.softmax(_as_tensor(x, "Softmax"), axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input; any constructor arguments are ignored (as in PyTorch).

    Examples:
        >>> from tinybn import Tensor, nn
        >>> nn.Identity()(Tensor([1.0, 2.0])).data
        array([1., 2.], dtype=float32)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Sequential(Module):
    """Modules applied in order: Sequential(a, b, c)(x) = c(b(a(x))).

    Children are named "0", "1", ... (or by the keys of an OrderedDict), which is where
    state_dict keys such as "1.running_mean" come from. Indexable (ints and slices; a slice
    is a new Sequential sharing the same layers), iterable, has len and append.

    Examples:
        >>> from tinybn import Tensor, nn
        >>> model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
        >>> model(Tensor([[1.0, 2.0], [3.0, 4.0]])).shape
        (2, 1)
        >>> list(model.state_dict())[:4]
        ['0.weight', '0.bias', '1.weight', '1.bias']
    """

    @overload
    def __init__(self, *modules: Module) -> None: ...

    @overload
    def __init__(self, modules: OrderedDict[str, Module], /) -> None: ...

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, x: Any) -> Any:
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index)}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(items)}")
        return items[index][1]

    def __setitem__(self, index: int, module: Module) -> None:
        name = list(self._modules)[index]
        self.add_module(name, module)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end, named str(len(self))."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for module in modules:
            self.append(module)
        return self


# -- folding BN into the preceding Linear ---------------------------------------------------------


def _fold_linear_bn(linear: Linear, bn: BatchNorm1d) -> Linear:
    """One Linear computing bn(linear(x)) in eval mode (as in the lecture notes).

    bn(z) = γ/√(Var+ε)·z + (β − γ·E/√(Var+ε)) with z = Wx + b, so
        W' = diag(γ/√(Var+ε))·W,   b' = γ/√(Var+ε)·(b − E) + β.
    """
    dtype = linear.weight.dtype
    var = bn.running_var.data.astype(np.float64)
    scale = 1.0 / np.sqrt(var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight.data.astype(np.float64) * scale
    shift = bn.bias.data.astype(np.float64) if bn.bias is not None else np.zeros_like(var)
    bias = linear.bias.data.astype(np.float64) if linear.bias is not None else 0.0
    folded = Linear(linear.in_features, linear.out_features, bias=True)
    folded.weight = Parameter((scale[:, None] * linear.weight.data).astype(dtype))
    folded.bias = Parameter((scale * (bias - bn.running_mean.data) + shift).astype(dtype))
    return folded


def _fold_conv_bn(conv: Conv2d, bn: _BatchNorm) -> Conv2d:
    """A copy of ``conv`` computing bn(conv(x)) in eval mode: each output channel o of a
    convolution is a Linear on the windows, so the Linear rule holds channel by channel:
        W'[o] = s_o·W[o],   b'_o = s_o·(b_o − E_o) + β_o,   s_o = γ_o/√(Var_o + ε).
    The copy keeps the conv's class and options (stride, padding, groups, a channels-last
    forward); it gets a bias if it had none."""
    dtype = conv.weight.dtype
    var = bn.running_var.data.astype(np.float64)
    scale = 1.0 / np.sqrt(var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight.data.astype(np.float64) * scale
    shift = bn.bias.data.astype(np.float64) if bn.bias is not None else np.zeros_like(var)
    bias = conv.bias.data.astype(np.float64) if conv.bias is not None else 0.0
    folded = copy.deepcopy(conv)
    folded.weight = Parameter((scale[:, None, None, None] * conv.weight.data).astype(dtype))
    folded.bias = Parameter((scale * (bias - bn.running_mean.data) + shift).astype(dtype))
    return folded


def _foldable(layer: Any, bn: Any) -> bool:
    """``bn`` right after ``layer`` normalizes its output channels with running statistics:
    Linear → BatchNorm1d, or Conv2d → BatchNorm2d, or a channels-last conv → a
    channels-last batch norm (``channels_last``: tinybn.keras's Conv2D and
    BatchNormalization on (N, H, W, C) images)."""
    if not (isinstance(bn, _BatchNorm) and bn.track_running_stats):
        return False
    if bn.running_mean is None:
        return False
    if isinstance(layer, Linear):
        return isinstance(bn, BatchNorm1d) and bn.num_features == layer.out_features
    if isinstance(layer, Conv2d):
        channels_last = getattr(layer, "channels_last", False)
        if channels_last != getattr(bn, "channels_last", False):
            return False
        return (channels_last or isinstance(bn, BatchNorm2d)) and (
            bn.num_features == layer.out_channels
        )
    return False


def fold_batchnorm(model: Module) -> Module:
    """A new eval-mode model with every Linear → BatchNorm1d pair folded into one Linear,
    and every Conv2d → BatchNorm2d pair into one Conv2d.

    Inside every Sequential of the model (at any depth), a Linear (Conv2d) immediately
    followed by a BatchNorm1d (BatchNorm2d) that tracks running statistics becomes one
    Linear (Conv2d) computing the same
    function as the pair in eval mode — also when the two sit on either side of a nested
    Sequential's boundary (``Sequential(Linear, Sequential(BatchNorm1d, ReLU))``: they
    still run one right after the other); the BatchNorm1d's place is taken by an Identity
    (as PyTorch's fuse_modules does), so the other layers keep their indices. The input
    model is not changed (the result is built from a deep copy). A BatchNorm1d without
    running statistics normalizes with batch statistics even in eval, so it is left as is.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, nn
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        >>> batch = Tensor(np.random.default_rng(0).normal(size=(8, 2)))
        >>> _ = model(batch)  # training: the running statistics move
        >>> _ = model.eval()
        >>> folded = nn.fold_batchnorm(model)
        >>> [type(layer).__name__ for layer in folded]
        ['Linear', 'Identity']
        >>> x = Tensor([[0.5, -1.0]])
        >>> bool(np.allclose(folded(x).data, model(x).data, atol=1e-5))
        True
    """
    if not isinstance(model, Module):
        raise TypeError(f"fold_batchnorm expects a Module, got {type(model).__name__}")
    folded_model = copy.deepcopy(model)
    with no_grad():
        for module in list(folded_model.modules()):
            if not isinstance(module, Sequential):
                continue
            chain = _run_order(module)
            for (home, first, layer), (bn_home, second, bn) in zip(chain, chain[1:]):
                if _foldable(layer, bn):
                    fold = _fold_linear_bn if isinstance(layer, Linear) else _fold_conv_bn
                    home.add_module(first, fold(layer, bn))
                    bn_home.add_module(second, Identity())
    return folded_model.eval()


def _run_order(sequential: Sequential) -> list[tuple[Sequential, str, Any]]:
    """The layers a Sequential runs, in order, nested Sequentials opened up:
    (the Sequential that holds the layer, its name there, the layer)."""
    layers = []
    for name, layer in sequential._modules.items():
        if isinstance(layer, Sequential):
            layers += _run_order(layer)
        else:
            layers.append((sequential, name, layer))
    return layers


from tinybn.nn_conv import AvgPool2d, Conv2d, Flatten, MaxPool2d  # noqa: E402  (they use Module)

__all__ = [
    "Parameter",
    "Module",
    "Linear",
    "BatchNorm1d",
    "BatchNorm2d",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "GroupNorm",
    "LayerNorm",
    "RMSNorm",
    "LeakyReLU",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Dropout",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Identity",
    "Sequential",
    "StateDictError",
    "LoadResult",
    "fold_batchnorm",
]
