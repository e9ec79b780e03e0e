"""Optimizers: PyTorch's ``torch.optim.SGD`` and ``torch.optim.Adam``, same defaults and rules.

An optimizer holds references to parameters (Tensors) and, in ``step()``, changes each
one's ``.data`` in place using its ``.grad``. The update is plain numpy: no graph is
recorded. A parameter whose grad is None (it took no part in the last backward) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from tinybn.tensor import Tensor


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad().

    Args:
        params: an iterable of Tensors, or of dicts {"params": [...], <option>: value}
            (parameter groups whose options override the defaults, as in PyTorch).
        defaults: the options of every group (e.g. {"lr": 0.1, "momentum": 0.9}).
    Attributes:
        param_groups: list of dicts, each with "params" and every option (change "lr" here
            to schedule the learning rate).
        state: dict parameter → its own state (momentum buffer, Adam moments, step count).

    Examples:
        >>> from tinybn import Tensor, optim
        >>> w = Tensor([1.0], requires_grad=True)
        >>> opt = optim.SGD([w], lr=0.5)  # every optimizer: zero_grad(), step(), state_dict()
        >>> (w * 3).sum().backward()
        >>> opt.step()
        >>> w.data
        array([-0.5], dtype=float32)
        >>> opt.zero_grad()
        >>> w.grad
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got a Tensor (wrap it in a list)"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        seen: set[int] = set()
        for group in groups:
            self.add_param_group(group, seen)

    def add_param_group(self, group: dict[str, Any], _seen: set[int] | None = None) -> None:
        """Add a group of parameters with its own options (missing ones from the defaults)."""
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError("a parameter group must be a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = (
            _seen if _seen is not None else {id(p) for g in self.param_groups for p in g["params"]}
        )
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if id(p) in seen:
                raise ValueError("some parameters appear in more than one parameter group")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(f"unknown optimizer option(s): {sorted(unknown)}")
        full = {**self.defaults, **group, "params": params}
        self._check_options(full)
        self.param_groups.append(full)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid option (subclasses)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's grad: set it to None (default) or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self) -> None:
        """Update every parameter that has a grad; every grad is checked before any update."""
        updates = [
            (p, group) for group in self.param_groups for p in group["params"] if p.grad is not None
        ]
        for p, _ in updates:
            if not isinstance(p.grad, (np.ndarray, np.generic)):
                raise TypeError(f"step: a grad must be a numpy array, got {type(p.grad).__name__}")
            if p.grad.shape != p.data.shape:
                raise ValueError(
                    f"step: a parameter of shape {p.data.shape} has a grad of shape {p.grad.shape}"
                )
        state = self.state
        for p, group in updates:
            if p not in state:  # not setdefault(p, {}): that builds a new dict on every call
                state[p] = {}
            self._update(p, group, state[p])

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's structure, parameters named by index::

            {"state": {index: {"momentum_buffer": array} or {"step": int, "exp_avg": array,
                               "exp_avg_sq": array}, ...},
             "param_groups": [{"lr": ..., <every option>, "params": [index, ...]}, ...]}

        Indices count the parameters of all groups in order (0, 1, ...); a parameter with no
        state yet (never stepped, or plain SGD) has no entry. Arrays are COPIES, so further
        steps do not change a saved dict (PyTorch returns references). The dict is nested,
        so ``tinybn.save`` (flat names → arrays) cannot write it: keep it in memory.
        """
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {
            index[id(p)]: {key: _copied(value) for key, value in entry.items()}
            for p, entry in self.state.items()
            if entry
        }
        groups = [
            {
                **{k: v for k, v in group.items() if k != "params"},
                "params": [index[id(p)] for p in group["params"]],
            }
            for group in self.param_groups
        ]
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what ``state_dict()`` returned: every group's options and each parameter's
        state (copied, arrays cast to the parameter's dtype). The parameters themselves stay
        this optimizer's, matched by index.

        Raises (before changing anything): TypeError if it is not a dict; ValueError if it
        lacks "state" or "param_groups", or the number of groups, a group's number of
        parameters, a group's option names or an array's shape do not match, or an
        option's value is invalid.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"load_state_dict: expected a dict, got {type(state_dict).__name__}")
        if set(state_dict) != {"state", "param_groups"}:
            raise ValueError(
                "load_state_dict: expected the keys 'state' and 'param_groups' (as returned by "
                f"state_dict()), got {sorted(map(str, state_dict))}"
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: the state dict has {len(saved_groups)} parameter group(s), "
                f"this optimizer has {len(self.param_groups)}"
            )
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or "params" not in saved:
                raise ValueError(f"load_state_dict: parameter group {i} has no 'params' list")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"load_state_dict: parameter group {i} has {len(saved['params'])} "
                    f"parameter(s) in the state dict, {len(group['params'])} in this optimizer"
                )
            if set(saved) != set(group):
                raise ValueError(
                    f"load_state_dict: parameter group {i} has options {sorted(saved)} in the "
                    f"state dict, {sorted(group)} in this {type(self).__name__}"
                )
            new_group = {**saved, "params": group["params"]}
            self._check_options(new_group)
            new_groups.append(new_group)
        # saved index → this optimizer's parameter, following each group's "params" order
        params = {
            index: p
            for saved, group in zip(saved_groups, self.param_groups)
            for index, p in zip(saved["params"], group["params"])
        }
        new_state: dict[Tensor, dict[str, Any]] = {}
        for index, entry in state_dict["state"].items():
            if index not in params:
                raise ValueError(f"load_state_dict: state for unknown parameter index {index}")
            p = params[index]
            new_state[p] = {}
            for key, value in entry.items():
                if isinstance(value, np.ndarray) and value.ndim == 0:  # e.g. a step count
                    value = value.copy()
                elif isinstance(value, np.ndarray):
                    if value.shape != p.data.shape:
                        raise ValueError(
                            f"load_state_dict: state {key!r} of parameter {index} has shape "
                            f"{value.shape}, the parameter has shape {p.data.shape}"
                        )
                    value = value.astype(p.data.dtype)  # a copy: never shared with the dict
                new_state[p][key] = value
        self.param_groups = new_groups
        self.state = new_state

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {value}" for key, value in group.items() if key != "params"]
        return "\n".join(lines) + "\n)"


