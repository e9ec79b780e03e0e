"""The lecture notes' Keras model on the placement data, with and without batch norm.

The Keras snippet of the lecture notes ("What is Batch Norm?"): Dense(3, relu) →
BatchNormalization → Dense(2, relu) → BatchNormalization → Dense(1, sigmoid), compiled with
Adam and binary cross-entropy, on students' (cgpa, iq) → placed. The same model without the
two BN layers is the baseline. The notes say unnormalized inputs make training slow and BN
helps; so each model is trained on the raw features (iq is ~100, cgpa ~7.5, as in the notes'
table) and on standardized ones. Figures: loss and accuracy curves; decision boundaries side
by side.

    tinybn demo placement [--quick | --full] [--out DIR] [--seed N]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinybn import data
from tinybn.demos._common import (
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    write_results,
)
from tinybn.keras import BatchNormalization, Dense, Sequential

BATCH_SIZE = 32  # the lecture notes' fit() call
VALIDATION_SPLIT = 0.2
MODELS = ("without BN", "with BN")
INPUTS = ("raw inputs", "standardized inputs")
COLOURS = {"without BN": "tab:gray", "with BN": "tab:blue"}


def seed_model(with_bn: bool, seed: int) -> Sequential:
    """The lecture notes' Keras model, layer for layer; ``with_bn=False`` drops both BN layers."""
    model = Sequential(seed=seed)
    model.add(Dense(3, activation="relu", input_dim=2))
    if with_bn:
        model.add(BatchNormalization())
    model.add(Dense(2, activation="relu"))
    if with_bn:
        model.add(BatchNormalization())
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def decision_grid(model: Sequential, transform: Any, resolution: int = 120) -> dict:
    """P(placed) on a (cgpa, iq) grid covering the data's range, in original units."""
    cgpa, iq = np.meshgrid(np.linspace(5, 10, resolution), np.linspace(60, 160, resolution))
    points = np.stack([cgpa.ravel(), iq.ravel()], axis=1)
    probability = model.predict(transform(points), batch_size=4096, verbose=0)
    return {"cgpa": cgpa, "iq": iq, "p": probability.reshape(cgpa.shape)}


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Train the four models (raw/standardized × without/with BN) for each seed; write the
    figures (first seed) and results (table: means over seeds).

    Returns the results dict (also written to ``out/results.json``). The tour calls this
    with ``scale="quick"``.
    """
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"placement ({scale} scale)")
    out.mkdir(parents=True, exist_ok=True)
    n = pick(args, 400, 1000, 4000)
    epochs = pick(args, 30, 50, 200)  # 50: the lecture notes' fit() call
    X, y = data.placement(n=n, seed=seed)
    # the last 20% are fit()'s validation split (as in Keras); standardize with the rest only
    n_fit = int(round(len(X) * (1 - VALIDATION_SPLIT)))
    _, stats = data.standardize(X[:n_fit])
    transforms = {
        "raw inputs": lambda points: points,
        "standardized inputs": lambda points: (points - stats.mean) / stats.std,
    }

    # figures show the first seed; the table averages the final numbers over all seeds
    seeds = [seed + k for k in range(pick(args, 1, 5, 10))]
    histories: dict[str, dict[str, dict]] = {inputs: {} for inputs in INPUTS}
    grids: dict[str, dict[str, dict]] = {inputs: {} for inputs in INPUTS}
    finals: dict[tuple[str, str], list[dict]] = {(i, m): [] for i in INPUTS for m in MODELS}
    runs = [(s, i, m) for s in seeds for i in INPUTS for m in MODELS]
    for s, inputs, name in progress(runs, desc="models"):
        model = seed_model(name == "with BN", s)
        history = model.fit(
            transforms[inputs](X),
            y,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            validation_split=VALIDATION_SPLIT,
            verbose=0,
        ).history
        finals[inputs, name].append(
            {
                "params": model.count_params(),
                "final_loss": history["loss"][-1],
                "final_val_loss": history["val_loss"][-1],
                "final_val_accuracy": history["val_accuracy"][-1],
                "best_val_accuracy": max(history["val_accuracy"]),
            }
        )
        if s == seeds[0]:
            histories[inputs][name] = history
            grids[inputs][name] = decision_grid(model, transforms[inputs])
    rows = []
    for (inputs, name), per_seed in finals.items():
        row = {"inputs": inputs, "model": name}
        for key in per_seed[0]:
            row[key] = float(np.mean([r[key] for r in per_seed]))
        row["params"] = int(row["params"])
        row["val_accuracy_per_seed"] = [r["final_val_accuracy"] for r in per_seed]
        rows.append(row)
    results = {
        "demo": "placement",
        "n": n,
        "epochs": epochs,
        "batch_size": BATCH_SIZE,
        "validation_split": VALIDATION_SPLIT,
        "seeds": seeds,
        "table": rows,
        "histories": histories,
    }
    save_figure(plot_curves(histories, epochs), out / "placement_curves.png")
    save_figure(plot_boundaries(grids, X, y), out / "placement_boundaries.png")
    write_results(out, results)
    print_summary(results)
    return results


def plot_curves(histories: dict, epochs: int) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6), sharex=True)
    for row, inputs in enumerate(INPUTS):
        for name in MODELS:
            h = histories[inputs][name]
            epoch = np.arange(1, len(h["loss"]) + 1)
            colour = COLOURS[name]
            axes[row, 0].plot(epoch, h["loss"], "--", color=colour, label=f"{name}, train")
            axes[row, 0].plot(epoch, h["val_loss"], color=colour, lw=2, label=f"{name}, validation")
            axes[row, 1].plot(epoch, h["accuracy"], "--", color=colour, label=f"{name}, train")
            axes[row, 1].plot(
                epoch, h["val_accuracy"], color=colour, lw=2, label=f"{name}, validation"
            )
        axes[row, 0].set(title=f"{inputs}: binary cross-entropy", ylabel="loss")
        axes[row, 1].set(title=f"{inputs}: accuracy", ylabel="accuracy", ylim=(0.3, 1.0))
        for ax in axes[row]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    fig.suptitle(
        "The lecture notes' Keras model (Dense 3 → [BN] → Dense 2 → [BN] → Dense 1), Adam, "
        f"batch {BATCH_SIZE}, {epochs} epochs",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def plot_boundaries(grids: dict, X: np.ndarray, y: np.ndarray) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(7.5, 7), sharex=True, sharey=True)
    for row, inputs in enumerate(INPUTS):
        for col, name in enumerate(MODELS):
            ax = axes[row, col]
            grid = grids[inputs][name]
            filled = ax.contourf(
                grid["cgpa"],
                grid["iq"],
                grid["p"],
                levels=np.linspace(0, 1, 11),
                cmap="RdBu",
                alpha=0.75,
            )
            ax.contour(
                grid["cgpa"], grid["iq"], grid["p"], levels=[0.5], colors="black", linewidths=2
            )
            for label, marker, colour in ((0, "x", "darkred"), (1, "o", "navy")):
                chosen = y == label
                ax.scatter(
                    X[chosen, 0],
                    X[chosen, 1],
                    s=10,
                    marker=marker,
                    c=colour,
                    alpha=0.6,
                    label="placed" if label else "not placed",
                )
            ax.set(title=f"{name}, {inputs}", xlabel="cgpa", ylabel="iq")
            ax.legend(loc="upper left", fontsize=9)
    fig.colorbar(filled, ax=axes, label="predicted P(placed)", fraction=0.03)
    fig.suptitle("Decision boundaries (black line: P = 0.5)", fontsize=13)
    return fig


def print_summary(results: dict) -> None:
    """The final numbers of each model, as a table."""
    print_table(
        results["table"],
        [
            "inputs",
            "model",
            "params",
            "final_loss",
            "final_val_loss",
            "final_val_accuracy",
            "best_val_accuracy",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    return main_of("placement", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
