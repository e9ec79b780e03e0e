"""BN vs GroupNorm vs LayerNorm vs InstanceNorm on a small CNN, across batch sizes.

The GroupNorm paper (Wu & He 2018, Fig. 1) trains ResNet-50 on ImageNet at batch sizes
32 … 2 per GPU: BN's error grows sharply as the batch shrinks (its statistics come from
the batch), GN's stays flat (its statistics come from one example). Here the same
comparison at toy scale: the CNN of the ``cnn`` demo (conv-norm-ReLU ×2, pool, linear) on
the 8×8 digits, with each of the four normalizations of the paper's Fig. 2 —

* BN: per channel over (N, H, W);  LN: per example over (C, H, W) (GroupNorm with 1 group);
* IN: per example and channel over (H, W);  GN: per example over groups of C/G channels.

Every run sees the same number of examples (the same epochs at every batch size), with SGD
and the learning rate scaled linearly with the batch size (lr = 0.1·B/32, as the paper);
test accuracy in eval mode (BN with its running statistics), mean over seeds.

Run: ``tinybn demo norms [--quick|--full] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import functional as F
from tinybn import optim
from tinybn.demos._common import (
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    scale_name,
    write_results,
)
from tinybn.demos._mlp import endless_batches, evaluate
from tinybn.demos.cnn import build_cnn, images

NORMS = ("BN", "GN", "LN", "IN")
BATCH_SIZES = (2, 4, 8, 16, 32, 64)
BASE_LR = 0.1  # at batch size 32; scaled linearly with the batch size
COLORS = {"BN": "C0", "GN": "C2", "LN": "C1", "IN": "C4"}


def train_at_batch_size(
    norm: str, batch_size: int, data: tuple, epochs: int, seed: int
) -> dict[str, float]:
    """Train for ``epochs`` passes over the training set; test accuracy in eval mode."""
    (X_train, y_train), test = data
    model = build_cnn(norm, X_train.shape[-1], np.random.default_rng(seed))
    optimizer = optim.SGD(model.parameters(), lr=BASE_LR * batch_size / 32, momentum=0.9)
    batches = endless_batches(X_train, y_train, batch_size, seed)
    steps = epochs * (len(X_train) // batch_size)
    model.train()
    for _ in range(steps):
        xb, yb = next(batches)
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_loss, test_acc = evaluate(model, *test)
    return {"test_acc": test_acc, "test_loss": test_loss, "steps": steps}


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    epochs = pick(args, 1, 3, 10)
    seeds = pick(args, 1, 3, 5)
    batch_sizes = pick(args, (2, 32), BATCH_SIZES, BATCH_SIZES)
    n_train = pick(args, 256, None, None)
    runs: dict[str, dict[str, list[float]]] = {n: {str(b): [] for b in batch_sizes} for n in NORMS}
    jobs = [(s, n, b) for s in range(seeds) for n in NORMS for b in batch_sizes]
    data_by_seed = {s: images(args.seed + s, n_train=n_train) for s in range(seeds)}
    for s, norm, b in progress(jobs, desc="norm × batch size × seed"):
        result = train_at_batch_size(norm, b, data_by_seed[s], epochs, args.seed + s)
        runs[norm][str(b)].append(result["test_acc"])
    error = {
        norm: {b: 100 * (1 - float(np.mean(accs))) for b, accs in per_b.items()}
        for norm, per_b in runs.items()
    }
    spread = {
        norm: {b: 100 * float(np.std(accs)) for b, accs in per_b.items()}
        for norm, per_b in runs.items()
    }
    small, large = str(min(batch_sizes)), str(max(b for b in batch_sizes if b <= 32))
    verdict = {
        # how much worse each norm is at the smallest batch than at batch 32 (points of error)
        norm: error[norm][small] - error[norm][large]
        for norm in NORMS
    }
    return {
        "epochs": epochs,
        "seeds": seeds,
        "batch_sizes": list(batch_sizes),
        "test_accuracy_per_seed": runs,
        "test_error_pct": error,
        "test_error_std_pct": spread,
        f"error_increase_from_batch_{large}_to_{small}_pct": verdict,
    }


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = result["batch_sizes"]
    for norm in NORMS:
        errors = [result["test_error_pct"][norm][str(b)] for b in sizes]
        spread = [result["test_error_std_pct"][norm][str(b)] for b in sizes]
        ax.errorbar(
            sizes, errors, yerr=spread, marker="o", capsize=3, label=norm, color=COLORS[norm]
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.invert_xaxis()  # as the paper: the batch shrinks to the right
    ax.set(
        xlabel="batch size (examples per batch)",
        ylabel="test error (%)",
        title=f"CNN on the 8×8 digits, {result['epochs']} epochs, mean of {result['seeds']} seeds",
    )
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    result = experiment(args)
    rows = [
        {"batch size": b, **{norm: result["test_error_pct"][norm][str(b)] for norm in NORMS}}
        for b in result["batch_sizes"]
    ]
    print("test error (%), mean over seeds")
    print_table(rows, list(rows[0]))
    figure = plot(result, out / "norms_batch_size.png")
    results = {
        "demo": "norms",
        "scale": scale_name(args),
        "seed": args.seed,
        "base_lr": BASE_LR,
        **result,
        "figures": [str(figure)],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return main_of("norms", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
