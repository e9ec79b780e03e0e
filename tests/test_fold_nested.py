"""fold_batchnorm across nested Sequentials: a Linear and the BatchNorm1d that runs right after
it are folded even when a Sequential boundary lies between them."""

import numpy as np

import tinybn as tb
from tinybn import Tensor, nn


def trained(model: nn.Module, n_features: int, seed: int = 0) -> nn.Module:
    """A few training-mode batches, so that the running statistics are not 0 and 1."""
    rng = np.random.default_rng(seed)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm1d)):
        if bn.affine:
            bn.weight.data[:] = rng.uniform(0.5, 2.0, bn.num_features)
            bn.bias.data[:] = rng.normal(size=bn.num_features)
    for _ in range(4):
        model(Tensor(rng.normal(2.0, 3.0, size=(16, n_features))))
    return model


def nested_model() -> nn.Sequential:
    rng = np.random.default_rng(1)
    return nn.Sequential(
        nn.Sequential(nn.Linear(2, 4, rng=rng)),  # Linear ends one Sequential ...
        nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()),  # ... BatchNorm1d starts the next
        nn.Linear(4, 3, bias=False, rng=rng),
        nn.Sequential(nn.Sequential(nn.BatchNorm1d(3, momentum=None)), nn.Tanh()),  # 2 deep
        nn.Sequential(nn.Linear(3, 2, rng=rng), nn.Sequential(), nn.BatchNorm1d(2)),
    )


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_pairs_split_by_sequential_boundaries_are_folded_and_outputs_equal_eval():
    model = trained(nested_model(), 2)
    folded = nn.fold_batchnorm(model)
    assert count(folded, nn.BatchNorm1d) == 0 and count(folded, nn.Linear) == 3
    assert count(model, nn.BatchNorm1d) == 3 and model.training  # the input is unchanged
    # the BatchNorm1d's place is an Identity: the other layers keep their positions
    assert isinstance(folded[1][0], nn.Identity) and isinstance(folded[1][1], nn.ReLU)
    assert isinstance(folded[3][0][0], nn.Identity)
    assert folded[2].bias is not None  # the bias-free Linear gained BN's shift
    x = Tensor(np.random.default_rng(5).normal(2.0, 3.0, size=(9, 2)))
    with tb.no_grad():
        expected = model.eval()(x).data
        np.testing.assert_allclose(folded(x).data, expected, rtol=1e-5, atol=1e-5)


def test_the_folded_linear_across_a_boundary_is_the_lecture_notes_formula():
    model = trained(nested_model(), 2)
    folded = nn.fold_batchnorm(model)
    linear, bn = model[0][0], model[1][0]
    scale = bn.weight.data / np.sqrt(bn.running_var.data + bn.eps)
    np.testing.assert_allclose(
        folded[0][0].weight.data, scale[:, None] * linear.weight.data, rtol=1e-6
    )
    np.testing.assert_allclose(
        folded[0][0].bias.data,
        bn.bias.data + scale * (linear.bias.data - bn.running_mean.data),
        rtol=1e-5,
        atol=1e-6,
    )


class Block(nn.Module):
    """A custom module (its forward is its own) holding a Sequential."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(2)
        self.body = nn.Sequential(
            nn.Sequential(nn.Linear(3, 5, rng=rng), nn.Sequential(nn.BatchNorm1d(5))),
            nn.ReLU(),
        )
        self.skip = nn.Linear(3, 5, rng=rng)

    def forward(self, x):
        return self.body(x) + self.skip(x)


def test_sequentials_inside_a_custom_module_are_folded_too():
    model = trained(Block(), 3)
    folded = nn.fold_batchnorm(model)
    assert count(folded, nn.BatchNorm1d) == 0
    x = Tensor(np.random.default_rng(6).normal(size=(4, 3)))
    with tb.no_grad():
        np.testing.assert_allclose(folded(x).data, model.eval()(x).data, rtol=1e-5, atol=1e-5)
