"""Scalar-engine cases: the batch-norm graph and micrograd's 2-16-16-1 MLP demo.

``scalar_bn``: batch norm of N=32 rows of C=8 scalar Values (tinybn builds it with
``F.batch_norm``; micrograd with the same formula from its own ops), a weighted-sum loss
(never Σy: that makes the grads of γ and x exactly zero), forward + backward.

``scalar_mlp``: an MLP 2-16-16-1 (ReLU) over 100 two-moons points with micrograd's demo
loss (mean hinge + L2), forward + backward.

nodes/s counts the nodes of tinybn's graph (one per scalar op, n-ary sums) for every
engine, so it is a rate for the same computation; micrograd's own graph, built from
binary ops only, has more nodes — its count is reported beside.
"""

from __future__ import annotations

import gc
import math
import tracemalloc
from collections.abc import Callable

import numpy as np

import tinybn as tb
from benchmarks.timing import CaseResult, Settings, compare
from tinybn import autograd
from tinybn import functional as F
from tinybn.scalar import Value

EPS = 1e-5


# -- the BN graph ----------------------------------------------------------------------------


def bn_inputs(n: int = 32, c: int = 8, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(3.0, 2.0, size=(n, c)).tolist(),
        "gamma": rng.uniform(0.5, 1.5, size=c).tolist(),
        "beta": rng.normal(0.0, 0.5, size=c).tolist(),
        "weights": rng.normal(size=(n, c)).tolist(),  # loss = Σ w·y
    }


def tinybn_bn(inp: dict[str, list]) -> Value:
    """Forward + backward of the BN graph on tinybn Values; returns the loss node."""
    x = tb.values(inp["x"], "x")
    gamma = tb.values(inp["gamma"], "γ")
    beta = tb.values(inp["beta"], "β")
    y = F.batch_norm(x, gamma, beta, eps=EPS)
    loss = Value.sum([yi * wi for row, wrow in zip(y, inp["weights"]) for yi, wi in zip(row, wrow)])
    loss.backward()
    return loss


def micrograd_bn(inp: dict[str, list]):
    """The same formula on micrograd Values (binary ops only, as micrograd offers)."""
    from micrograd.engine import Value as MValue

    x = [[MValue(v) for v in row] for row in inp["x"]]
    gamma = [MValue(v) for v in inp["gamma"]]
    beta = [MValue(v) for v in inp["beta"]]
    m, channels = len(x), len(gamma)
    y = [[None] * channels for _ in range(m)]
    for c in range(channels):
        column = [x[i][c] for i in range(m)]
        mu = sum(column) * (1.0 / m)
        centered = [xi - mu for xi in column]
        var = sum(d**2 for d in centered) * (1.0 / m)
        std = (var + EPS) ** 0.5
        for i in range(m):
            y[i][c] = gamma[c] * (centered[i] / std) + beta[c]
    loss = sum(yi * wi for row, wrow in zip(y, inp["weights"]) for yi, wi in zip(row, wrow))
    loss.backward()
    return loss


def numpy_bn(inp: dict[str, list]) -> tuple[np.ndarray, ...]:
    """Hand numpy, closed-form backward (Ioffe & Szegedy 2015, section 3): no graph at all."""
    x = np.asarray(inp["x"])
    gamma, beta, w = np.asarray(inp["gamma"]), np.asarray(inp["beta"]), np.asarray(inp["weights"])
    m = x.shape[0]
    mu = x.mean(axis=0)
    centered = x - mu
    inv_std = 1.0 / np.sqrt((centered**2).mean(axis=0) + EPS)
    xhat = centered * inv_std
    y = gamma * xhat + beta
    loss = (w * y).sum()
    dy = w
    dgamma, dbeta = (dy * xhat).sum(axis=0), dy.sum(axis=0)
    dx = (gamma * inv_std / m) * (m * dy - dbeta - xhat * dgamma)
    return loss, dx, dgamma, dbeta


def micrograd_node_count(root) -> int:
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node._prev)
    return len(seen)


