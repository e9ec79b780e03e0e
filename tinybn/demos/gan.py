"""A small GAN on a ring of 8 Gaussians, with and without batch norm in the generator.

The lecture notes ("Batch Normalization (Explained)") claim: "GANs are often quite fragile
... batch normalization can help to stabilize the training". The target distribution is 8
Gaussians (std 0.1) evenly spaced on a circle of radius 2; the classic failure is mode
collapse — the generator covers only a few of the 8 modes, or hops between them.

    generator      z (8) → Linear 128 → [BN] → ReLU → Linear 128 → [BN] → ReLU → Linear 2
    discriminator  x (2) → Linear 128 → ReLU → Linear 128 → ReLU → Linear 1 (a logit)

Both are trained with Adam (lr 1e-3, betas (0.5, 0.999), as DCGAN) on the non-saturating
loss: D minimizes BCE(D(x), 1) + BCE(D(G(z)), 0); G minimizes BCE(D(G(z)), 1). Samples
are drawn in training mode (normalized with the batch's statistics, as during training).

Mode coverage: a sample is "good" if it lies within 3σ = 0.3 of its nearest mode; a mode
is covered if at least 2 % of the samples are good samples of that mode.

Run: ``tinybn demo gan [--quick|--full] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinybn as tb
from tinybn import Tensor, nn, optim
from tinybn import functional as F
from tinybn.demos._common import (
    column_panels,
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    scale_name,
    smooth,
    write_results,
)

MODES = 8
RADIUS = 2.0
MODE_STD = 0.1
NOISE_DIM = 8
HIDDEN = 128
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
BETAS = (0.5, 0.999)
GOOD_DISTANCE = 3 * MODE_STD
COVERED_FRACTION = 0.02
VARIANTS = ("no BN", "BN in G")
COLORS = {"no BN": "C3", "BN in G": "C0"}


def mode_centers() -> np.ndarray:
    """(8, 2) points evenly spaced on the circle of radius 2."""
    angles = 2 * np.pi * np.arange(MODES) / MODES
    return RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_ring(n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 2) of the mixture: a random mode plus N(0, 0.1²) noise."""
    centers = mode_centers()[rng.integers(0, MODES, n)]
    return (centers + MODE_STD * rng.standard_normal((n, 2))).astype(np.float32)


def mode_coverage(samples: np.ndarray) -> dict[str, Any]:
    """How many of the 8 modes the samples (n, 2) cover, and what fraction are good."""
    distances = np.linalg.norm(samples[:, None, :] - mode_centers()[None], axis=2)
    nearest, closest = distances.argmin(axis=1), distances.min(axis=1)
    good = closest < GOOD_DISTANCE
    per_mode = np.bincount(nearest[good], minlength=MODES) / len(samples)
    return {
        "modes_covered": int(np.sum(per_mode >= COVERED_FRACTION)),
        "good_fraction": float(good.mean()),
        "per_mode_fraction": per_mode,
    }


def build_generator(batch_norm: bool, rng: np.random.Generator) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in in (NOISE_DIM, HIDDEN):
        layers.append(nn.Linear(fan_in, HIDDEN, rng=rng))
        if batch_norm:
            layers.append(nn.BatchNorm1d(HIDDEN))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(HIDDEN, 2, rng=rng))
    return nn.Sequential(*layers)


def build_discriminator(rng: np.random.Generator) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, HIDDEN, rng=rng),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN, rng=rng),
        nn.ReLU(),
        nn.Linear(HIDDEN, 1, rng=rng),
    )


