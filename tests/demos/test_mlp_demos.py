"""Demos I at --quick scale: the files are written, the numbers are finite, and the
directions that are robust even at this scale hold. Plus the demos' helpers against
hand-computed answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import run_demo_quick

from tinybn import nn
from tinybn.demos import bn_position, inference, ioffe_fig1, lr_init, placement, regularization
from tinybn.demos._mlp import build_mlp, steps_to_threshold


@pytest.fixture(scope="module")
def outdir(tmp_path_factory):
    return tmp_path_factory.mktemp("demos1")


@pytest.fixture(scope="module")
def placement_quick(outdir):
    out = outdir / "placement"
    return out, run_demo_quick(placement, out)


def test_placement_quick(placement_quick):
    out, results = placement_quick
    assert (out / "placement_curves.png").stat().st_size > 0
    assert (out / "placement_boundaries.png").stat().st_size > 0
    table = {(r["inputs"], r["model"]): r for r in results["table"]}
    # the lecture notes' model: 40 params with the two BN layers (10 of them moving stats),
    # 20 without
    assert table["raw inputs", "with BN"]["params"] == 40
    assert table["raw inputs", "without BN"]["params"] == 20
    # on raw (cgpa, iq ~ 100) inputs the plain model's ReLUs die; BN rescues it
    assert (
        table["raw inputs", "with BN"]["final_val_accuracy"]
        > table["raw inputs", "without BN"]["final_val_accuracy"] + 0.1
    )


def test_placement_run_is_reproducible(placement_quick, tmp_path, capsys):
    """The command line (`tinybn demo placement --quick`) repeats run()'s numbers exactly:
    seeded. It prints what run prints: the scale, then the table (what docs/build_figures.py
    keeps as placement.txt)."""
    assert placement.main(["--quick", "--out", str(tmp_path), "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("placement (quick scale)")
    assert "standardized inputs" in printed and "with BN" in printed
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["table"] == placement_quick[1]["table"]


def test_ioffe_fig1_quick(outdir):
    out = outdir / "ioffe"
    results = run_demo_quick(ioffe_fig1, out)
    assert (out / "ioffe_fig1.png").stat().st_size > 0
    summary = results["summary"]
    assert summary["with BN"]["final_test_acc"] > summary["without BN"]["final_test_acc"] + 0.2
    for run in results["runs"].values():
        percentiles = np.array(run["percentiles"])
        assert percentiles.shape == (len(run["step"]) - 1, 3)  # no entry for step 0
        assert np.all(np.diff(percentiles, axis=1) >= 0)  # 15th <= 50th <= 85th


def test_ioffe_reads_mnist_idx_files(tmp_path):
    """A tiny MNIST in the IDX format: magic 0x0803 / 0x0801, big-endian sizes, bytes."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        header = b"\x00\x00\x08\x03" + np.array([n, 28, 28], dtype=">u4").tobytes()
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = b"\x00\x00\x08\x01" + np.array([n], dtype=">u4").tobytes()
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
        if prefix == "train":
            expected_images, expected_labels = images, labels
    (X, y), (X_test, y_test) = ioffe_fig1.load_mnist(tmp_path)
    assert X.shape == (5, 784) and X_test.shape == (3, 784)
    np.testing.assert_allclose(X, expected_images.reshape(5, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, expected_labels)
    (tmp_path / "broken-idx").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        ioffe_fig1._read_idx(tmp_path / "broken-idx")


def test_lr_init_quick(outdir):
    out = outdir / "lr_init"
    results = run_demo_quick(lr_init, out)
    assert (out / "lr_init.png").stat().st_size > 0
    bn, plain = results["summary"]["with BN"], results["summary"]["without BN"]
    assert bn["cells_reaching_threshold"] > plain["cells_reaching_threshold"]
    assert bn["cells_diverged"] == 0 and plain["cells_diverged"] > 0  # lr 3 at init scale 3
    assert bn["median_test_acc"] > plain["median_test_acc"]


def test_bn_position_quick(outdir):
    out = outdir / "bn_position"
    results = run_demo_quick(bn_position, out)
    assert (out / "bn_position.png").stat().st_size > 0
    rows = {(r["activation"], r["placement"]): r for r in results["table"]}
    assert len(rows) == 6
    none = rows["sigmoid", "none"]["final_train_loss"]
    for placement_name in ("BN before act (z)", "BN after act (a)"):
        assert rows["sigmoid", placement_name]["final_train_loss"] < 0.5 * none


def test_regularization_quick(outdir):
    out = outdir / "regularization"
    results = run_demo_quick(regularization, out)
    assert (out / "regularization.png").stat().st_size > 0
    table = {r["variant"]: r for r in results["table"]}
    assert set(table) == {"none", "BN", "Dropout", "BN + Dropout"}
    for row in table.values():
        assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"])
    # the demo's premise: on 200 examples the plain network fits train better than test
    assert table["none"]["train_acc"] > 0.9 and table["none"]["gap"] > 0.02


def test_inference_quick(outdir):
    out = outdir / "inference"
    results = run_demo_quick(inference, out)
    assert (out / "inference.png").stat().st_size > 0
    fold = results["fold"]
    assert fold["max_abs_difference"] < 1e-4 and fold["predictions_equal"]
    assert "BatchNorm1d" not in fold["folded_layers"]
    forgot = results["forgotten_eval"]
    # eval mode: an example's output does not depend on its batch; training mode: it does
    assert forgot["eval_mode_max_deviation"] < 1e-6
    assert forgot["test_set_prediction_flips_eval_mode"] == 0.0
    low, high = forgot["train_mode_prob_range"]
    assert high - low > 0.05
    # the paper's population estimate with the final weights beats the model's EMA
    population = results["population_after_training"]
    assert population["mean_error"] < population["model_ema_mean_error"]
    assert population["var_error"] < population["model_ema_var_error"]


def test_inference_trackers_match_hand_computed_statistics():
    """After batches z1, z2: EMA 0.1 (unbiased var), cumulative mean, Keras EMA 0.99 (biased)."""
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    trackers = inference.Trackers(3)
    for z in (z1, z2):
        trackers.update(z.astype(np.float32))
    estimates = trackers.estimates()
    torch_mean = 0.9 * (0.1 * z1.mean(0)) + 0.1 * z2.mean(0)
    torch_var = 0.9 * (0.9 + 0.1 * z1.var(0, ddof=1)) + 0.1 * z2.var(0, ddof=1)
    keras_var = 0.99 * (0.99 + 0.01 * z1.var(0)) + 0.01 * z2.var(0)
    paper_var = (z1.var(0, ddof=1) + z2.var(0, ddof=1)) / 2
    np.testing.assert_allclose(estimates["PyTorch EMA (momentum 0.1)"][0], torch_mean, rtol=1e-5)
    np.testing.assert_allclose(estimates["PyTorch EMA (momentum 0.1)"][1], torch_var, rtol=1e-5)
    np.testing.assert_allclose(estimates["Keras EMA (momentum 0.99)"][1], keras_var, rtol=1e-5)
    cumulative = estimates["cumulative average over training (momentum=None)"]
    np.testing.assert_allclose(cumulative[0], (z1.mean(0) + z2.mean(0)) / 2, rtol=1e-5)
    np.testing.assert_allclose(cumulative[1], paper_var, rtol=1e-5)


def test_build_mlp_places_batch_norm_before_or_after_the_activation():
    kinds = {
        bn: [type(m).__name__ for m in build_mlp([4, 5, 5, 2], "sigmoid", bn, dropout=0.5)]
        for bn in ("before", "after", None)
    }
    assert kinds["before"][:4] == ["Linear", "BatchNorm1d", "Sigmoid", "Dropout"]
    assert kinds["after"][:4] == ["Linear", "Sigmoid", "BatchNorm1d", "Dropout"]
    assert "BatchNorm1d" not in kinds[None] and kinds[None][-1] == "Linear"
    with pytest.raises(ValueError, match="bn must be"):
        build_mlp([4, 2], bn="middle")


def test_build_mlp_init_scale_sets_the_weight_spread():
    model = build_mlp([400, 300, 2], "relu", None, init_scale=3.0, rng=np.random.default_rng(0))
    first = next(m for m in model if isinstance(m, nn.Linear))
    assert first.weight.data.std() == pytest.approx(3.0 / math.sqrt(400), rel=0.02)
    assert np.all(first.bias.data == 0)


def test_steps_to_threshold_uses_the_running_mean():
    losses = [3.0] * 10 + [0.0] * 10
    # mean of the last 4 falls below 1.0 once 3 of them are 0: after step 13
    assert steps_to_threshold(losses, 1.0, window=4) == 13
    assert steps_to_threshold(losses, -1.0, window=4) is None
    assert steps_to_threshold([0.0] * 3, 1.0, window=4) is None