def _copied(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


def _check_non_negative(group: dict[str, Any], *names: str) -> None:
    for name in names:
        if not group[name] >= 0.0:  # also catches NaN
            raise ValueError(f"Invalid {name} value: {group[name]} (must be >= 0)")


def _regularized_grad(p: Tensor, group: dict[str, Any]) -> np.ndarray:
    """The g both optimizers step with: p.grad (negated if maximizing) + weight_decay·p
    (the gradient of the L2 penalty ½·weight_decay·‖p‖²)."""
    assert p.grad is not None  # the optimizer steps only parameters that have a grad
    grad = -p.grad if group["maximize"] else p.grad
    if group["weight_decay"] != 0:
        grad = grad + group["weight_decay"] * p.data
    return grad


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as torch.optim.SGD.

    With g = grad (+ weight_decay·p, L2), momentum μ, dampening τ:
        b ← g on the first step, then b ← μ·b + (1 − τ)·g
        g ← g + μ·b (nesterov) or g ← b (momentum > 0)
        p ← p − lr·g

    Args:
        params: parameters or parameter groups.
        lr: learning rate (PyTorch's default 1e-3).
        momentum: as above (0 = off).
        dampening: as above (0 = off).
        weight_decay: as above (0 = off).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: ascend instead of descend.

    Examples:
        >>> from tinybn import Tensor, optim
        >>> w = Tensor([1.0], requires_grad=True)
        >>> opt = optim.SGD([w], lr=0.1)
        >>> (w * w).sum().backward()  # grad 2w = 2
        >>> opt.step()
        >>> w.data  # 1 − 0.1 · 2
        array([0.8], dtype=float32)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        _check_non_negative(group, "lr", "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        # plain SGD (no maximize, no weight decay) steps with p.grad itself
        grad = _regularized_grad(p, group) if group["maximize"] or group["weight_decay"] else p.grad
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(grad, dtype=p.data.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1.0 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        # lr·grad keeps grad's dtype (a Python float does not promote float32); an in-place
        # subtraction casts a float64 grad to the parameter's dtype
        p.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as torch.optim.Adam.

    With g = grad (+ weight_decay·p, L2 — Adam, not AdamW), at step t = 1, 2, ...:
        m ← β1·m + (1 − β1)·g            v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1ᵗ)                v̂ = v / (1 − β2ᵗ)
        p ← p − lr·m̂ / (√v̂ + ε)
    (amsgrad: v̂ uses the running maximum of v.)

    Args:
        params: parameters or parameter groups.
        lr: learning rate. betas: (β1, β2), each in [0, 1). eps: ε added to √v̂.
        weight_decay: L2 penalty added to the gradient. amsgrad, maximize: as PyTorch.

    Examples:
        >>> import numpy as np
        >>> from tinybn import Tensor, optim
        >>> w = Tensor([1.0], requires_grad=True)
        >>> opt = optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward()
        >>> opt.step()
        >>> np.round(w.data, 4)  # the first step moves each weight by about lr
        array([0.9], dtype=float32)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        _check_non_negative(group, "lr", "eps", "weight_decay")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"Invalid betas: {betas} (need two values)")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta} (need [0, 1))")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        grad = _regularized_grad(p, group)
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        bias_correction1 = 1.0 - beta1**t
        bias_correction2 = 1.0 - beta2**t
        step_size = group["lr"] / bias_correction1
        denom = np.sqrt(v) / np.sqrt(bias_correction2) + group["eps"]
        p.data -= (step_size * m / denom).astype(p.data.dtype, copy=False)


__all__ = ["Optimizer", "SGD", "Adam"]
