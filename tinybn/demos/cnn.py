"""A small CNN with and without spatial batch normalization (BatchNorm2d).

The lecture notes say batch norm is recommended for CNNs, and the paper's results are CNNs.
Here: conv 3×3 → [BN] → ReLU → conv 3×3 → [BN] → ReLU → max-pool 2 → linear, on the 8×8
digits (or MNIST with ``--mnist-dir``), plain SGD, batch 32. BN's statistics are per channel
over N·H·W values. Three measurements, with and without BN:

1. test accuracy vs step at one learning rate, and the first step at ≥ 90 % test accuracy;
2. a learning-rate sweep: the highest rate that still trains (no divergence and ≥ 90 %
   test accuracy at the end of the sweep's steps);
3. the wall time per step, evaluations included (BN costs a little per step).

Run: ``tinybn demo cnn [--quick|--full] [--mnist-dir DIR] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import nn, optim
from tinybn.demos._common import (
    demo_parser,
    pick,
    print_table,
    run_settings,
    save_figure,
    scale_name,
    write_results,
)
from tinybn.demos._mlp import digits_split, train_classifier

BATCH_SIZE = 32
LEARNING_RATE = 0.1  # plain SGD; the sweep below shows where this sits
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
CHANNELS = (8, 16)
TARGET_ACC = 0.90


def build_cnn(
    norm: str | None,
    image_size: int,
    rng: np.random.Generator,
    channels: tuple[int, int] = CHANNELS,
    classes: int = 10,
) -> nn.Sequential:
    """conv 3×3 (padding 1) → norm → ReLU, twice, then max-pool 2, flatten, linear.

    ``norm``: None, "BN" (BatchNorm2d), "GN" (GroupNorm, 4 groups), "LN" (GroupNorm with
    one group: all of (C, H, W) per example, per-channel γ, β — the GroupNorm paper's LN),
    "IN" (InstanceNorm2d with γ, β). A conv followed by a norm has no bias (the norm's β
    takes its place; a bias before BN is cancelled by the mean subtraction).
    """
    layers: list[nn.Module] = []
    c_in = 1
    for c_out in channels:
        layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm is None, rng=rng))
        if norm is not None:
            layers.append(_norm_layer(norm, c_out))
        layers.append(nn.ReLU())
        c_in = c_out
    side = image_size // 2
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c_in * side * side, classes, rng=rng)]
    return nn.Sequential(*layers)


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "GN":
        return nn.GroupNorm(4, channels)
    if norm == "LN":
        return nn.GroupNorm(1, channels)
    if norm == "IN":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm {norm!r}: use None, 'BN', 'GN', 'LN' or 'IN'")


def images(seed: int, mnist_dir: Path | None = None, n_train: int | None = None) -> tuple:
    """((X_train, y_train), (X_test, y_test)) with X as (N, 1, H, W) float32, standardized."""
    if mnist_dir is None:
        (X_train, y_train), (X_test, y_test) = digits_split(seed, n_train=n_train)
        side = 8
    else:
        from tinybn.demos.ioffe_fig1 import load_mnist

        (X_train, y_train), (X_test, y_test) = load_mnist(Path(mnist_dir))
        if n_train is not None:
            X_train, y_train = X_train[:n_train], y_train[:n_train]
        mean, std = X_train.mean(), X_train.std()
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
        side = 28
    shape = (-1, 1, side, side)
    return (
        (X_train.reshape(shape).astype(np.float32), y_train),
        (X_test.reshape(shape).astype(np.float32), y_test),
    )


def first_step_at(history: dict, accuracy: float) -> int | None:
    """The first evaluated step with test accuracy >= ``accuracy`` (None: never)."""
    for step, acc in zip(history["step"], history["test_acc"]):
        if acc >= accuracy:
            return step
    return None


def train_one(
    norm: str | None, lr: float, data: tuple, steps: int, eval_every: int, seed: int
) -> dict:
    """One run: the history of train_classifier plus the wall time per step."""
    train, test = data
    model = build_cnn(norm, train[0].shape[-1], np.random.default_rng(seed))
    optimizer = optim.SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    history = train_classifier(
        model,
        optimizer,
        train,
        test,
        steps,
        BATCH_SIZE,
        seed,
        eval_every,
        desc=f"{'BN' if norm else 'no BN'} lr={lr:g}",
    )
    history["seconds"] = time.perf_counter() - start
    return history


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    steps = pick(args, 40, 600, 3000)
    eval_every = pick(args, 20, 25, 100)
    sweep_steps = pick(args, 20, 300, 1000)
    rates = pick(args, (0.1, 3.0), LEARNING_RATES, LEARNING_RATES + (30.0,))
    n_train = pick(args, 300, None, None)
    data = images(args.seed, args.mnist_dir, n_train)
    models = {"without BN": None, "with BN": "BN"}

    curves = {
        name: train_one(norm, LEARNING_RATE, data, steps, eval_every, args.seed)
        for name, norm in models.items()
    }
    sweep: dict[str, dict[str, Any]] = {name: {} for name in models}
    for name, norm in models.items():
        for lr in rates:
            history = train_one(norm, lr, data, sweep_steps, sweep_steps, args.seed)
            sweep[name][f"{lr:g}"] = {
                "diverged": history["diverged"],
                "final_test_acc": None if history["diverged"] else history["test_acc"][-1],
            }
    summary = {}
    for name in models:
        history = curves[name]
        trained = [
            float(lr)
            for lr, r in sweep[name].items()
            if not r["diverged"] and r["final_test_acc"] >= TARGET_ACC
        ]
        summary[name] = {
            "final_test_acc": history["test_acc"][-1],
            "final_train_loss": history["train_loss"][-1],
            "steps_to_90pct_test_acc": first_step_at(history, TARGET_ACC),
            "highest_lr_that_trains": max(trained) if trained else None,
            "ms_per_step_with_evals": 1000
            * history["seconds"]
            / max(1, len(history["batch_loss"])),
        }
    return {
        "dataset": "MNIST" if args.mnist_dir else "8×8 digits",
        "steps": steps,
        "sweep_steps": sweep_steps,
        "curves": {
            name: {k: v for k, v in h.items() if k not in ("batch_loss", "diverged")}
            for name, h in curves.items()
        },
        "sweep": sweep,
        "summary": summary,
    }


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"without BN": "C3", "with BN": "C0"}
    for name, history in result["curves"].items():
        left.plot(history["step"], history["test_acc"], label=name, color=colors[name])
    left.axhline(TARGET_ACC, color="gray", lw=0.8, ls=":")
    left.set(
        xlabel="SGD step",
        ylabel="test accuracy",
        title=f"CNN on the {result['dataset']}, lr {LEARNING_RATE}, batch {BATCH_SIZE}",
        ylim=(0, 1),
    )
    left.legend()
    for name, runs in result["sweep"].items():
        rates = [float(lr) for lr in runs]
        accs = [r["final_test_acc"] if not r["diverged"] else 0.0 for r in runs.values()]
        right.semilogx(rates, accs, "o-", label=name, color=colors[name])
        for lr, r in zip(rates, runs.values()):
            if r["diverged"]:
                right.annotate("diverged", (lr, 0.0), fontsize=7, ha="center", va="bottom")
    right.axhline(TARGET_ACC, color="gray", lw=0.8, ls=":")
    right.set(
        xlabel="learning rate",
        ylabel=f"test accuracy after {result['sweep_steps']} steps",
        title="learning-rate sweep",
        ylim=(0, 1),
    )
    right.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options, mnist_dir=None)
    out = args.out
    result = experiment(args)
    rows = [{"model": name, **s} for name, s in result["summary"].items()]
    print_table(rows, list(rows[0]))
    figure = plot(result, out / "cnn.png")
    results = {
        "demo": "cnn",
        "scale": "quick" if args.quick else "full" if args.full else "default",
        "seed": args.seed,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        **result,
        "figures": [str(figure)],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("cnn", __doc__.splitlines()[0])
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=None,
        help="folder with MNIST's IDX files (train-images-idx3-ubyte[.gz], ...)",
    )
    args = parser.parse_args(argv)
    run(args.out, scale=scale_name(args), seed=args.seed, mnist_dir=args.mnist_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
