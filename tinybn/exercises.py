"""Exercises that check themselves, one at the end of each of chapters 2–5.

You write a numpy function; ``check`` runs it on a few cases and tells you it passes, or
shows the first case it gets wrong with a hint about what is wrong (never the answer):

Examples:
    >>> from tinybn import exercises
    >>> sorted(exercises.list())
    ['bn_backward', 'bn_forward', 'bn_running_stats', 'layer_norm']
    >>> def not_yet(x, gamma, beta, eps):
    ...     return x
    >>> exercises.check("bn_forward", not_yet, quiet=True).passed
    False

The expected values come from tinybn itself (its composed ``functional`` ops and autograd,
and ``nn.BatchNorm1d``), which follow PyTorch; nothing here is a written-out solution.

- ``bn_forward``: ``f(x, gamma, beta, eps) -> y``; x (N, D), gamma and beta (D,).
- ``bn_backward``: ``f(dy, x, gamma, eps) -> (dx, dgamma, dbeta)``; dy and x (N, D).
- ``bn_running_stats``: ``f(x, gamma, beta, running_mean, running_var, training, momentum,
  eps) -> (y, new_running_mean, new_running_var)``, as PyTorch's BatchNorm1d.
- ``layer_norm``: ``f(x, gamma, beta, eps) -> y``; x (N, D) normalized per row.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinybn import functional as F
from tinybn import nn
from tinybn.tensor import Tensor

RTOL, ATOL = 1e-6, 1e-8


@dataclass
class Result:
    """What ``check`` found: ``passed``, the ``message`` it printed, the cases it ran.

    Examples:
        >>> from tinybn import exercises
        >>> result = exercises.check("layer_norm", lambda x, gamma, beta, eps: x, quiet=True)
        >>> result, bool(result)
        (<exercise layer_norm: not yet>, False)
    """

    name: str
    passed: bool
    message: str
    cases_run: int = 0
    hints: list[str] = field(default_factory=builtins.list)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"<exercise {self.name}: {'passed' if self.passed else 'not yet'}>"


class Mismatch(Exception):
    """One case where the learner's function differs from what it should give."""

    def __init__(self, message: str, hints: builtins.list[str]):
        super().__init__(message)
        self.hints = hints


# -- what the learner's output should be (from tinybn's own ops) --------------------------


def _bn_forward_expected(x, gamma, beta, eps):
    return F.batch_norm(Tensor(x), Tensor(gamma), Tensor(beta), eps).data


def _bn_backward_expected(dy, x, gamma, eps):
    xt = Tensor(x, requires_grad=True)
    gt = Tensor(gamma, requires_grad=True)
    bt = Tensor(np.zeros_like(gamma), requires_grad=True)
    y = F.batch_norm(xt, gt, bt, eps)
    (y * Tensor(dy)).sum().backward()
    return xt.grad, gt.grad, bt.grad


