"""Covariate shift and the shape of the cost surface (the cat example of the lecture notes).

A single linear unit scores "cat or not" from two inputs: x1 = size and x2 = fur colour.
Their scales are those of the lecture notes' example columns: size has mean ≈ 60 and spread ≈ 25,
fur colour mean ≈ 8 and spread ≈ 1.4. The cost over the two weights,

    J(w1, w2) = mean over examples of (w1·x1 + w2·x2 − y)²,

is a quadratic bowl whose Hessian is 2·E[x xᵀ]. With raw inputs that matrix is badly
conditioned (a long thin valley); after standardizing each input to mean 0 and std 1 it is
close to 2·I (round contours). Gradient descent with its largest safe step (1/λ_max) needs
about κ = λ_max/λ_min times more steps on the valley than on the bowl.

Then the test set's fur colour shifts (lighter cats) while the rule that makes a cat stays
the same: the surface changes shape and its minimum moves — covariate shift.

Run: ``tinybn demo covariate_shift [--quick|--full] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import Tensor
from tinybn.demos._common import (
    column_panels,
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    scale_name,
    write_results,
)

# the lecture notes' example columns:
# x1 (size) = [33, 72, 40, 104, ...], x2 (fur) = [9, 8, 7, 10, ...]
SIZE_MEAN, SIZE_STD = 60.0, 25.0
FUR_MEAN, FUR_STD = 8.0, 1.4
# the shifted test set: lighter fur, more spread; the cat rule is unchanged
SHIFTED_FUR_MEAN, SHIFTED_FUR_STD = 5.0, 2.5
RELATIVE_TOLERANCE = 1e-4  # "converged": J − J* below this fraction of J(w0) − J*


def make_cats(
    n: int, rng: np.random.Generator, fur_mean: float = FUR_MEAN, fur_std: float = FUR_STD
) -> tuple[np.ndarray, np.ndarray]:
    """Examples (size, fur colour) and labels y = ±1 (cat / not cat).

    The rule that decides "cat" is fixed: P(cat | x) = σ(1.5·(size − 60)/25 − 2·(fur − 8)/1.4).
    Returns X (n, 2) and y (n,).
    """
    size = rng.normal(SIZE_MEAN, SIZE_STD, n)
    fur = rng.normal(fur_mean, fur_std, n)
    logit = 1.5 * (size - SIZE_MEAN) / SIZE_STD - 2.0 * (fur - FUR_MEAN) / FUR_STD
    is_cat = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return np.stack([size, fur], axis=1), np.where(is_cat, 1.0, -1.0)


def quadratic_form(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """J(w) = wᵀ A w − 2 bᵀ w + c with A = E[x xᵀ] (2, 2), b = E[x y] (2,), c = E[y²]."""
    n = len(y)
    return X.T @ X / n, X.T @ y / n, float(y @ y / n)


def cost_grid(A: np.ndarray, b: np.ndarray, c: float, W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
    """J on a grid of weights (for contour plots); W1, W2 of the same shape."""
    return (
        A[0, 0] * W1**2 + 2 * A[0, 1] * W1 * W2 + A[1, 1] * W2**2 - 2 * (b[0] * W1 + b[1] * W2) + c
    )


def surface_summary(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Minimum w* = A⁻¹b, its cost, Hessian 2A eigenvalues and condition number."""
    A, b, c = quadratic_form(X, y)
    w_star = np.linalg.solve(A, b)
    eig = np.linalg.eigvalsh(2 * A)
    return {
        "w_star": w_star,
        "min_cost": float(c - b @ w_star),
        "hessian_eigenvalues": eig,
        "condition_number": float(eig[-1] / eig[0]),
    }


def gradient_descent(
    X: np.ndarray, y: np.ndarray, lr: float, steps: int, w0: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray]:
    """Plain GD on J with tinybn Tensors: the gradient comes from backward().

    Returns the path of weights (steps + 1, 2) and the cost before each step (steps + 1,).
    """
    inputs, targets = Tensor(X), Tensor(y)
    w = Tensor(np.array(w0, dtype=np.float64), requires_grad=True)
    path, costs = [w.data.copy()], []
    for _ in progress(range(steps), desc=f"GD on {label}"):
        w.grad = None
        cost = (((inputs @ w) - targets) ** 2).mean()
        cost.backward()
        costs.append(cost.item())
        w.data -= lr * w.grad
        path.append(w.data.copy())
    costs.append(float((((X @ w.data) - y) ** 2).mean()))
    return np.array(path), np.array(costs)


