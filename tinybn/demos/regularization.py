"""Does batch norm regularize? The train/test gap on a small training set.

The lecture notes list "regularizer" among BN's advantages (next to dropout): each
example is normalized with the statistics of a random mini-batch, which adds noise.
A ReLU network much bigger than its training set (200 of the 8×8 digits) is trained
with no regularizer, with BN, with Dropout(0.5), and with both; the figure shows the
train and test accuracy over training and the final gap, averaged over seeds.

    tinybn demo regularization [--quick | --full] [--out DIR] [--seed N]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinybn import optim
from tinybn.demos._common import (
    column_panels,
    main_of,
    pick,
    print_table,
    run_settings,
    save_figure,
    write_results,
)
from tinybn.demos._mlp import build_mlp, digits_split, train_classifier

N_TRAIN = 200  # training examples: few enough for a 256-256 network to memorize
HIDDEN = [256, 256]
BATCH_SIZE = 32
LEARNING_RATE = 0.01
MOMENTUM = 0.9
DROPOUT = 0.5
VARIANTS = {  # name: (BN placement, dropout probability)
    "none": (None, 0.0),
    "BN": ("before", 0.0),
    "Dropout": (None, DROPOUT),
    "BN + Dropout": ("before", DROPOUT),
}
COLOURS = {
    "none": "tab:gray",
    "BN": "tab:blue",
    "Dropout": "tab:green",
    "BN + Dropout": "tab:purple",
}


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Train the four variants on a small training set for several seeds."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"regularization ({scale} scale)")
    n_train = N_TRAIN
    steps = pick(args, 100, 600, 3000)
    eval_every = pick(args, 25, 30, 100)
    seeds = [seed + k for k in range(pick(args, 1, 3, 5))]

    histories: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for s in seeds:
        train, test = digits_split(s, n_train=n_train)
        n_in, n_classes = train[0].shape[1], 10
        for name, (placement, dropout) in VARIANTS.items():
            model = build_mlp(
                [n_in, *HIDDEN, n_classes],
                "relu",
                placement,
                dropout=dropout,
                rng=np.random.default_rng(s),
            )
            optimizer = optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
            histories[name].append(
                train_classifier(
                    model,
                    optimizer,
                    train,
                    test,
                    steps,
                    BATCH_SIZE,
                    s,
                    eval_every,
                    desc=f"seed {s}, {name}",
                )
            )

    table = []
    curves = {}
    for name, runs in histories.items():
        # a diverged run stops early; its missing evaluations are NaN (left out of means)
        n_evals = max(len(h["step"]) for h in runs)
        steps_axis = next(h["step"] for h in runs if len(h["step"]) == n_evals)

        def stacked(key: str, runs: list = runs, n_evals: int = n_evals) -> np.ndarray:
            return np.array([h[key] + [np.nan] * (n_evals - len(h[key])) for h in runs])

        train_acc, test_acc, test_loss = (
            stacked(k) for k in ("train_acc", "test_acc", "test_loss")
        )
        curves[name] = {
            "step": steps_axis,
            "train_acc": np.nanmean(train_acc, axis=0).tolist(),
            "test_acc": np.nanmean(test_acc, axis=0).tolist(),
            "test_loss": np.nanmean(test_loss, axis=0).tolist(),
        }
        finished = ~np.isnan(test_acc[:, -1])
        gap = train_acc[finished, -1] - test_acc[finished, -1]
        table.append(
            {
                "variant": name,
                "train_acc": float(train_acc[finished, -1].mean()),
                "test_acc": float(test_acc[finished, -1].mean()),
                "test_acc_std": float(test_acc[finished, -1].std()),
                "gap": float(gap.mean()),
                "best_test_acc": float(np.nanmax(test_acc, axis=1).mean()),
                "final_test_loss": float(test_loss[finished, -1].mean()),
                "diverged_runs": int((~finished).sum()),
            }
        )
    results = {
        "demo": "regularization",
        "n_train": n_train,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "momentum": MOMENTUM,
        "seeds": seeds,
        "table": table,
        "curves": curves,
    }
    save_figure(plot(curves, table, n_train, len(seeds)), out / "regularization.png")
    write_results(out, results)
    print_summary(results)
    return results


def plot(curves: dict, table: list[dict], n_train: int, n_seeds: int) -> Any:

    fig, axes = column_panels(3, panel_height=3.2)
    for name, curve in curves.items():
        axes[0].plot(curve["step"], curve["train_acc"], "--", color=COLOURS[name], lw=1.5)
        axes[0].plot(curve["step"], curve["test_acc"], "-", color=COLOURS[name], lw=2, label=name)
        axes[1].plot(curve["step"], curve["test_loss"], color=COLOURS[name], lw=2, label=name)
    axes[0].set(
        title="accuracy (dashed: train, solid: test)",
        xlabel="training step",
        ylabel="accuracy",
        ylim=(0.5, 1.01),
    )
    axes[1].set(title="test loss", xlabel="training step", ylabel="cross-entropy", yscale="log")
    names = [row["variant"] for row in table]
    x = np.arange(len(names))
    width = 0.27
    for offset, key, label, alpha in (
        (-width, "train_acc", "train", 0.45),
        (0, "test_acc", "test", 0.9),
        (width, "gap", "gap (train − test)", 0.25),
    ):
        bars = axes[2].bar(
            x + offset,
            [row[key] for row in table],
            width,
            label=label,
            color=[COLOURS[n] for n in names],
            alpha=alpha,
            edgecolor="black",
        )
        axes[2].bar_label(bars, fmt="%.3f", fontsize=9)
    axes[2].set_xticks(x, names)
    axes[2].set(title="at the end of training", ylabel="accuracy", ylim=(0, 1.25))
    axes[2].legend(fontsize=9, loc="upper center", ncol=3)
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"Regularization: ReLU MLP 256-256 on {n_train} training digits "
        f"(mean of {n_seeds} seed(s))",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def print_summary(results: dict[str, Any]) -> None:
    """The table the command prints (run prints it after writing the files)."""
    print_table(
        results["table"],
        [
            "variant",
            "train_acc",
            "test_acc",
            "test_acc_std",
            "gap",
            "best_test_acc",
            "final_test_loss",
            "diverged_runs",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return main_of("regularization", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
