"""Tensor-engine cases: BatchNorm alone, and whole SGD training steps.

``bn_op``: batch norm forward + backward (given dL/dy) at (N, C) = (256, 512) and (4096, 64),
float32: tinybn's fused kernel (what ``nn.BatchNorm1d`` runs) and its composed graph (what
``F.batch_norm`` runs by default, for teaching), beside PyTorch and hand numpy.

``mlp_bn_step``: one SGD step — forward, cross-entropy, backward, update — of
784-256-256-10 with Linear → BatchNorm1d → ReLU, batch 128, float32.

``small_step``: the same at 2-16-16-1, batch 32, binary cross-entropy on logits; at this
size the work per op is tiny and the framework's overhead per op is what is measured.

Every implementation starts from the same weights and data, and before timing the first
step's loss is checked to agree across all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.timing import CaseResult, Settings, compare, numpy_threads

EPS = 1e-5
LR = 0.1
BN_MOMENTUM = 0.1


def has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def setup_torch() -> None:
    import torch

    torch.set_num_threads(numpy_threads())


# -- bn_op ------------------------------------------------------------------------------------


def bn_data(n: int, c: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return {
        "x": rng.normal(1.0, 2.0, size=(n, c)).astype(f32),
        "gamma": rng.uniform(0.5, 1.5, size=c).astype(f32),
        "beta": rng.normal(size=c).astype(f32),
        "dy": rng.normal(size=(n, c)).astype(f32),
    }


def numpy_bn_op(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Closed-form forward and backward (Ioffe & Szegedy 2015, section 3)."""
    x, gamma, beta, dy = d["x"], d["gamma"], d["beta"], d["dy"]
    m = x.shape[0]
    mu = x.mean(axis=0)
    centered = x - mu
    inv_std = 1.0 / np.sqrt((centered * centered).mean(axis=0) + EPS)
    xhat = centered * inv_std
    y = gamma * xhat + beta
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return y, dx, dgamma, dbeta


def tinybn_bn_op(d: dict[str, np.ndarray], fused: bool) -> Callable[[], tuple]:
    from tinybn import Tensor
    from tinybn import functional as F

    if fused:
        from tinybn.fast import kernels
    x = Tensor(d["x"], requires_grad=True)
    gamma = Tensor(d["gamma"], requires_grad=True)
    beta = Tensor(d["beta"], requires_grad=True)
    dy = d["dy"]

    def step() -> tuple:
        x.grad = gamma.grad = beta.grad = None
        y = (
            kernels.batch_norm_with_stats(x, gamma, beta, EPS)[0]
            if fused
            else F.batch_norm(x, gamma, beta, EPS)
        )
        y.backward(dy)
        return y.data, x.grad, gamma.grad, beta.grad

    return step


def torch_bn_op(d: dict[str, np.ndarray]) -> Callable[[], tuple]:
    import torch
    import torch.nn.functional as TF

    x = torch.tensor(d["x"], requires_grad=True)
    gamma = torch.tensor(d["gamma"], requires_grad=True)
    beta = torch.tensor(d["beta"], requires_grad=True)
    dy = torch.tensor(d["dy"])

    def step() -> tuple:
        x.grad = gamma.grad = beta.grad = None
        y = TF.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)
        y.backward(dy)
        return y, x.grad, gamma.grad, beta.grad

    return step


def _fused_available() -> bool:
    try:
        import tinybn.fast.kernels  # noqa: F401
    except ImportError:
        return False
    return True


def bn_op(settings: Settings, n: int, c: int) -> CaseResult:
    d = bn_data(n, c)
    reference = numpy_bn_op(d)
    impls: dict[str, Callable[[], object]] = {}
    notes = []
    if _fused_available():
        impls["tinybn"] = tinybn_bn_op(d, fused=True)
        impls["tinybn composed"] = tinybn_bn_op(d, fused=False)
    else:
        impls["tinybn"] = tinybn_bn_op(d, fused=False)
        notes.append("tinybn.fast.kernels missing: tinybn = the composed graph")
    impls["numpy"] = lambda: numpy_bn_op(d)
    if has_torch():
        setup_torch()
        impls["torch"] = torch_bn_op(d)
    else:
        notes.append("torch not installed: pip install torch==2.13.0 (CPU)")
    for name, fn in impls.items():  # every implementation computes the same numbers
        for got, want in zip(fn(), reference):
            got = got.detach().numpy() if hasattr(got, "detach") else got
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4, err_msg=name)
    result = compare(f"bn_op {n}x{c}", impls, settings)
    result.notes += notes
    return result


