"""Demos III (convolutions): cnn and norms at --quick scale, and the CNN they share."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import json_leaves, run_demo_quick

from tinybn import Tensor, nn
from tinybn.demos import cnn, norms


def _run_quick(module, name, tmp_path):
    out = tmp_path / name
    results = run_demo_quick(module, out)
    for figure in results["figures"]:
        path = out / figure.split("/")[-1]
        assert path.exists() and path.stat().st_size > 10_000, figure
    return results


def test_cnn_quick(tmp_path):
    results = _run_quick(cnn, "cnn", tmp_path)
    assert set(results["summary"]) == {"without BN", "with BN"}
    for name, summary in results["summary"].items():
        assert 0.0 <= summary["final_test_acc"] <= 1.0
        curve = results["curves"][name]
        assert curve["step"][0] == 0 and curve["step"][-1] == results["steps"]
        assert len(curve["test_acc"]) == len(curve["step"])
    # the sweep records every learning rate, for both models
    assert list(results["sweep"]["with BN"]) == ["0.1", "3"]
    # with BN, 40 steps at lr 0.1 on 300 digits already beat chance (0.1) by far
    assert results["summary"]["with BN"]["final_test_acc"] > 0.5


def test_norms_quick(tmp_path):
    results = _run_quick(norms, "norms", tmp_path)
    assert None not in list(json_leaves(results))
    for norm in norms.NORMS:
        for b in results["batch_sizes"]:
            assert 0 <= results["test_error_pct"][norm][str(b)] <= 100
            assert len(results["test_accuracy_per_seed"][norm][str(b)]) == results["seeds"]


@pytest.mark.parametrize(
    "norm, layer",
    [
        (None, None),
        ("BN", nn.BatchNorm2d),
        ("GN", nn.GroupNorm),
        ("LN", nn.GroupNorm),
        ("IN", nn.InstanceNorm2d),
    ],
)
def test_build_cnn_places_the_norm_after_each_conv(norm, layer):
    model = cnn.build_cnn(norm, 8, np.random.default_rng(0))
    kinds = [type(m).__name__ for m in model]
    convs = [i for i, k in enumerate(kinds) if k == "Conv2d"]
    assert len(convs) == 2
    for i in convs:
        assert (model[i].bias is None) == (norm is not None)  # β replaces the conv's bias
        if layer is not None:
            assert isinstance(model[i + 1], layer)
    if norm == "LN":
        assert model[1].num_groups == 1  # all of (C, H, W) per example
    if norm == "GN":
        assert model[1].num_groups == 4
    assert model(Tensor(np.zeros((3, 1, 8, 8), dtype=np.float32))).shape == (3, 10)
    with pytest.raises(ValueError, match="unknown norm"):
        cnn.build_cnn("XN", 8, np.random.default_rng(0))


def test_cnn_reads_mnist_as_standardized_images_and_builds_for_28x28(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        header = b"\x00\x00\x08\x03" + np.array([n, 28, 28], dtype=">u4").tobytes()
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = b"\x00\x00\x08\x01" + np.array([n], dtype=">u4").tobytes()
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    (X, y), (X_test, y_test) = cnn.images(0, tmp_path, n_train=5)
    assert X.shape == (5, 1, 28, 28) and X_test.shape == (4, 1, 28, 28)
    assert X.dtype == np.float32 and len(y) == 5
    assert abs(float(X.mean())) < 1e-5 and float(X.std()) == pytest.approx(1.0, rel=1e-4)
    model = cnn.build_cnn("BN", 28, np.random.default_rng(0))
    assert model(Tensor(X)).shape == (5, 10)
