"""Convolution cases: Conv2d forward + backward, and a LeNet-size training step.

``conv_op``: ``F.conv2d`` forward and backward (given dL/dy; grads of input, weight and
bias) at LeNet's two convolution shapes, batch 64, float32, beside PyTorch:
(64, 1, 28, 28) * (6, 1, 5, 5), padding 2, and (64, 6, 14, 14) * (16, 6, 5, 5).

``lenet_step``: one SGD step — forward, cross-entropy, backward, update — of
conv 5×5 (6) → BatchNorm2d → ReLU → max-pool 2 → conv 5×5 (16) → BatchNorm2d → ReLU →
max-pool 2 → Linear 400→120 → ReLU → Linear 120→84 → ReLU → Linear 84→10, batch 64 of
1×28×28, float32. Both start from the same weights and data; the first two losses are
checked to agree before timing.

Target (issue 16): ≤ 2.0× PyTorch's time with one thread (``--threads 1``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.timing import CaseResult, Settings, compare, numpy_threads

LR = 0.05
CONV_SHAPES = {
    "conv1 (64,1,28,28)*(6,1,5,5) pad 2": ((64, 1, 28, 28), (6, 1, 5, 5), 2),
    "conv2 (64,6,14,14)*(16,6,5,5)": ((64, 6, 14, 14), (16, 6, 5, 5), 0),
}


def _torch():
    import torch

    torch.set_num_threads(numpy_threads())
    return torch


def conv_op(settings: Settings, name: str) -> CaseResult:
    x_shape, w_shape, padding = CONV_SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(np.float32)
    w = (rng.normal(size=w_shape) * 0.2).astype(np.float32)
    b = rng.normal(size=w_shape[0]).astype(np.float32)
    out_side = x_shape[2] + 2 * padding - w_shape[2] + 1
    dy = rng.normal(size=(x_shape[0], w_shape[0], out_side, out_side)).astype(np.float32)

    from tinybn import Tensor
    from tinybn import functional as F

    leaves = [Tensor(a, requires_grad=True) for a in (x, w, b)]

    def tinybn_op() -> tuple:
        for leaf in leaves:
            leaf.grad = None
        y = F.conv2d(*leaves, padding=padding)
        y.backward(dy)
        return y.data, leaves[0].grad, leaves[1].grad, leaves[2].grad

    impls: dict[str, Callable[[], object]] = {"tinybn": tinybn_op}
    try:
        torch = _torch()
    except ImportError:
        torch = None
    if torch is not None:
        torch_leaves = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        torch_dy = torch.tensor(dy)

        def torch_op() -> tuple:
            for leaf in torch_leaves:
                leaf.grad = None
            y = torch.nn.functional.conv2d(*torch_leaves, padding=padding)
            y.backward(torch_dy)
            return y, torch_leaves[0].grad, torch_leaves[1].grad, torch_leaves[2].grad

        ours, theirs = tinybn_op(), torch_op()
        for a, t in zip(ours, theirs):
            np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-3, atol=1e-3)
        impls["torch"] = torch_op
    return compare(f"conv_op {name}", impls, settings)


def _lenet(lib, **extra):
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2, **extra),
        lib.BatchNorm2d(6),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5, **extra),
        lib.BatchNorm2d(16),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120, **extra),
        lib.ReLU(),
        lib.Linear(120, 84, **extra),
        lib.ReLU(),
        lib.Linear(84, 10, **extra),
    )


def lenet_step(settings: Settings) -> CaseResult:
    from tinybn import Tensor, nn, optim
    from tinybn import functional as F

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    ours = _lenet(nn, rng=np.random.default_rng(1))
    opt = optim.SGD(ours.parameters(), lr=LR)
    x_tensor = Tensor(x)

    def tinybn_step() -> float:
        loss = F.cross_entropy(ours(x_tensor), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    impls: dict[str, Callable[[], object]] = {"tinybn": tinybn_step}
    try:
        torch = _torch()
    except ImportError:
        torch = None
    if torch is not None:
        theirs = _lenet(torch.nn)
        theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
        their_opt = torch.optim.SGD(theirs.parameters(), lr=LR)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def torch_step() -> float:
            loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
            their_opt.zero_grad()
            loss.backward()
            their_opt.step()
            return loss.item()

        first = [(tinybn_step(), torch_step()) for _ in range(2)]
        for a, t in first:
            np.testing.assert_allclose(a, t, rtol=1e-3)
        impls["torch"] = torch_step
    return compare("lenet_step", impls, settings)
