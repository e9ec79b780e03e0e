"""Where does batch norm go: before the activation (normalize z) or after it (normalize a)?

The lecture notes: "in theory, it normalizes activation values; in practice, it works better if we
normalize z"; one lecture draws both orders and ticks the first (✓ z → z_N → g(z_N) → a, vs
z → g(z) → a → a_N). Ioffe & Szegedy put BN on z = Wu + b, before the nonlinearity. This
demo trains the same 3 × 100 network on the 8×8 digits with BN before the activation,
after it, and without BN, for sigmoid and for ReLU units: training-loss and test-accuracy
curves and a table.

    tinybn demo bn_position [--quick | --full] [--out DIR] [--seed N]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinybn import optim
from tinybn.demos._common import (
    main_of,
    pick,
    print_table,
    run_settings,
    save_figure,
    write_results,
)
from tinybn.demos._mlp import build_mlp, digits_split, steps_to_threshold, train_classifier

HIDDEN = [100, 100, 100]
BATCH_SIZE = 32
LEARNING_RATE = 0.1  # plain SGD, the same for every network
LOSS_THRESHOLD = 0.3
PLACEMENTS = {"none": None, "BN before act (z)": "before", "BN after act (a)": "after"}
COLOURS = {"none": "tab:gray", "BN before act (z)": "tab:blue", "BN after act (a)": "tab:orange"}


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Train the six networks; write the curves figure and results.json."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"bn_position ({scale} scale)")
    steps = pick(args, 80, 1200, 6000)
    eval_every = pick(args, 20, 50, 200)
    train, test = digits_split(seed)
    n_in, n_classes = train[0].shape[1], int(train[1].max()) + 1

    runs: dict[str, dict[str, Any]] = {}
    rows = []
    for activation in ("sigmoid", "relu"):
        runs[activation] = {}
        for name, placement in PLACEMENTS.items():
            model = build_mlp(
                [n_in, *HIDDEN, n_classes], activation, placement, rng=np.random.default_rng(seed)
            )
            optimizer = optim.SGD(model.parameters(), lr=LEARNING_RATE)
            history = train_classifier(
                model,
                optimizer,
                train,
                test,
                steps,
                BATCH_SIZE,
                seed,
                eval_every,
                desc=f"{activation}, {name}",
            )
            runs[activation][name] = history
            rows.append(
                {
                    "activation": activation,
                    "placement": name,
                    "final_train_loss": history["train_loss"][-1],
                    "final_test_acc": history["test_acc"][-1],
                    "steps_to_threshold": steps_to_threshold(history["batch_loss"], LOSS_THRESHOLD),
                }
            )
    results = {
        "demo": "bn_position",
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "loss_threshold": LOSS_THRESHOLD,
        "seed": seed,
        "table": rows,
        "runs": {
            act: {
                name: {k: v for k, v in h.items() if k != "batch_loss"}
                for name, h in by_name.items()
            }
            for act, by_name in runs.items()
        },
    }
    save_figure(plot(runs, steps), out / "bn_position.png")
    write_results(out, results)
    print_summary(results)
    return results


def plot(runs: dict, steps: int) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(7.5, 6), sharex=True)
    for row, (activation, by_name) in enumerate(runs.items()):
        for name, history in by_name.items():
            axes[row, 0].plot(
                history["step"], history["train_loss"], color=COLOURS[name], label=name, lw=2
            )
            axes[row, 1].plot(
                history["step"], history["test_acc"], color=COLOURS[name], label=name, lw=2
            )
        axes[row, 0].set(
            title=f"{activation} network: training loss", ylabel="cross-entropy", yscale="log"
        )
        axes[row, 1].set(
            title=f"{activation} network: test accuracy", ylabel="accuracy", ylim=(0, 1)
        )
        for ax in axes[row]:
            ax.grid(alpha=0.3)
            ax.legend()
    for ax in axes[1]:
        ax.set_xlabel("training step")
    fig.suptitle(
        f"BN position, 3×100 MLP on 8×8 digits, SGD lr {LEARNING_RATE}, "
        f"batch {BATCH_SIZE}, {steps} steps",
        fontsize=12,
    )
    fig.tight_layout()
    return fig


def print_summary(results: dict[str, Any]) -> None:
    """The table the command prints (run prints it after writing the files)."""
    # the step column named with its threshold; a run that never got there says so
    steps_column = f"steps_to_loss<{LOSS_THRESHOLD}"
    rows = [
        {
            **row,
            steps_column: "never"
            if row["steps_to_threshold"] is None
            else row["steps_to_threshold"],
        }
        for row in results["table"]
    ]
    print_table(
        rows, ["activation", "placement", "final_train_loss", "final_test_acc", steps_column]
    )
    print(
        f"{steps_column}: the first step at which the mean of the last 20 batch losses is "
        f"below {LOSS_THRESHOLD} (never: not within {results['steps']} steps)"
    )


def main(argv: list[str] | None = None) -> int:
    return main_of("bn_position", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