def graph_bytes(build: Callable[[], object]) -> int:
    """Bytes allocated (tracemalloc) and still held by the graph that ``build`` returns."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    root = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del root
    return held


def _forward_only_tinybn(inp):
    x = tb.values(inp["x"], "x")
    y = F.batch_norm(x, tb.values(inp["gamma"], "γ"), tb.values(inp["beta"], "β"), eps=EPS)
    return Value.sum([yi * wi for r, wr in zip(y, inp["weights"]) for yi, wi in zip(r, wr)])


def _forward_only_micrograd(inp):
    # micrograd_bn minus the backward call: the graph as it stands after the forward pass
    from micrograd.engine import Value as MValue

    x = [[MValue(v) for v in row] for row in inp["x"]]
    gamma, beta = [MValue(v) for v in inp["gamma"]], [MValue(v) for v in inp["beta"]]
    m, channels = len(x), len(gamma)
    y = [[None] * channels for _ in range(m)]
    for c in range(channels):
        column = [x[i][c] for i in range(m)]
        mu = sum(column) * (1.0 / m)
        centered = [xi - mu for xi in column]
        std = (sum(d**2 for d in centered) * (1.0 / m) + EPS) ** 0.5
        for i in range(m):
            y[i][c] = gamma[c] * (centered[i] / std) + beta[c]
    return sum(yi * wi for row, wrow in zip(y, inp["weights"]) for yi, wi in zip(row, wrow))


def _check_same_grads(inp: dict[str, list]) -> None:
    """Both engines and the closed form must agree before their speeds are compared."""
    x = tb.values(inp["x"], "x")
    gamma, beta = tb.values(inp["gamma"], "γ"), tb.values(inp["beta"], "β")
    y = F.batch_norm(x, gamma, beta, eps=EPS)
    loss = Value.sum([yi * wi for r, wr in zip(y, inp["weights"]) for yi, wi in zip(r, wr)])
    loss.backward()
    _, dx, dgamma, dbeta = numpy_bn(inp)
    np.testing.assert_allclose([[v.grad for v in row] for row in x], dx, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose([g.grad for g in gamma], dgamma, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose([b.grad for b in beta], dbeta, rtol=1e-6, atol=1e-9)


def has_micrograd() -> bool:
    try:
        import micrograd.engine  # noqa: F401
    except ImportError:
        return False
    return True


def scalar_bn(settings: Settings, n: int = 32, c: int = 8) -> CaseResult:
    inp = bn_inputs(n, c)
    _check_same_grads(inp)
    nodes = len(autograd.topological_order(_forward_only_tinybn(inp)))
    impls: dict[str, Callable[[], object]] = {
        "tinybn": lambda: tinybn_bn(inp),
        "numpy": lambda: numpy_bn(inp),
    }
    notes = []
    if has_micrograd():
        impls["micrograd"] = lambda: micrograd_bn(inp)
    else:
        notes.append("micrograd not installed: pip install micrograd==0.1.0")
    result = compare(f"scalar_bn {n}x{c}", impls, settings)
    result.notes += notes
    result.extra["nodes (tinybn graph)"] = nodes
    result.extra["tinybn nodes/s"] = nodes / result.seconds["tinybn"]
    tinybn_bytes = graph_bytes(lambda: _forward_only_tinybn(inp))
    result.extra["tinybn bytes/node"] = tinybn_bytes / nodes
    if "micrograd" in impls:
        own = micrograd_node_count(_forward_only_micrograd(inp))
        micro_bytes = graph_bytes(lambda: _forward_only_micrograd(inp))
        result.extra["micrograd nodes (own graph)"] = own
        result.extra["micrograd nodes/s (tinybn count)"] = nodes / result.seconds["micrograd"]
        result.extra["micrograd nodes/s (own count)"] = own / result.seconds["micrograd"]
        result.extra["micrograd bytes/node (tinybn count)"] = micro_bytes / nodes
        result.extra["micrograd bytes/node (own count)"] = micro_bytes / own
        result.extra["nodes/s ratio tinybn/micrograd"] = result.ratios["tinybn/micrograd"] ** -1
        result.extra["bytes/node ratio tinybn/micrograd (own counts)"] = (tinybn_bytes / nodes) / (
            micro_bytes / own
        )
        # micrograd's per-node closure is a reference cycle: with the collector off it
        # runs much faster, which shows what the cycles cost it
        gc.disable()
        try:
            off = compare("micrograd gc off", {"micrograd": lambda: micrograd_bn(inp)}, settings)
        finally:
            gc.enable()
        result.extra["micrograd seconds with gc off"] = off.seconds["micrograd"]
    return result


# -- micrograd's demo MLP ----------------------------------------------------------------------


def mlp_params(sizes=(2, 16, 16, 1), seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    # micrograd's Neuron: w ~ U(-1, 1), b = 0
    return [
        (rng.uniform(-1, 1, size=(fan_out, fan_in)), np.zeros(fan_out))
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
    ]


def moons(n: int = 100, seed: int = 0) -> tuple[list[list[float]], list[float]]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, math.pi, size=n)
    upper = np.arange(n) % 2 == 0
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    points = np.stack([x, y], axis=1) + rng.normal(scale=0.1, size=(n, 2))
    return points.tolist(), np.where(upper, 1.0, -1.0).tolist()


def tinybn_mlp(params, points, labels, alpha: float = 1e-4) -> Value:
    """micrograd's demo loss: mean max(0, 1 − y·score) + α Σ p², on tinybn Values."""
    layers = [(tb.values(w.tolist()), tb.values(b.tolist())) for w, b in params]
    flat = [p for w, b in layers for p in [*(v for row in w for v in row), *b]]
    losses = []
    for point, label in zip(points, labels):
        act = tb.values(point)
        for depth, (w, b) in enumerate(layers):
            act = [
                Value.sum([*(wi * ai for wi, ai in zip(row, act)), bias]) for row, bias in zip(w, b)
            ]
            if depth < len(layers) - 1:
                act = [a.relu() for a in act]
        losses.append((1 + -label * act[0]).relu())
    total = Value.mean(losses) + alpha * Value.sum([p * p for p in flat])
    total.backward()
    return total


