"""The tour: the lecture notes' worked example normalized, rendered, stepped through."""

import numpy as np
import pytest

import tinybn.viz.picture as picture
from tinybn.demos import tour

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
X = np.array([tour.X1, tour.X2], dtype=float).T  # 10 samples × 2 features
MU = X.mean(axis=0)
VAR = X.var(axis=0)  # biased, as batch norm normalizes
XHAT = (X - MU) / np.sqrt(VAR + 1e-5)
WEIGHTS = np.arange(1, 11, dtype=float)


def test_tour_prints_the_worked_example_and_writes_its_files(tmp_path, capsys):
    assert tour.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert MU == pytest.approx([59.5, 7.8]) and VAR == pytest.approx([565.65, 1.76])
    for j in range(2):
        assert f"μ  = (1/m) Σ xᵢ        = {MU[j]:.4f}" in printed
        assert f"σ² = (1/m) Σ (xᵢ − μ)² = {VAR[j]:.4f}" in printed
        assert "[" + ", ".join(f"{v:.3f}" for v in XHAT[:, j]) + "]" in printed
        # ∂L/∂γⱼ = Σ wᵢ x̂ᵢⱼ and ∂L/∂βⱼ = Σ wᵢ = 55 for L = Σ wᵢ yᵢⱼ
        assert f"∂L/∂γ[{j}] = {WEIGHTS @ XHAT[:, j]:.6f}" in printed
        assert f"∂L/∂β[{j}] = 55.000000" in printed
    assert "through μ[0,0]" in printed and "through σ²[0,0]" in printed
    assert "through x̂[3,0]" in printed

    for name in ("bn_graph.png", "bn_graph_gamma_beta.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert f"wrote {tmp_path / name}" in printed
    svg = (tmp_path / "bn_graph.svg").read_text(encoding="utf-8")
    assert "<svg" in svg and "γ[0]" in svg and "β[1]" in svg
    source = (tmp_path / "bn_graph.gv").read_text(encoding="utf-8")
    assert "darkorange" in source and "royalblue" in source
    steps = (tmp_path / "backward_steps.txt").read_text(encoding="utf-8")
    total = int(steps.split(" of ")[1].split(":")[0])
    assert steps.count("\nstep ") + 1 == total  # every step, each opening with "step k of n"
    assert "∂(u·v)/∂v = u" in steps and "∂(mean uᵢ)/∂uᵢ = 1/n = 1/10" in steps
    tree = (tmp_path / "tree.txt").read_text(encoding="utf-8")
    assert tree.startswith("L  data") and "x[3,0]  data 104" in tree
    for name in ("backward_steps.txt", "tree.txt", "bn_graph.svg", "bn_graph.gv"):
        assert f"wrote {tmp_path / name}" in printed
    explorer = (tmp_path / "explorer.html").read_text(encoding="utf-8")
    assert f"wrote {tmp_path / 'explorer.html'}  <- open it in a browser" in printed
    assert explorer.startswith("<!DOCTYPE html>") and "step 0 / 129" in explorer


def test_the_loss_gives_gamma_and_x_nonzero_grads():
    example = tour.worked_example()
    example.loss.backward()
    gamma_grads = [g.grad for g in example.gamma]
    assert gamma_grads == pytest.approx(WEIGHTS @ XHAT)
    assert all(abs(g) > 1 for g in gamma_grads)
    x_grads = np.array([[v.grad for v in row] for row in example.x])
    # Σ over the batch of ∂L/∂x is 0 for every feature, but the grads themselves are not
    np.testing.assert_allclose(x_grads.sum(axis=0), 0.0, atol=1e-9)
    assert np.abs(x_grads).max() > 0.1


def test_render_bn_graph_without_dot_still_writes_the_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(picture.shutil, "which", lambda name: None)
    paths = tour.render_bn_graph(tmp_path)
    printed = capsys.readouterr().out
    assert set(paths) == {"dot", "params_dot"}
    assert "apt-get install -y graphviz" in printed and printed.count("note:") == 1
    assert "γ[0]" in paths["dot"].read_text(encoding="utf-8")
    assert not (tmp_path / "bn_graph.png").exists()