# -- training steps ---------------------------------------------------------------------------


@dataclass
class StepSpec:
    """An MLP of Linear → BatchNorm1d → ReLU blocks and a final Linear, and its batch."""

    sizes: tuple[int, ...]
    batch: int
    loss: str  # "cross_entropy" (integer classes) or "bce_logits" (one 0/1 output)


MLP_BN = StepSpec((784, 256, 256, 10), 128, "cross_entropy")
SMALL = StepSpec((2, 16, 16, 1), 32, "bce_logits")


def step_data(spec: StepSpec, seed: int = 0) -> dict[str, object]:
    """Data and initial weights (PyTorch's Linear init: U(±1/√fan_in)), as float32 numpy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(spec.batch, spec.sizes[0])).astype(np.float32)
    if spec.loss == "cross_entropy":
        targets = rng.integers(0, spec.sizes[-1], size=spec.batch)
    else:
        targets = rng.integers(0, 2, size=(spec.batch, 1)).astype(np.float32)
    linears = []
    for fan_in, fan_out in zip(spec.sizes[:-1], spec.sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=fan_out).astype(np.float32)
        linears.append((w, b))
    return {"x": x, "targets": targets, "linears": linears}


def state_dict_of(spec: StepSpec, data: dict) -> dict[str, np.ndarray]:
    """PyTorch state_dict keys of nn.Sequential(Linear, BatchNorm1d, ReLU, ..., Linear)."""
    state = {}
    blocks = len(spec.sizes) - 2
    for i, (w, b) in enumerate(data["linears"]):
        state[f"{3 * i}.weight"], state[f"{3 * i}.bias"] = w.copy(), b.copy()
        if i < blocks:
            width = spec.sizes[i + 1]
            k = 3 * i + 1
            state[f"{k}.weight"] = np.ones(width, np.float32)
            state[f"{k}.bias"] = np.zeros(width, np.float32)
            state[f"{k}.running_mean"] = np.zeros(width, np.float32)
            state[f"{k}.running_var"] = np.ones(width, np.float32)
            state[f"{k}.num_batches_tracked"] = np.array(0, dtype=np.int64)
    return state


def numpy_step(spec: StepSpec, data: dict) -> Callable[[], float]:
    """Hand-written numpy: closed-form backward of every layer, no autograd."""
    linears = [(w.copy(), b.copy()) for w, b in data["linears"]]
    blocks = len(linears) - 1
    bns = [
        {
            "gamma": np.ones(spec.sizes[i + 1], np.float32),
            "beta": np.zeros(spec.sizes[i + 1], np.float32),
            "running_mean": np.zeros(spec.sizes[i + 1], np.float32),
            "running_var": np.ones(spec.sizes[i + 1], np.float32),
        }
        for i in range(blocks)
    ]
    x, targets = data["x"], data["targets"]
    m = x.shape[0]

    def step() -> float:
        # forward, keeping what the backward pass needs
        caches, h = [], x
        for (w, b), bn in zip(linears[:-1], bns):
            z = h @ w.T + b
            mu = z.mean(axis=0)
            centered = z - mu
            var = (centered * centered).mean(axis=0)
            inv_std = 1.0 / np.sqrt(var + EPS)
            xhat = centered * inv_std
            a = np.maximum(bn["gamma"] * xhat + bn["beta"], 0)
            bn["running_mean"] += BN_MOMENTUM * (mu - bn["running_mean"])
            bn["running_var"] += BN_MOMENTUM * (var * (m / (m - 1)) - bn["running_var"])
            caches.append((h, xhat, inv_std, a))
            h = a
        w_out, b_out = linears[-1]
        logits = h @ w_out.T + b_out
        if spec.loss == "cross_entropy":
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = -log_probs[np.arange(m), targets].mean()
            dlogits = np.exp(log_probs)
            dlogits[np.arange(m), targets] -= 1.0
            dlogits /= m
        else:
            z, y = logits, targets
            loss = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean()
            dlogits = (1.0 / (1.0 + np.exp(-z)) - y) / z.size
        # backward and SGD update, last layer first
        grads = [(dlogits.T @ h, dlogits.sum(axis=0))]
        dh = dlogits @ w_out
        for (w, _), bn, (h_in, xhat, inv_std, a) in zip(
            reversed(linears[:-1]), reversed(bns), reversed(caches)
        ):
            dy = dh * (a > 0)
            dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
            dz = (bn["gamma"] * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
            bn["gamma"] -= LR * dgamma
            bn["beta"] -= LR * dbeta
            grads.append((dz.T @ h_in, dz.sum(axis=0)))
            dh = dz @ w
        for (w, b), (dw, db) in zip(reversed(linears), grads):
            w -= LR * dw
            b -= LR * db
        return float(loss)

    return step


def tinybn_step(spec: StepSpec, data: dict) -> Callable[[], float]:
    from tinybn import Tensor, nn, optim
    from tinybn import functional as F

    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(spec.sizes) - 2:
            layers += [nn.BatchNorm1d(fan_out), nn.ReLU()]
    model = nn.Sequential(*layers)
    model.load_state_dict(state_dict_of(spec, data))
    model.train()
    opt = optim.SGD(model.parameters(), lr=LR)
    x = Tensor(data["x"])
    targets = data["targets"]
    if spec.loss == "cross_entropy":
        loss_fn = F.cross_entropy
    else:
        loss_fn = F.binary_cross_entropy_with_logits
        targets = Tensor(targets)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), targets)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_step(spec: StepSpec, data: dict) -> Callable[[], float]:
    import torch

    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(spec.sizes) - 2:
            layers += [torch.nn.BatchNorm1d(fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict_of(spec, data).items()})
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x = torch.from_numpy(data["x"])
    if spec.loss == "cross_entropy":
        targets = torch.from_numpy(data["targets"])
        loss_fn = torch.nn.functional.cross_entropy
    else:
        targets = torch.from_numpy(data["targets"])
        loss_fn = torch.nn.functional.binary_cross_entropy_with_logits

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), targets)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def has_tinybn_nn() -> bool:
    try:
        from tinybn import nn, optim  # noqa: F401
    except ImportError:
        return False
    return hasattr(nn, "BatchNorm1d") and hasattr(optim, "SGD")


def step_impls(spec: StepSpec, data: dict, notes: list[str]) -> dict[str, Callable[[], float]]:
    impls: dict[str, Callable[[], float]] = {}
    if has_tinybn_nn():
        impls["tinybn"] = tinybn_step(spec, data)
    else:
        notes.append("tinybn.nn / tinybn.optim not available yet")
    impls["numpy"] = numpy_step(spec, data)
    if has_torch():
        setup_torch()
        impls["torch"] = torch_step(spec, data)
    else:
        notes.append("torch not installed: pip install torch==2.13.0 (CPU)")
    return impls


def training_step(settings: Settings, name: str, spec: StepSpec) -> CaseResult:
    data = step_data(spec)
    notes: list[str] = []
    impls = step_impls(spec, data, notes)
    # the same model on the same data: the first two losses agree everywhere
    first = {impl: (fn(), fn()) for impl, fn in impls.items()}
    reference = first["numpy"]
    for impl, losses in first.items():
        np.testing.assert_allclose(losses, reference, rtol=1e-3, err_msg=f"{name}: {impl}")
    baseline = "tinybn" if "tinybn" in impls else "numpy"
    result = compare(name, impls, settings, baseline=baseline)
    result.notes += notes
    return result


def matmul_floor(settings: Settings, spec: StepSpec) -> float:
    """Seconds for the matmuls a step needs (forward, dW and dx of each layer but the first)."""
    data = step_data(spec)
    x = data["x"]
    acts = [x] + [np.ones((spec.batch, n), np.float32) for n in spec.sizes[1:]]
    weights = [w for w, _ in data["linears"]]

    def matmuls() -> None:
        for i, w in enumerate(weights):
            out = acts[i] @ w.T
            out.T @ acts[i]  # dW
            if i > 0:
                out @ w  # dx

    return compare("matmuls", {"numpy": matmuls}, settings).seconds["numpy"]