def steps_to_converge(costs: np.ndarray, min_cost: float) -> int | None:
    """First step at which J − J* ≤ tolerance·(J(w0) − J*), or None if never."""
    gap = (costs - min_cost) / (costs[0] - min_cost)
    hits = np.flatnonzero(gap <= RELATIVE_TOLERANCE)
    return int(hits[0]) if hits.size else None


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = pick(args, 500, 2000, 10000)
    steps = pick(args, 300, 3000, 30000)
    X, y = make_cats(n, rng)
    X_test, y_test = make_cats(n, rng, SHIFTED_FUR_MEAN, SHIFTED_FUR_STD)
    mean, std = X.mean(axis=0), X.std(axis=0)
    standardized = (X - mean) / std

    runs: dict[str, Any] = {}
    for name, inputs in (("raw", X), ("standardized", standardized)):
        summary = surface_summary(inputs, y)
        lr = 1.0 / summary["hessian_eigenvalues"][-1]  # the largest step that never overshoots
        path, costs = gradient_descent(inputs, y, lr, steps, np.zeros(2), name)
        runs[name] = {
            **summary,
            "learning_rate": lr,
            "steps_to_converge": steps_to_converge(costs, summary["min_cost"]),  # None: not yet
            "final_gap": float(costs[-1] - summary["min_cost"]),
            "path": path,
            "costs": costs,
        }

    # the shifted test set, seen raw and through the TRAINING statistics (what a model's
    # frozen normalization does at test time), and through its own statistics
    test_views = {
        "raw": (X, X_test),
        "standardized with train stats": (standardized, (X_test - mean) / std),
        "standardized with test stats": (
            standardized,
            (X_test - X_test.mean(axis=0)) / X_test.std(axis=0),
        ),
    }
    shift: dict[str, Any] = {}
    for name, (train_inputs, test_inputs) in test_views.items():
        train_summary = surface_summary(train_inputs, y)
        test_summary = surface_summary(test_inputs, y_test)
        A, b, c = quadratic_form(test_inputs, y_test)
        w = train_summary["w_star"]
        shift[name] = {
            "train_w_star": train_summary["w_star"],
            "test_w_star": test_summary["w_star"],
            "train_condition_number": train_summary["condition_number"],
            "test_condition_number": test_summary["condition_number"],
            "test_cost_at_train_w_star": float(w @ A @ w - 2 * b @ w + c),
            "test_min_cost": test_summary["min_cost"],
            "surfaces": (quadratic_form(train_inputs, y), (A, b, c)),
        }
    return {
        "X": X,
        "X_test": X_test,
        "standardized": standardized,
        "train_mean": mean,
        "train_std": std,
        "runs": runs,
        "shift": shift,
        "steps": steps,
    }


# -- figures ------------------------------------------------------------------------------


