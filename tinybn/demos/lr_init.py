"""Learning rate × weight-init scale, with and without batch norm.

The lecture notes' claims: batch norm allows higher learning rates and makes
training less sensitive to the weight initialization. A grid of SGD learning rates ×
init scales s (weights ~ N(0, s²/fan_in)) trains the same ReLU network on the 8×8 digits
with and without BN; heatmaps show the final training loss, the test accuracy and the
number of steps until the (smoothed) mini-batch loss first falls below a threshold.

    tinybn demo lr_init [--quick | --full] [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import optim
from tinybn.demos._common import (
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    write_results,
)
from tinybn.demos._mlp import build_mlp, digits_split, steps_to_threshold, train_classifier

HIDDEN = [64, 64, 64]
BATCH_SIZE = 64
LOSS_THRESHOLD = 0.5  # cross-entropy; chance level for 10 classes is ln 10 ≈ 2.3


def grid(args: argparse.Namespace) -> tuple[list[float], list[float], int]:
    """(learning rates, init scales, steps) for the scale."""
    lrs = pick(
        args,
        [0.01, 0.3, 3.0],
        [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    )
    scales = pick(
        args, [0.1, 3.0], [0.1, 0.3, 1.0, 3.0, 10.0], [0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
    )
    steps = pick(args, 60, 300, 1500)
    return lrs, scales, steps


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Train every cell of the grid with and without BN; write heatmaps and results.json."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"lr_init ({scale} scale)")
    lrs, scales, steps = grid(args)
    train, test = digits_split(seed)
    n_in, n_classes = train[0].shape[1], int(train[1].max()) + 1
    cells = [
        (bn, i, j) for bn in (False, True) for i in range(len(scales)) for j in range(len(lrs))
    ]
    maps = {
        name: {
            key: np.full((len(scales), len(lrs)), np.nan)
            for key in ("final_train_loss", "test_acc", "steps_to_threshold")
        }
        for name in ("without BN", "with BN")
    }
    for bn, i, j in progress(cells, desc="grid"):
        rng = np.random.default_rng(seed)
        model = build_mlp(
            [n_in, *HIDDEN, n_classes],
            "relu",
            "before" if bn else None,
            init_scale=scales[i],
            rng=rng,
        )
        optimizer = optim.SGD(model.parameters(), lr=lrs[j])
        history = train_classifier(
            model,
            optimizer,
            train,
            test,
            steps,
            BATCH_SIZE,
            seed,
            eval_every=steps,
            desc=f"lr={lrs[j]} s={scales[i]}",
        )
        cell = maps["with BN" if bn else "without BN"]
        if not history["diverged"] and np.isfinite(history["train_loss"][-1]):
            cell["final_train_loss"][i, j] = history["train_loss"][-1]
            cell["test_acc"][i, j] = history["test_acc"][-1]
        reached = steps_to_threshold(history["batch_loss"], LOSS_THRESHOLD)
        if reached is not None:
            cell["steps_to_threshold"][i, j] = reached

    summary = {}
    for name, cell in maps.items():
        acc = np.nan_to_num(cell["test_acc"], nan=0.0)
        summary[name] = {
            "cells": acc.size,
            "cells_reaching_threshold": int(np.isfinite(cell["steps_to_threshold"]).sum()),
            "cells_above_90pct_test_acc": int((acc >= 0.9).sum()),
            "cells_diverged": int(np.isnan(cell["final_train_loss"]).sum()),
            "median_test_acc": float(np.median(acc)),
            "best_test_acc": float(acc.max()),
        }
    results = {
        "demo": "lr_init",
        "learning_rates": lrs,
        "init_scales": scales,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "loss_threshold": LOSS_THRESHOLD,
        "seed": seed,
        "summary": summary,
        # rows = init scales, columns = learning rates; null = diverged / never reached
        "maps": {name: {k: v.tolist() for k, v in cell.items()} for name, cell in maps.items()},
    }
    save_figure(plot(maps, lrs, scales, steps), out / "lr_init.png")
    write_results(out, results)
    print_summary(results)
    return results


def plot(maps: dict, lrs: list[float], scales: list[float], steps: int) -> Any:
    import matplotlib.pyplot as plt

    panels = [
        ("final_train_loss", "final training loss", "magma_r", (0.0, 2.5)),
        ("test_acc", "test accuracy", "viridis", (0.0, 1.0)),
        ("steps_to_threshold", f"steps until loss < {LOSS_THRESHOLD}", "cividis", (0, steps)),
    ]
    fig, axes = plt.subplots(3, 2, figsize=(7.5, 10))
    axes = axes.T  # panel [r, c] drawn at row c, column r: two columns fit the page
    for row, name in enumerate(("without BN", "with BN")):
        for col, (key, title, cmap, (vmin, vmax)) in enumerate(panels):
            ax = axes[row, col]
            values = maps[name][key]
            colormap = plt.get_cmap(cmap).with_extremes(bad="lightgray")
            image = ax.imshow(
                np.ma.masked_invalid(values),
                cmap=colormap,
                vmin=vmin,
                vmax=vmax,
                origin="lower",
                aspect="auto",
            )
            for (i, j), v in np.ndenumerate(values):
                if np.isfinite(v):
                    # short labels fit 7 cells across half the page column: .95, 1.78, 246
                    text = f"{v:.0f}" if key == "steps_to_threshold" else f"{v:.2f}"
                    text = text.removeprefix("0")
                    red, green, blue, _ = colormap((v - vmin) / (vmax - vmin))
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                else:
                    text = "–" if key == "steps_to_threshold" else "×"  # never / diverged
                    dark = False
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
            ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs], rotation=45)
            ax.set_yticks(range(len(scales)), [f"{s:g}" for s in scales])
            ax.set(
                title=f"{name}: {title}",
                xlabel="SGD learning rate",
                ylabel="init scale s",
            )
            fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(
        f"ReLU MLP 64-64-64 on 8×8 digits, {steps} SGD steps of batch {BATCH_SIZE}; "
        "W ~ N(0, s²/fan_in)\n× (gray): diverged, –: loss never below the threshold",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def print_summary(results: dict[str, Any]) -> None:
    """The table the command prints (run prints it after writing the files)."""
    rows = [{"model": name, **s} for name, s in results["summary"].items()]
    print_table(
        rows,
        [
            "model",
            "cells",
            "cells_reaching_threshold",
            "cells_above_90pct_test_acc",
            "cells_diverged",
            "median_test_acc",
            "best_test_acc",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return main_of("lr_init", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
