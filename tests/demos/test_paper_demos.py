"""Demos II at --quick scale: files written, numbers finite, robust directions asserted.

Plus checks of the measuring code itself against closed forms (least squares, ICS at a
zero step, mode coverage of the target distribution).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from helpers import json_leaves, run_demo_quick

from tinybn import nn
from tinybn.demos import covariate_shift, gan, layernorm, santurkar


def _run_quick(module, name, tmp_path):
    """run_demo_quick, and also: every figure is written, and no result is null."""
    out = tmp_path / name
    results = run_demo_quick(module, out)
    for figure in results["figures"]:
        path = out / figure.split("/")[-1]
        assert path.exists() and path.stat().st_size > 10_000, figure
    # null would be a NaN/inf the demo produced (see _common._finite_json)
    assert None not in list(json_leaves(results))
    return results


# -- covariate_shift ---------------------------------------------------------------------------


def test_covariate_shift_quick(tmp_path):
    results = _run_quick(covariate_shift, "covariate_shift", tmp_path)
    raw, standardized = results["surfaces"]["raw"], results["surfaces"]["standardized"]
    assert raw["condition_number"] > 100  # the elongated valley
    assert standardized["condition_number"] < 1.5  # the round bowl
    assert standardized["converged"]
    assert standardized["steps_to_converge"] < raw["steps_to_converge"]
    # the shifted test set moves the minimum of the surface
    for view in results["shift"].values():
        assert np.linalg.norm(np.subtract(view["test_w_star"], view["train_w_star"])) > 1e-3
        assert view["test_cost_at_train_w_star"] > view["test_min_cost"]


def test_covariate_shift_minimum_is_least_squares_and_gd_reaches_it():
    rng = np.random.default_rng(1)
    X, y = covariate_shift.make_cats(300, rng)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    summary = covariate_shift.surface_summary(X, y)
    np.testing.assert_allclose(summary["w_star"], np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)
    A, b, c = covariate_shift.quadratic_form(X, y)
    w = np.array([0.3, -0.7])
    grid = covariate_shift.cost_grid(A, b, c, np.array([w[0]]), np.array([w[1]]))[0]
    assert grid == pytest.approx(np.mean((X @ w - y) ** 2), rel=1e-12)
    lr = 1.0 / summary["hessian_eigenvalues"][-1]
    path, costs = covariate_shift.gradient_descent(X, y, lr, 50, np.zeros(2), "test")
    np.testing.assert_allclose(path[-1], summary["w_star"], atol=1e-8)
    assert costs[-1] == pytest.approx(summary["min_cost"], abs=1e-12)


# -- santurkar ---------------------------------------------------------------------------------


def test_santurkar_quick(tmp_path):
    results = _run_quick(santurkar, "santurkar", tmp_path)
    summary = results["summary"]
    # the injected noise makes the layer inputs far less stable than plain BN (part a)
    assert summary["noisy BN"]["activation drift"] > 10 * summary["BN"]["activation drift"]
    for variant in ("no BN", "BN"):
        curves = results["curves"][variant]
        assert len(curves["landscape"]) == len(curves["measure_step"]) >= 2
        for shifts in curves["ics"]:
            assert len(shifts) == 3  # Linear 2, 3, 4
            assert all(-1.0 - 1e-6 <= s["cosine"] <= 1.0 + 1e-6 for s in shifts)
    # (d): λ_max per seed and measurement, a summary and a verdict for (b) and (d)
    hessian = results["hessian"]
    for variant in ("no BN", "BN"):
        runs = hessian["curves"][variant]
        assert len(runs) == santurkar.HESSIAN_SEEDS
        assert all(len(values) == len(hessian["measure_step"]) for values in runs)
        assert hessian["summary"][variant]["median_lambda_max_mean"] > 0
    assert set(results["verdicts"]) == {"beta_smoothness (b)", "lambda_max (d)"}
    assert all(v["verdict"].endswith("reproduced") for v in results["verdicts"].values())


def test_top_eigenvalue_of_a_tiny_bn_mlp_equals_the_full_hessians():
    """(d)'s probe: power iteration on H·v finds the Hessian's largest |eigenvalue|."""
    from tinybn import Tensor
    from tinybn import functional as F
    from tinybn.autograd import hvp

    model = _tiny_mlp(bn=True)
    model.double()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.integers(0, 3, size=12)
    found = santurkar.top_eigenvalue(model, x, y, seed=0)
    params = list(model.parameters())
    sizes = [p.data.size for p in params]
    columns = []  # the full Hessian, one H·eᵢ column at a time
    for i in range(sum(sizes)):
        unit = np.zeros(sum(sizes))
        unit[i] = 1.0
        parts = np.split(unit, np.cumsum(sizes)[:-1])
        loss = F.cross_entropy(santurkar.forward(model, Tensor(x))[0], y)
        product = hvp(loss, params, [p.reshape(q.shape) for p, q in zip(parts, params)])
        columns.append(np.concatenate([h.ravel() for h in product]))
    spectrum = np.linalg.eigvalsh((np.array(columns) + np.array(columns).T) / 2)
    assert found == pytest.approx(spectrum[np.argmax(np.abs(spectrum))], rel=1e-3)


def _tiny_mlp(bn):
    return santurkar.build_mlp(
        [5, 7, 6, 3], bn="before" if bn else None, rng=np.random.default_rng(0)
    )


@pytest.mark.parametrize("bn", [False, True])
def test_ics_is_zero_when_earlier_layers_do_not_move(bn):
    model = _tiny_mlp(bn)
    params = list(model.parameters())
    rng = np.random.default_rng(0)
    xb, yb = rng.normal(size=(16, 5)).astype(np.float32), rng.integers(0, 3, 16)
    before = [p.data.copy() for p in params]
    shifts = santurkar.internal_covariate_shift(model, params, xb, yb, lr=0.0)
    assert [s["l2"] for s in shifts] == pytest.approx([0.0, 0.0], abs=1e-7)
    assert [s["cosine"] for s in shifts] == pytest.approx([1.0, 1.0], abs=1e-5)
    moved = santurkar.internal_covariate_shift(model, params, xb, yb, lr=0.5)
    assert all(s["l2"] > 1e-6 for s in moved)
    # measuring leaves the weights as they were
    for p, w in zip(params, before):
        np.testing.assert_array_equal(p.data, w)


def test_landscape_of_a_linear_model_matches_closed_form():
    """For a linear softmax model with tiny steps, β-smoothness ≈ ‖H g‖/‖g‖ ≤ ‖H‖."""
    model = santurkar.build_mlp([4, 3], bn=None, rng=np.random.default_rng(0))
    assert isinstance(model[0], nn.Linear)
    params = list(model.parameters())
    rng = np.random.default_rng(2)
    xb, yb = rng.normal(size=(32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    measured = santurkar.landscape(model, params, xb, yb, lr=1e-3)
    loss0, grads = santurkar.loss_and_grads(model, params, xb, yb)
    g = np.concatenate([gr.ravel() for gr in grads])
    # the loss along −g falls by ≈ η‖g‖² for the largest η (4 × lr): loss range ≈ that
    eta = 4e-3
    assert measured["loss_range"] == pytest.approx(eta * g @ g, rel=0.05)
    assert 0 < measured["beta_smoothness"] < 10


# -- layernorm ---------------------------------------------------------------------------------


def test_layernorm_quick(tmp_path):
    results = _run_quick(layernorm, "layernorm", tmp_path)
    bn, ln = results["batch_sizes"]["BN"], results["batch_sizes"]["LN"]
    assert bn["1"]["cannot_train"] is True
    assert "batch" in bn["1"]["error"] or "value per channel" in bn["1"]["error"]
    for b in layernorm.BATCH_SIZES:
        assert ln[str(b)]["cannot_train"] is False
        assert 0.0 <= ln[str(b)]["test_acc"] <= 1.0
    assert ln["1"]["test_acc"] > 0.3  # layer norm learns from one example at a time
    table = results["invariances"]
    assert table["single example re-scaling"]["LN_max_change"] < 1e-6
    assert table["single example re-scaling"]["BN_max_change"] > 1e-2
    for row in table.values():  # every cell of Ba et al.'s Table 1 holds
        assert row["BN_invariant"] == row["paper_BN_invariant"]
        assert row["LN_invariant"] == row["paper_LN_invariant"]
    for name in ("with LN", "without LN"):
        assert results["rnn"][name]["final_test_mse"] > 0


def test_adding_problem_targets_and_rnn_ignores_padding():
    rng = np.random.default_rng(0)
    x, lengths, y = layernorm.adding_problem(20, 4, 9, rng)
    assert x.shape == (20, 9, 2) and np.all((4 <= lengths) & (lengths <= 9))
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)
    assert np.all(x[:, :, 1].sum(axis=1) == 2)
    model = layernorm.TinyRNN(8, True, np.random.default_rng(0))
    padded = x.copy()
    for i, T in enumerate(lengths):
        padded[i, T:] = 5.0  # garbage after each sequence's end must not matter
    np.testing.assert_allclose(model(padded, lengths).data, model(x, lengths).data, atol=1e-6)


# -- gan ---------------------------------------------------------------------------------------


def test_gan_quick(tmp_path):
    results = _run_quick(gan, "gan", tmp_path)
    for variant in gan.VARIANTS:
        summary = results["summary"][variant]
        assert all(0 <= m <= 8 for m in summary["modes_covered_per_seed"])
        assert 0.0 <= summary["mean_good_fraction"] <= 1.0


def test_mode_coverage_counts_modes():
    rng = np.random.default_rng(0)
    full = gan.mode_coverage(gan.sample_ring(4000, rng))
    assert full["modes_covered"] == 8 and full["good_fraction"] > 0.98
    one_mode = gan.mode_centers()[3] + 0.05 * rng.standard_normal((500, 2))
    assert gan.mode_coverage(one_mode)["modes_covered"] == 1
    far_away = np.zeros((100, 2))  # the centre of the ring is 2 away from every mode
    assert gan.mode_coverage(far_away)["good_fraction"] == 0.0


def test_demo_runs_from_the_cli(tmp_path):
    from tinybn.cli import main

    out = tmp_path / "cli"
    assert main(["demo", "covariate_shift", "--quick", "--out", str(out)]) == 0
    assert (out / "results.json").exists()
    args = argparse.Namespace(quick=True, full=False)
    assert covariate_shift.pick(args, 1, 2, 3) == 1