def generate(generator: nn.Sequential, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples (n, 2), generator in training mode (batch statistics), no graph."""
    z = rng.standard_normal((n, NOISE_DIM)).astype(np.float32)
    with tb.no_grad():
        return generator(Tensor(z)).data.copy()


def train_gan(
    batch_norm: bool, seed: int, steps: int, snapshot_steps: list[int], label: str
) -> dict[str, Any]:
    """Alternate one D step and one G step; keep samples at ``snapshot_steps``."""
    rng = np.random.default_rng(seed)
    generator = build_generator(batch_norm, np.random.default_rng(seed))
    discriminator = build_discriminator(np.random.default_rng(seed + 1000))
    opt_g = optim.Adam(generator.parameters(), lr=LEARNING_RATE, betas=BETAS)
    opt_d = optim.Adam(discriminator.parameters(), lr=LEARNING_RATE, betas=BETAS)
    ones, zeros = np.ones((BATCH_SIZE, 1), np.float32), np.zeros((BATCH_SIZE, 1), np.float32)
    sample_rng = np.random.default_rng(seed + 2000)  # the same z for every snapshot
    z_fixed_seed = int(sample_rng.integers(2**31))
    history: dict[str, Any] = {"d_loss": [], "g_loss": [], "snapshots": {}, "coverage": []}

    def snapshot(step: int) -> None:
        samples = generate(generator, 1000, np.random.default_rng(z_fixed_seed))
        history["snapshots"][step] = samples
        history["coverage"].append({"step": step, **mode_coverage(samples)})

    generator.train()
    discriminator.train()
    if 0 in snapshot_steps:
        snapshot(0)
    for step in progress(range(1, steps + 1), desc=label):
        real = Tensor(sample_ring(BATCH_SIZE, rng))
        z = Tensor(rng.standard_normal((BATCH_SIZE, NOISE_DIM)).astype(np.float32))
        # discriminator step: real → 1, fake → 0 (the fake batch is cut from G's graph)
        fake = generator(z)
        d_loss = F.binary_cross_entropy_with_logits(
            discriminator(real), ones
        ) + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # generator step: make D call the fakes real (non-saturating loss)
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
        if step in snapshot_steps:
            snapshot(step)
    history["final"] = history["coverage"][-1]
    return history


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    steps = pick(args, 150, 2000, 8000)
    seeds = [args.seed + k for k in range(pick(args, 1, 3, 5))]
    snapshot_steps = sorted({0, steps // 10, steps // 4, steps // 2, steps})
    runs: dict[str, list] = {}
    for variant in VARIANTS:
        runs[variant] = [
            train_gan(variant == "BN in G", s, steps, snapshot_steps, f"{variant}, seed {s}")
            for s in seeds
        ]
    return {"runs": runs, "steps": steps, "seeds": seeds, "snapshot_steps": snapshot_steps}


# -- figures ---------------------------------------------------------------------------------


def plot_samples(result: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    steps = result["snapshot_steps"]
    fig, axes = plt.subplots(2, len(steps), figsize=(7.5, 4.2), squeeze=False)
    target = sample_ring(1000, np.random.default_rng(0))
    for row, variant in enumerate(VARIANTS):
        history = result["runs"][variant][0]
        for col, step in enumerate(steps):
            ax = axes[row, col]
            ax.scatter(target[:, 0], target[:, 1], s=2, c="lightgray")
            samples = history["snapshots"][step]
            ax.scatter(samples[:, 0], samples[:, 1], s=2, c=COLORS[variant], alpha=0.5)
            covered = next(c for c in history["coverage"] if c["step"] == step)
            ax.set_title(
                f"{variant}, step {step}\n{covered['modes_covered']}/8 modes, "
                f"{covered['good_fraction']:.0%} good",
                fontsize=9,
            )
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"generator samples (colour) over the target ring (gray), seed {result['seeds'][0]}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def plot_losses(result: dict[str, Any], path: Any) -> Any:

    fig, axes = column_panels(3, panel_height=3.0)
    for variant in VARIANTS:
        for k, history in enumerate(result["runs"][variant]):
            label = variant if k == 0 else None
            axes[0].plot(
                smooth(history["d_loss"], window=50), color=COLORS[variant], alpha=0.6, label=label
            )
            axes[1].plot(
                smooth(history["g_loss"], window=50), color=COLORS[variant], alpha=0.6, label=label
            )
            coverage = history["coverage"]
            axes[2].plot(
                [c["step"] for c in coverage],
                [c["modes_covered"] for c in coverage],
                "o-",
                color=COLORS[variant],
                alpha=0.6,
                label=label,
            )
    axes[0].set_title("D loss (smoothed); equilibrium log 4 ≈ 1.39")
    axes[0].axhline(np.log(4), color="gray", ls="--", lw=0.8)
    axes[1].set_title("G loss (smoothed); equilibrium log 2 ≈ 0.69")
    axes[1].axhline(np.log(2), color="gray", ls="--", lw=0.8)
    axes[2].set_title("modes covered (of 8), every seed")
    axes[2].set_ylim(0, 8.5)
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=9)
    return save_figure(fig, path)


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"gan ({scale_name(args)} scale)")
    result = experiment(args)

    rows, summary = [], {}
    for variant in VARIANTS:
        finals = [h["final"] for h in result["runs"][variant]]
        covered = [f["modes_covered"] for f in finals]
        good = [f["good_fraction"] for f in finals]
        summary[variant] = {
            "modes_covered_per_seed": covered,
            "good_fraction_per_seed": good,
            "mean_modes_covered": float(np.mean(covered)),
            # how fast: modes covered at every snapshot, averaged over seeds
            "mean_modes_covered_at_step": {
                str(step): float(
                    np.mean(
                        [
                            next(c["modes_covered"] for c in h["coverage"] if c["step"] == step)
                            for h in result["runs"][variant]
                        ]
                    )
                )
                for step in result["snapshot_steps"]
            },
            "mean_good_fraction": float(np.mean(good)),
            "final_d_loss": float(
                np.mean([np.mean(h["d_loss"][-100:]) for h in result["runs"][variant]])
            ),
            "final_g_loss": float(
                np.mean([np.mean(h["g_loss"][-100:]) for h in result["runs"][variant]])
            ),
        }
        scalars = {k: v for k, v in summary[variant].items() if not isinstance(v, dict)}
        rows.append({"generator": variant, **scalars})
    print_table(rows, list(rows[0]))
    figures = [
        plot_samples(result, out / "gan_samples.png"),
        plot_losses(result, out / "gan_losses.png"),
    ]
    results = {
        "demo": "gan",
        "scale": scale_name(args),
        "seeds": result["seeds"],
        "steps": result["steps"],
        "summary": summary,
        "coverage_over_training": {
            variant: [
                [
                    {k: c[k] for k in ("step", "modes_covered", "good_fraction")}
                    for c in h["coverage"]
                ]
                for h in result["runs"][variant]
            ]
            for variant in VARIANTS
        },
        "figures": [str(f) for f in figures],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return main_of("gan", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
