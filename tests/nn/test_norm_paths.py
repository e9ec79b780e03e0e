"""Every norm layer with a fused fast path trains the same through it and through the composed
source of ``functional.batch_norm`` (``composed=True``): outputs, input and parameter grads,
running statistics, over several training steps and in eval."""

from __future__ import annotations

import numpy as np
import pytest

from tinybn import Tensor, nn

# (layer, input shape): BatchNorm1d on (N, C) and (N, C, L), BatchNorm2d on (N, C, H, W);
# the last takes the kernel's long-row and BLAS paths (2¹⁷ values or more)
CASES = [
    (nn.BatchNorm1d, (16, 5)),
    (nn.BatchNorm1d, (6, 5, 7)),
    (nn.BatchNorm2d, (4, 3, 5, 6)),
    (nn.BatchNorm1d, (2048, 64)),
]
OPTIONS = [
    {},
    {"momentum": None},
    {"affine": False},
    {"bias": False},
    {"track_running_stats": False},
]


def _run(layer_type, shape, options, composed):
    rng = np.random.default_rng(7)
    layer = layer_type(shape[1], composed=composed, **options)
    if layer.weight is not None:  # not the initial γ = 1, β = 0, so that both matter
        layer.weight.data[...] = rng.uniform(0.5, 2.0, shape[1])
    if layer.bias is not None:
        layer.bias.data[...] = rng.normal(size=shape[1])
    record = []
    for step in range(3):
        x = Tensor(rng.normal(2.0, 3.0, size=shape), requires_grad=True)
        y = layer(x)
        y.backward(rng.normal(size=shape))
        record += [y.data, x.grad]
        record += [p.grad for p in layer.parameters()]
        for p in layer.parameters():
            p.data -= 0.1 * p.grad  # an SGD step, so that later steps see other γ, β
            p.grad = None
    layer.eval()
    record.append(layer(Tensor(rng.normal(size=shape))).data)
    return record + [value for value in layer.state_dict().values()], layer


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
@pytest.mark.parametrize("layer_type, shape", CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_fused_and_composed_paths_give_equal_outputs_grads_and_running_stats(
    layer_type, shape, options
):
    fused, fused_layer = _run(layer_type, shape, options, composed=False)
    composed, composed_layer = _run(layer_type, shape, options, composed=True)
    assert len(fused) == len(composed)
    for got, want in zip(fused, composed):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)
    assert list(fused_layer.state_dict()) == list(composed_layer.state_dict())


def test_the_layer_runs_the_fused_node_by_default_and_the_composed_graph_when_asked():
    x = Tensor(np.random.default_rng(0).normal(size=(8, 3)), requires_grad=True)
    fused = nn.BatchNorm1d(3)(x)
    assert fused.op == "batch_norm" and fused.parents[0] is x  # one node
    composed = nn.BatchNorm1d(3, composed=True)(x)
    assert composed.role == "shifted"  # y = γ·x̂ + β, the last stage of the composed graph
    roles = set()
    stack = [composed]
    while stack:
        node = stack.pop()
        roles.add(node.role)
        stack.extend(node.parents)
    assert {"mean", "centered", "var", "std", "xhat", "scaled", "shifted"} <= roles


def test_composed_must_be_a_bool():
    with pytest.raises(TypeError, match="composed must be True or False"):
        nn.BatchNorm1d(3, composed="yes")
