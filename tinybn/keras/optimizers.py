"""Keras's optimizers: ``tinybn.optim`` optimizers with Keras's names, defaults and rules.

``from tinybn.keras import optimizers; optimizers.Adam(learning_rate=0.01)``, as in Keras.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from tinybn import optim
from tinybn.tensor import Tensor


def _grad(p: Tensor) -> np.ndarray:
    return cast(np.ndarray, p.grad)  # step() updates only parameters that have a grad


def _hyperparameter(key: str) -> property:
    """An option readable and settable as an attribute (``opt.learning_rate = 0.01``), kept in
    the defaults and in every parameter group, as optim keeps options."""

    def get(self: Optimizer) -> Any:
        return (self.param_groups[0] if self.param_groups else self.defaults)[key]

    def set_(self: Optimizer, value: Any) -> None:
        self.defaults[key] = value
        for group in self.param_groups:
            group[key] = value

    return property(get, set_)


class Optimizer(optim.Optimizer):
    """A ``tinybn.optim.Optimizer`` that is built on its first ``apply`` (Keras creates its
    slots then), with Keras's option names. ``iterations`` counts the steps; Keras's rules
    use it as the step number t of every variable.

    Use ``apply(grads, variables)`` as in Keras, or, once built (``build(params)``), as any
    optim optimizer: ``zero_grad()``, ``loss.backward()``, ``step()``; ``state_dict()`` too.
    """

    learning_rate = _hyperparameter("learning_rate")

    def __init__(self, learning_rate: float, **options: Any) -> None:
        # optim.Optimizer.__init__ needs the parameters; it runs in build()
        self.defaults = {"learning_rate": learning_rate, **options}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.iterations = 0
        self._check_options(self.defaults)
        self.defaults["learning_rate"] = float(learning_rate)

    def _check_options(self, group: dict[str, Any]) -> None:
        lr = group["learning_rate"]
        if not (np.isfinite(lr) and lr >= 0):
            raise ValueError(f"learning_rate must be a finite number >= 0, got {lr}")

    @property
    def built(self) -> bool:
        return bool(self.param_groups)

    def build(self, variables: Sequence[Tensor]) -> None:
        """Attach the variables this optimizer updates (once)."""
        optim.Optimizer.__init__(self, list(variables), self.defaults)

    def apply(self, grads: Sequence[np.ndarray | None], variables: Sequence[Tensor]) -> None:
        """One optimization step: update each variable from its gradient (None = skip).

        The gradients are stored in the variables' ``.grad`` (cast to their dtype), where
        ``step`` reads them.
        """
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{len(grads)} gradients for {len(variables)} variables")
        self.check_variables(variables)
        if not self.built:
            self.build(variables)
        for grad, variable in zip(grads, variables):
            variable.grad = None if grad is None else np.asarray(grad, dtype=variable.dtype)
        self.step()

    def check_variables(self, variables: Sequence[Tensor]) -> None:
        """ValueError if this optimizer was built for other variables than these."""
        if self.built and [id(v) for v in variables] != [id(p) for p in self._all_params()]:
            raise ValueError(
                "this optimizer was built for other variables; use a new optimizer for a new "
                "model (or compile again after changing which layers are trainable)"
            )

    def step(self) -> None:
        super().step()
        self.iterations += 1

    def get_config(self) -> dict[str, Any]:
        return dict(self.defaults)


class SGD(Optimizer):
    """Keras SGD: w ← w − lr·g; with momentum: v ← momentum·v − lr·g, w ← w + v
    (Nesterov: w ← w + momentum·v − lr·g). Defaults: lr 0.01, momentum 0.

    For a constant learning rate this is ``optim.SGD``'s update (PyTorch's b = −v/lr);
    Keras keeps lr inside the velocity, so a changed learning rate acts differently.

    Examples:
        >>> from tinybn import keras
        >>> opt = keras.SGD(learning_rate=0.1, momentum=0.9)
        >>> opt.learning_rate, opt.momentum
        (0.1, 0.9)
    """

    momentum = _hyperparameter("momentum")
    nesterov = _hyperparameter("nesterov")

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate, momentum=float(momentum), nesterov=bool(nesterov))

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        if not 0.0 <= group["momentum"] <= 1.0:
            raise ValueError(f"momentum must be a float in [0, 1], got {group['momentum']}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        lr, momentum, grad = group["learning_rate"], group["momentum"], _grad(p)
        if momentum == 0:
            p.data -= lr * grad
            return
        if "velocity" not in state:
            state["velocity"] = np.zeros_like(p.data)
        velocity = state["velocity"]
        velocity *= momentum
        velocity -= lr * grad
        if group["nesterov"]:
            p.data += momentum * velocity - lr * grad
        else:
            p.data += velocity


class Adam(Optimizer):
    """Keras Adam (defaults lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7). At step t:

        m ← m + (g − m)(1 − β₁)            v ← v + (g² − v)(1 − β₂)
        α = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ)          w ← w − α·m / (√v + ε)

    ε is added to √v (the paper's "epsilon hat"), not to the bias-corrected √v̂ as in
    ``optim.Adam`` (PyTorch) — the two agree only when ε is negligible. amsgrad: v in the
    last line is the running maximum of v.

    Examples:
        >>> from tinybn import keras
        >>> keras.Adam().learning_rate  # Keras's default
        0.001
    """

    beta_1 = _hyperparameter("beta_1")
    beta_2 = _hyperparameter("beta_2")
    epsilon = _hyperparameter("epsilon")
    amsgrad = _hyperparameter("amsgrad")

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(
            learning_rate,
            beta_1=float(beta_1),
            beta_2=float(beta_2),
            epsilon=float(epsilon),
            amsgrad=bool(amsgrad),
        )

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        for name in ("beta_1", "beta_2"):
            if not 0.0 <= group[name] < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {group[name]}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        grad, beta_1, beta_2 = _grad(p), group["beta_1"], group["beta_2"]
        if not state:
            state["momentum"] = np.zeros_like(p.data)
            state["velocity"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["velocity_hat"] = np.zeros_like(p.data)
        t = self.iterations + 1
        alpha = group["learning_rate"] * math.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m, v = state["momentum"], state["velocity"]
        m += (grad - m) * (1 - beta_1)
        v += (grad * grad - v) * (1 - beta_2)
        if group["amsgrad"]:
            np.maximum(state["velocity_hat"], v, out=state["velocity_hat"])
            v = state["velocity_hat"]
        p.data -= (m * alpha) / (np.sqrt(v) + group["epsilon"])


class RMSprop(Optimizer):
    """Keras RMSprop (Keras's default optimizer; lr 0.001, rho 0.9, epsilon 1e-7):

        v ← ρ·v + (1 − ρ)·g²       w ← w − lr·g / √(v + ε)
    centered: also ḡ ← ρ·ḡ + (1 − ρ)·g, and the denominator is √(v − ḡ² + ε);
    with momentum > 0: b ← momentum·b + lr·g/√(...), w ← w − b.
    (PyTorch's RMSprop adds ε outside the square root and keeps lr outside the buffer.)

    Examples:
        >>> from tinybn import keras
        >>> keras.RMSprop().rho
        0.9
    """

    rho = _hyperparameter("rho")
    momentum = _hyperparameter("momentum")
    epsilon = _hyperparameter("epsilon")
    centered = _hyperparameter("centered")

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
    ) -> None:
        super().__init__(
            learning_rate,
            rho=float(rho),
            momentum=float(momentum),
            epsilon=float(epsilon),
            centered=bool(centered),
        )

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        if not 0.0 <= group["rho"] < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {group['rho']}")
        if not group["momentum"] >= 0.0:
            raise ValueError(f"momentum must be >= 0, got {group['momentum']}")

    def _update(self, p: Tensor, group: dict[str, Any], state: dict[str, Any]) -> None:
        grad, rho, momentum = _grad(p), group["rho"], group["momentum"]
        if not state:
            state["velocity"] = np.zeros_like(p.data)
            if momentum > 0:
                state["momentum"] = np.zeros_like(p.data)
            if group["centered"]:
                state["average_gradient"] = np.zeros_like(p.data)
        velocity = state["velocity"]
        velocity *= rho
        velocity += (1 - rho) * grad * grad
        if group["centered"]:
            average = state["average_gradient"]
            average *= rho
            average += (1 - rho) * grad
            denominator = velocity - average * average + group["epsilon"]
        else:
            denominator = velocity + group["epsilon"]
        increment = group["learning_rate"] * grad / np.sqrt(denominator)
        if momentum > 0:
            buffer = state.setdefault("momentum", np.zeros_like(p.data))
            buffer *= momentum
            buffer += increment
            p.data -= buffer
        else:
            p.data -= increment


_OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"adam": Adam, "sgd": SGD, "rmsprop": RMSprop}


__all__ = ["Optimizer", "SGD", "Adam", "RMSprop"]
