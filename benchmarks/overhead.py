"""``op_overhead``: the cost of one small op, forward + backward, per framework.

A chain of 20 elementwise ops on (4, 4) float32 arrays (y ← y·w + b, ten times), summed
and backpropagated; the time per op is almost entirely framework overhead.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.tensor_cases import has_torch, setup_torch
from benchmarks.timing import CaseResult, Settings, compare

LAYERS = 10
OPS = 2 * LAYERS + 1  # a multiply and an add per layer, and the final sum


def _arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return (
        rng.normal(size=(4, 4)).astype(f32),
        rng.uniform(0.9, 1.1, size=(4, 4)).astype(f32),
        rng.normal(size=(4, 4)).astype(f32),
    )


def tinybn_chain() -> Callable[[], object]:
    from tinybn import Tensor

    x, w, b = (Tensor(a, requires_grad=True) for a in _arrays())

    def run() -> object:
        x.grad = w.grad = b.grad = None
        y = x
        for _ in range(LAYERS):
            y = y * w + b
        y.sum().backward()
        return x.grad

    return run


def torch_chain() -> Callable[[], object]:
    import torch

    x, w, b = (torch.tensor(a, requires_grad=True) for a in _arrays())

    def run() -> object:
        x.grad = w.grad = b.grad = None
        y = x
        for _ in range(LAYERS):
            y = y * w + b
        y.sum().backward()
        return x.grad

    return run


def numpy_chain() -> Callable[[], object]:
    x, w, b = _arrays()

    def run() -> object:
        inputs, y = [], x
        for _ in range(LAYERS):
            inputs.append(y)
            y = y * w + b
        dy, dw, db = np.ones_like(y), np.zeros_like(w), np.zeros_like(b)
        for y_in in reversed(inputs):
            db += dy
            dw += dy * y_in
            dy = dy * w
        return dy

    return run


def op_overhead(settings: Settings) -> CaseResult:
    impls = {"tinybn": tinybn_chain(), "numpy": numpy_chain()}
    notes = []
    if has_torch():
        setup_torch()
        impls["torch"] = torch_chain()
    else:
        notes.append("torch not installed")
    np.testing.assert_allclose(impls["tinybn"](), impls["numpy"](), rtol=1e-5)
    result = compare("op_overhead (4x4, per op)", impls, settings)
    result.seconds = {name: s / OPS for name, s in result.seconds.items()}
    result.notes += notes
    return result