def micrograd_mlp(params, points, labels, alpha: float = 1e-4):
    """micrograd's own demo (micrograd.nn.MLP, its loss) with the same weights."""
    from micrograd.engine import Value as MValue
    from micrograd.nn import MLP

    model = MLP(2, [16, 16, 1])
    for layer, (w, b) in zip(model.layers, params):
        for neuron, row, bias in zip(layer.neurons, w, b):
            neuron.w = [MValue(v) for v in row]
            neuron.b = MValue(float(bias))
    scores = [model([MValue(v) for v in point]) for point in points]
    losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total = data_loss + reg_loss
    total.backward()
    return total


def numpy_mlp(params, points, labels, alpha: float = 1e-4) -> float:
    """Hand numpy forward + backward of the same loss."""
    x, y = np.asarray(points), np.asarray(labels)
    (w1, b1), (w2, b2), (w3, b3) = params
    h1 = np.maximum(x @ w1.T + b1, 0)
    h2 = np.maximum(h1 @ w2.T + b2, 0)
    score = (h2 @ w3.T + b3)[:, 0]
    margin = 1 - y * score
    loss = np.maximum(margin, 0).mean() + alpha * sum((p**2).sum() for pair in params for p in pair)
    dscore = (-y * (margin > 0) / len(y))[:, None]
    dw3, db3 = dscore.T @ h2, dscore.sum(0)
    dh2 = (dscore @ w3) * (h2 > 0)
    dw2, db2 = dh2.T @ h1, dh2.sum(0)
    dh1 = (dh2 @ w2) * (h1 > 0)
    dw1, db1 = dh1.T @ x, dh1.sum(0)
    for p, g in zip((w1, b1, w2, b2, w3, b3), (dw1, db1, dw2, db2, dw3, db3)):
        g + 2 * alpha * p  # the L2 term's gradient, computed (and dropped) like the others
    return loss


def scalar_mlp(settings: Settings) -> CaseResult:
    params = mlp_params()
    points, labels = moons()
    loss = tinybn_mlp(params, points, labels)
    expected = numpy_mlp(params, points, labels)
    if not math.isclose(loss.data, expected, rel_tol=1e-9):
        raise AssertionError(f"scalar_mlp: tinybn loss {loss.data} != numpy {expected}")
    nodes = len(autograd.topological_order(loss))
    impls: dict[str, Callable[[], object]] = {
        "tinybn": lambda: tinybn_mlp(params, points, labels),
        "numpy": lambda: numpy_mlp(params, points, labels),
    }
    notes = []
    if has_micrograd():
        if not math.isclose(micrograd_mlp(params, points, labels).data, expected, rel_tol=1e-9):
            raise AssertionError("scalar_mlp: micrograd and numpy losses differ")
        impls["micrograd"] = lambda: micrograd_mlp(params, points, labels)
    else:
        notes.append("micrograd not installed")
    result = compare("scalar_mlp 2-16-16-1 x100", impls, settings)
    result.notes += notes
    result.extra["nodes (tinybn graph)"] = nodes
    result.extra["tinybn nodes/s"] = nodes / result.seconds["tinybn"]
    if "micrograd" in impls:
        result.extra["nodes/s ratio tinybn/micrograd"] = result.ratios["tinybn/micrograd"] ** -1
    return result


if __name__ == "__main__":  # python -m benchmarks.scalar: just the scalar-engine cases
    from benchmarks.run import main

    raise SystemExit(main(["--cases", "scalar_bn", "scalar_mlp", "--no-readme"]))
