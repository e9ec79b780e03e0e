"""Hessian-vector products by double backward: tinybn vs torch on the MLP with BatchNorm1d
of ``mlp_bn_step`` (784 → 256 → 256 → 10, batch 128), and the node counts of batch norm's
gradient graph on the lecture notes' batch (autodiff vs the closed form)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from benchmarks.tensor_cases import MLP_BN, has_torch, setup_torch, state_dict_of, step_data
from benchmarks.timing import CaseResult, Settings, compare


def _tinybn_hvp(data: dict, vector: list[np.ndarray]) -> Callable[[], list[np.ndarray]]:
    from tinybn import Tensor, nn
    from tinybn import functional as F
    from tinybn.autograd import hvp

    layers = []
    sizes = MLP_BN.sizes
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(fan_out), nn.ReLU()]
    model = nn.Sequential(*layers)
    model.load_state_dict(state_dict_of(MLP_BN, data))
    params = list(model.parameters())
    x = Tensor(data["x"])

    def product() -> list[np.ndarray]:
        loss = F.cross_entropy(model(x), data["targets"])
        return hvp(loss, params, vector)

    return product


def _torch_hvp(data: dict, vector: list[np.ndarray]) -> Callable[[], list[np.ndarray]]:
    import torch

    layers = []
    sizes = MLP_BN.sizes
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers += [torch.nn.BatchNorm1d(fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers)
    state = state_dict_of(MLP_BN, data)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    params = list(model.parameters())
    x, targets = torch.from_numpy(data["x"]), torch.from_numpy(data["targets"])
    v = [torch.from_numpy(part) for part in vector]

    def product() -> list[np.ndarray]:
        loss = torch.nn.functional.cross_entropy(model(x), targets)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * part).sum() for g, part in zip(grads, v))
        return [h.numpy() for h in torch.autograd.grad(dot, params)]

    return product


def hvp_case(settings: Settings) -> CaseResult:
    data = step_data(MLP_BN)
    rng = np.random.default_rng(1)
    shapes = [
        np.shape(value)
        for key, value in state_dict_of(MLP_BN, data).items()
        if key.endswith(("weight", "bias"))
    ]
    vector = [rng.normal(size=shape).astype(np.float32) for shape in shapes]
    impls: dict[str, Callable[[], object]] = {"tinybn": _tinybn_hvp(data, vector)}
    notes = []
    if has_torch():
        setup_torch()
        impls["torch"] = _torch_hvp(data, vector)
        for got, want in zip(impls["tinybn"](), impls["torch"]()):
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
    else:
        notes.append("torch not installed: pip install torch==2.13.0 (CPU)")
    result = compare("hvp mlp_bn", impls, settings)
    result.notes += notes
    result.extra.update(gradient_graph_nodes())
    return result


def gradient_graph_nodes() -> dict[str, int]:
    """Nodes of the lecture notes' one-feature BN graph: forward, the gradient graph that
    backward(create_graph=True) adds, and the closed form's dx (F.batch_norm_backward)."""
    import tinybn as tb
    from tinybn import Value
    from tinybn import functional as F
    from tinybn.autograd import topological_order

    def graph_of(roots: list) -> set[int]:
        return {id(node) for root in roots for node in topological_order(root)}

    x = tb.values([[v] for v in (33, 72, 40, 104, 52, 56, 89, 24, 52, 73)], "x")
    gamma = tb.values([1.0], "γ")
    y = F.batch_norm(x, gamma, tb.values([0.0], "β"))
    loss = Value.sum((i + 1) * row[0] for i, row in enumerate(y))
    forward = graph_of([loss])
    loss.backward(create_graph=True)
    autodiff = graph_of([row[0].grad for row in x]) - forward
    dx, _, _ = F.batch_norm_backward([[i + 1.0] for i in range(10)], x, gamma)
    own_xhat = graph_of([tb.nodes(dx)[f"xhat[{i},0]"] for i in range(10)])
    closed = graph_of([row[0] for row in dx]) - forward - own_xhat
    return {
        "forward nodes": len(forward),
        "autodiff gradient-graph nodes": len(autodiff),
        "closed-form nodes": len(closed),
    }