def _window(points: np.ndarray, margin: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A square box around the points (equal scales on both axes: round stays round)."""
    low, high = points.min(axis=0), points.max(axis=0)
    center, span = (low + high) / 2, (1 + 2 * margin) * max((high - low).max(), 1e-3)
    return center - span / 2, center + span / 2


def _contours(ax: Any, surface: tuple, low: np.ndarray, high: np.ndarray, **kwargs: Any) -> None:
    A, b, c = surface
    W1, W2 = np.meshgrid(np.linspace(low[0], high[0], 300), np.linspace(low[1], high[1], 300))
    J = cost_grid(A, b, c, W1, W2)
    j_min = J.min()
    levels = j_min + (J.max() - j_min) * np.geomspace(1e-4, 1.0, 14)
    ax.contour(W1, W2, J, levels=levels, **kwargs)


def plot_inputs(result: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    X, X_test, mean, std = result["X"], result["X_test"], result["train_mean"], result["train_std"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
    names = ("x1 = size", "x2 = fur colour")
    for j, name in enumerate(names):
        axes[0].hist(X[:, j], bins=60, alpha=0.6, density=True, label=f"{name} (train)")
    axes[0].hist(X_test[:, 1], bins=60, alpha=0.5, density=True, label="x2 (shifted test)")
    axes[0].set_title("raw inputs: very different scales")
    axes[0].set_xlabel("value")
    axes[0].legend(fontsize=9)
    standardized_test = (X_test - mean) / std
    for j, name in enumerate(names):
        axes[1].hist(
            result["standardized"][:, j], bins=60, alpha=0.6, density=True, label=f"{name}'"
        )
    axes[1].hist(
        standardized_test[:, 1], bins=60, alpha=0.5, density=True, label="x2' (test, train stats)"
    )
    axes[1].set_title("standardized with training mean/std: train ≈ N(0, 1), shifted test is not")
    axes[1].set_xlabel("value")
    axes[1].legend(fontsize=9)
    return save_figure(fig, path)


def plot_surfaces(result: dict[str, Any], path: Any) -> Any:

    fig, axes = column_panels(3, panel_height=3.4)
    for ax, name in zip(axes[:2], ("raw", "standardized")):
        run = result["runs"][name]
        surface = result["shift"]["raw" if name == "raw" else "standardized with train stats"]
        path_w = run["path"]
        low, high = _window(np.vstack([path_w, run["w_star"][None]]))
        _contours(ax, surface["surfaces"][0], low, high, cmap="viridis", linewidths=0.8)
        ax.plot(path_w[:, 0], path_w[:, 1], "r.-", ms=3, lw=1, label="gradient descent")
        ax.plot(*run["w_star"], "k*", ms=12, label="minimum")
        steps = run["steps_to_converge"]
        converged = f"{steps} steps" if steps is not None else f"not in {result['steps']} steps"
        ax.set_title(f"{name} inputs: κ = {run['condition_number']:.3g}, converged: {converged}")
        ax.set_xlabel("w1 (weight of size)")
        ax.set_ylabel("w2 (weight of fur colour)")
        ax.set_aspect("equal")  # round means round
        ax.legend(fontsize=9, loc="best")
    for name, style in (("raw", "C3"), ("standardized", "C0")):
        run = result["runs"][name]
        gap = (run["costs"] - run["min_cost"]) / (run["costs"][0] - run["min_cost"])
        axes[2].semilogy(np.maximum(gap, 1e-16), color=style, label=name)
    axes[2].axhline(RELATIVE_TOLERANCE, color="gray", ls="--", lw=0.8, label="tolerance")
    axes[2].set_title("(J − J*) / (J(w0) − J*), step size 1/λ_max each")
    axes[2].set_xlabel("gradient-descent step")
    axes[2].set_xscale("symlog", linthresh=1)
    axes[2].set_xlim(0, result["steps"])
    axes[2].legend(fontsize=9)
    return save_figure(fig, path)


def plot_shift(result: dict[str, Any], path: Any) -> Any:

    names = ("raw", "standardized with train stats", "standardized with test stats")
    fig, axes = column_panels(3, panel_height=3.4)
    for ax, name in zip(axes, names):
        view = result["shift"][name]
        points = np.vstack([view["train_w_star"], view["test_w_star"]])
        low, high = _window(points, margin=1.5)
        train_surface, test_surface = view["surfaces"]
        _contours(ax, train_surface, low, high, colors="C0", linewidths=0.8)
        _contours(ax, test_surface, low, high, colors="C3", linewidths=0.8, linestyles="--")
        ax.plot(*view["train_w_star"], "C0*", ms=12, label="train minimum (solid contours)")
        ax.plot(*view["test_w_star"], "C3X", ms=10, label="shifted-test minimum (dashed)")
        ax.set_title(
            f"{name}\nκ train {view['train_condition_number']:.3g} → "
            f"test {view['test_condition_number']:.3g}",
            fontsize=10,
        )
        ax.set_xlabel("w1")
        ax.set_ylabel("w2")
        ax.set_aspect("equal")
        ax.legend(fontsize=9, loc="best")
    fig.suptitle(
        "Lighter fur at test time (x2 mean 8 → 5): the surface changes and its minimum moves",
        y=1.04,
    )
    return save_figure(fig, path)


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"covariate_shift ({scale_name(args)} scale)")
    result = experiment(args)

    rows = []
    for name, run_ in result["runs"].items():
        rows.append(
            {
                "inputs": name,
                "condition number κ": run_["condition_number"],
                "step size": run_["learning_rate"],
                "GD steps to converge": run_["steps_to_converge"] or f">{result['steps']}",
                "final J − J*": run_["final_gap"],
            }
        )
    print_table(rows, list(rows[0]))
    shift_rows = []
    for name, view in result["shift"].items():
        shift_rows.append(
            {
                "view of shifted test set": name,
                "κ train→test": f"{view['train_condition_number']:.3g}→"
                f"{view['test_condition_number']:.3g}",
                "minimum moved by": float(
                    np.linalg.norm(view["test_w_star"] - view["train_w_star"])
                ),
                "test J at train w*": view["test_cost_at_train_w_star"],
                "test J min": view["test_min_cost"],
            }
        )
    print_table(shift_rows, list(shift_rows[0]))

    figures = [
        plot_inputs(result, out / "covariate_shift_inputs.png"),
        plot_surfaces(result, out / "covariate_shift_surfaces.png"),
        plot_shift(result, out / "covariate_shift_shift.png"),
    ]
    results = {
        "demo": "covariate_shift",
        "scale": scale_name(args),
        "seed": args.seed,
        "max_steps": result["steps"],
        "tolerance": RELATIVE_TOLERANCE,
        "surfaces": {
            name: {
                **{k: v for k, v in run_.items() if k not in ("path", "costs")},
                "converged": run_["steps_to_converge"] is not None,
                # if not converged: at least max_steps + 1
                "steps_to_converge": run_["steps_to_converge"] or result["steps"] + 1,
            }
            for name, run_ in result["runs"].items()
        },
        "shift": {
            name: {k: v for k, v in view.items() if k != "surfaces"}
            for name, view in result["shift"].items()
        },
        "figures": [str(f) for f in figures],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return main_of("covariate_shift", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