def _bn_running_expected(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    layer = nn.BatchNorm1d(x.shape[1], eps=eps, momentum=momentum)
    layer.weight.data[...] = gamma
    layer.bias.data[...] = beta
    layer.running_mean.data[...] = running_mean
    layer.running_var.data[...] = running_var
    layer.train(training)
    y = layer(Tensor(x)).data
    return y, layer.running_mean.data.copy(), layer.running_var.data.copy()


def _layer_norm_expected(x, gamma, beta, eps):
    return F.layer_norm(Tensor(x), Tensor(gamma), Tensor(beta), eps).data


# -- cases ----------------------------------------------------------------------------------


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _forward_cases() -> builtins.list[dict]:
    rng = _rng(0)
    return [
        # the lecture notes' worked example, both features, γ = 1, β = 0
        dict(
            x=np.array(
                [[33, 9], [72, 8], [40, 7], [104, 10], [52, 5], [56, 8], [89, 7], [24, 9]],
                dtype=float,
            ),
            gamma=np.ones(2),
            beta=np.zeros(2),
            eps=1e-5,
        ),
        # more samples than features and γ, β that are not 1, 0
        dict(
            x=rng.normal(3, 2, (5, 3)),
            gamma=rng.normal(1, 0.5, 3),
            beta=rng.normal(0, 1, 3),
            eps=1e-5,
        ),
        # a small batch of two, where ÷N and ÷(N−1) differ by a factor of two
        dict(x=rng.normal(0, 1, (2, 4)), gamma=np.ones(4), beta=np.zeros(4), eps=1e-5),
        # a large ε next to a small variance: ε must be under the square root
        dict(x=rng.normal(0, 0.05, (6, 2)), gamma=np.ones(2), beta=np.zeros(2), eps=0.01),
    ]


def _backward_cases() -> builtins.list[dict]:
    rng = _rng(1)
    cases = []
    for n, d, eps in [(4, 1, 1e-5), (6, 3, 1e-5), (3, 2, 0.5)]:
        cases.append(
            dict(
                dy=rng.normal(0, 1, (n, d)),
                x=rng.normal(2, 3, (n, d)),
                gamma=rng.normal(1, 0.5, d),
                eps=eps,
            )
        )
    return cases


def _running_cases() -> builtins.list[dict]:
    rng = _rng(2)
    base = dict(gamma=np.array([1.5, 0.5, 1.0]), beta=np.array([0.0, 1.0, -1.0]), eps=1e-5)
    return [
        dict(
            x=rng.normal(4, 2, (5, 3)),
            running_mean=np.zeros(3),
            running_var=np.ones(3),
            training=True,
            momentum=0.1,
            **base,
        ),
        dict(
            x=rng.normal(-1, 3, (3, 3)),
            running_mean=np.array([0.5, -0.2, 1.0]),
            running_var=np.array([2.0, 0.5, 1.5]),
            training=True,
            momentum=0.3,
            **base,
        ),
        dict(
            x=rng.normal(4, 2, (5, 3)),
            running_mean=np.array([4.0, 3.0, 5.0]),
            running_var=np.array([4.0, 1.0, 9.0]),
            training=False,
            momentum=0.1,
            **base,
        ),
    ]


def _layer_norm_cases() -> builtins.list[dict]:
    rng = _rng(3)
    return [
        dict(x=rng.normal(2, 3, (3, 5)), gamma=np.ones(5), beta=np.zeros(5), eps=1e-5),
        dict(
            x=rng.normal(0, 1, (4, 2)),
            gamma=rng.normal(1, 0.5, 2),
            beta=rng.normal(0, 1, 2),
            eps=1e-5,
        ),
        dict(x=rng.normal(0, 0.05, (2, 6)), gamma=np.ones(6), beta=np.zeros(6), eps=0.01),
    ]


# -- hints: properties of the learner's output, never the formula -------------------------


def _normalized_hints(got: np.ndarray, case: dict, axis: int, what: str) -> builtins.list[str]:
    """Hints for an output that should be normalized along ``axis`` (0: batch, 1: row)."""
    x, gamma, beta, eps = case["x"], case["gamma"], case["beta"], case["eps"]
    xhat = (got - beta) / gamma  # undo the affine step the learner should have applied
    n = x.shape[axis]
    hints = []
    if not np.all(np.isfinite(got)):
        hints.append("your output holds nan or inf: is ε added before the square root?")
        return hints
    other = 1 - axis
    if np.allclose(xhat.mean(axis=other), 0, atol=1e-6) and not np.allclose(
        xhat.mean(axis=axis), 0, atol=1e-6
    ):
        hints.append(
            f"your output is centred along the wrong axis: {what} normalizes "
            + (
                "each feature over the batch (axis 0)"
                if axis == 0
                else "each row over its features (axis 1)"
            )
        )
        return hints
    if not np.allclose(xhat.mean(axis=axis), 0, atol=1e-6):
        hints.append(
            "with γ undone and β subtracted, your output should have mean 0 along the "
            "normalized axis, and it does not: is β added, and is the mean subtracted?"
        )
        return hints
    var = xhat.var(axis=axis)
    true_var = x.var(axis=axis)
    biased = true_var / (true_var + eps)  # the variance x̂ should have
    if n > 1 and np.allclose(var, biased * (n - 1) / n, rtol=1e-4):
        hints.append(
            "your output's variance is (N−1)/N of what it should be: normalize with the "
            "biased variance, the mean of the squared deviations (divide by N, not N − 1)"
        )
    elif np.allclose(var, 1.0, rtol=1e-6) and not np.allclose(biased, 1.0, rtol=1e-6):
        hints.append(
            "your output has variance exactly 1, but with this ε it should be a little "
            "less: add ε to the variance under the square root"
        )
    elif np.allclose(var, true_var / (np.sqrt(true_var) + eps) ** 2, rtol=1e-4):
        hints.append("ε goes under the square root: √(σ² + ε), not √σ² + ε")
    return hints


def _forward_hints(got, case):
    return _normalized_hints(got, case, axis=0, what="batch norm")


def _layer_norm_hints(got, case):
    return _normalized_hints(got, case, axis=1, what="layer norm")


def _backward_hints(got, case):
    dx, dgamma, dbeta = got
    _, exp_dgamma, exp_dbeta = _bn_backward_expected(**case)
    x, eps = case["x"], case["eps"]
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
    hints = []
    if not np.allclose(dbeta, exp_dbeta, rtol=RTOL, atol=ATOL):
        hints.append("dbeta is wrong: β is added to every sample's y, so what reaches it?")
    if not np.allclose(dgamma, exp_dgamma, rtol=RTOL, atol=ATOL):
        hints.append("dgamma is wrong: γ multiplies x̂ in every sample")
    if not np.allclose(dx.sum(0), 0, atol=1e-8):
        hints.append(
            "your dx does not sum to 0 over the batch, and it must: moving every x by the same "
            "amount moves μ with it and changes no x̂. Is the route through μ missing?"
        )
    elif not np.allclose((dx * xhat).sum(0), 0, atol=1e-7):
        hints.append(
            "Σᵢ dxᵢ·x̂ᵢ should be 0 (scaling x changes no x̂) and it is not: is the route "
            "through σ² missing, or is its factor wrong (biased variance: ÷N)?"
        )
    return hints


def _running_hints(got, case):
    y, rmean, rvar = got
    x, m, training = case["x"], case["momentum"], case["training"]
    mu = x.mean(0)
    hints = []
    if training:
        if np.allclose(rmean, m * case["running_mean"] + (1 - m) * mu):
            hints.append(
                "momentum is the weight of the NEW batch statistic in PyTorch's convention "
                "(new = (1 − momentum)·old + momentum·batch)"
            )
        if np.allclose(rvar, (1 - m) * case["running_var"] + m * x.var(0)):
            hints.append(
                "running_var is updated with the UNBIASED batch variance (÷ (N − 1)), "
                "though the batch itself is normalized with the biased one (÷ N)"
            )
        if np.allclose(rmean, case["running_mean"]) and np.allclose(rvar, case["running_var"]):
            hints.append("in training the running statistics must move towards the batch's")
    else:
        if not (
            np.allclose(rmean, case["running_mean"]) and np.allclose(rvar, case["running_var"])
        ):
            hints.append("in eval mode the running statistics must not change")
        xhat = (y - case["beta"]) / case["gamma"]
        if np.allclose(xhat.mean(0), 0, atol=1e-6):
            hints.append(
                "in eval mode normalize with running_mean and running_var, not with the "
                "batch's own statistics (a batch of one must work too)"
            )
    return hints


@dataclass(frozen=True)
class Exercise:
    """One exercise: its chapter, what to write, and how to check it."""

    name: str
    chapter: str
    task: str
    cases: Callable[[], builtins.list[dict]]
    expected: Callable[..., Any]
    hints: Callable[[Any, dict], builtins.list[str]]
    outputs: tuple[str, ...]


EXERCISES = {
    e.name: e
    for e in [
        Exercise(
            "bn_forward",
            "2. Batch norm, forward",
            "f(x, gamma, beta, eps) -> y: batch norm of x (N, D) from numpy primitives "
            "(mean, subtraction, square, square root, division), no tinybn",
            _forward_cases,
            _bn_forward_expected,
            _forward_hints,
            ("y",),
        ),
        Exercise(
            "bn_backward",
            "3. Batch norm, backward",
            "f(dy, x, gamma, eps) -> (dx, dgamma, dbeta): the closed-form backward in numpy, "
            "given dy = ∂L/∂y (N, D)",
            _backward_cases,
            _bn_backward_expected,
            _backward_hints,
            ("dx", "dgamma", "dbeta"),
        ),
        Exercise(
            "bn_running_stats",
            "4. Training vs inference",
            "f(x, gamma, beta, running_mean, running_var, training, momentum, eps) -> "
            "(y, new_running_mean, new_running_var): BatchNorm1d's forward in train and "
            "eval mode, PyTorch's running-statistics update",
            _running_cases,
            _bn_running_expected,
            _running_hints,
            ("y", "running_mean", "running_var"),
        ),
        Exercise(
            "layer_norm",
            "5. From scalars to tensors",
            "f(x, gamma, beta, eps) -> y: layer norm of x (N, D), each row over its D features",
            _layer_norm_cases,
            _layer_norm_expected,
            _layer_norm_hints,
            ("y",),
        ),
    ]
}


def list() -> dict[str, str]:  # noqa: A001 - the name the chapters use: exercises.list()
    """Every exercise's name → what to write (and print them).

    Examples:
        >>> "layer_norm" in list()
        True
    """
    return {name: f"(chapter {e.chapter}) {e.task}" for name, e in EXERCISES.items()}


def _compare(name: str, index: int, got: Any, expected: Any, outputs: tuple[str, ...]) -> None:
    expected_parts = expected if len(outputs) > 1 else (expected,)
    if len(outputs) > 1:
        if not isinstance(got, tuple | builtins.list) or len(got) != len(outputs):
            raise Mismatch(
                f"case {index}: return a tuple ({', '.join(outputs)}), got {type(got).__name__}",
                [],
            )
        got_parts = tuple(got)
    else:
        got_parts = (got,)
    for what, g, e in zip(outputs, got_parts, expected_parts):
        g = np.asarray(g, dtype=float)
        if g.shape != e.shape:
            raise Mismatch(f"case {index}: {what} has shape {g.shape}, expected {e.shape}", [])
        close = np.isclose(g, e, rtol=RTOL, atol=ATOL)
        if not close.all():
            where = tuple(int(i) for i in np.argwhere(~close)[0])
            raise Mismatch(
                f"case {index}: {what}{builtins.list(where)} is {g[where]:.6g}, expected a "
                f"different value ({int((~close).sum())} of {g.size} entries differ)",
                [],
            )


def check(name: str, your_function: Callable[..., Any], quiet: bool = False) -> Result:
    """Run ``your_function`` on the exercise's cases; pass, or the first mismatch and a hint.

    Args:
        name: one of ``list()``: "bn_forward", "bn_backward", "bn_running_stats", "layer_norm".
        your_function: called with numpy float64 arrays as keyword arguments (the names in
            ``list()``); it must return numpy arrays (or a tuple of them).
        quiet: do not print the message (it is in the result either way).
    Returns:
        a ``Result``: truthy when every case passes.

    Examples:
        >>> import numpy as np
        >>> def layer_norm(x, gamma, beta, eps):
        ...     return x - x.mean(axis=1, keepdims=True)   # not scaled yet
        >>> result = check("layer_norm", layer_norm, quiet=True)
        >>> result.passed
        False
        >>> print(result.message.splitlines()[0])
        layer_norm: case 0: y[0, 0] is ..., expected a different value (15 of 15 entries differ)
    """
    if name not in EXERCISES:
        raise ValueError(f"exercises.check: unknown exercise {name!r}; one of {sorted(EXERCISES)}")
    if not callable(your_function):
        raise TypeError(
            f"exercises.check: your_function must be callable, got {type(your_function).__name__}"
        )
    exercise = EXERCISES[name]
    cases = exercise.cases()
    for index, case in enumerate(cases):
        arguments = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in case.items()}
        try:
            got = your_function(**arguments)
            expected = exercise.expected(**case)
            _compare(name, index, got, expected, exercise.outputs)
        except Mismatch as mismatch:
            hints = mismatch.hints
            if not hints:
                try:
                    hints = exercise.hints(got, case)
                except Exception:  # a hint is a courtesy; a failing one must not hide the mismatch
                    hints = []
            lines = [f"{name}: {mismatch}", *(f"  hint: {hint}" for hint in hints)]
            return _report(Result(name, False, "\n".join(lines), index + 1, hints), quiet)
        except Exception as error:
            message = f"{name}: case {index}: your function raised {type(error).__name__}: {error}"
            return _report(Result(name, False, message, index + 1), quiet)
    message = f"{name}: passed all {len(cases)} cases"
    return _report(Result(name, True, message, len(cases)), quiet)


def _report(result: Result, quiet: bool) -> Result:
    if not quiet:
        print(result.message)
    return result
