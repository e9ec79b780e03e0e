"""Santurkar et al. (2018), "How does batch normalization help optimization?", small scale.

An MLP (64 → 100 → 100 → 100 → 10, ReLU) on the 8×8 digits, plain SGD, the same
initial weights, batches and learning rate for every variant.

(a) Noisy BN. After every BatchNorm1d we add i.i.d. noise ε_ij ~ N(m_j, s_j²) whose
    per-unit mean m_j ~ U(−1, 1) and scale s_j ~ U(0, 1) are redrawn at EVERY step: the
    layer inputs are now less stable than without BN. The paper's claim: noisy BN still
    trains about as well as BN, so BN's benefit is not "stable layer-input distributions".
(b) The loss landscape along the gradient g at step t, for step sizes η over a range:
    the range of L(w − ηg); gradient predictiveness max_η ‖∇L(w − ηg) − ∇L(w)‖; and the
    effective β-smoothness max_η ‖∇L(w − ηg) − ∇L(w)‖ / ‖ηg‖. Claim: smaller with BN.
(c) Internal covariate shift as the paper defines it: for layer i, G = ∇_{W_i}L at the
    current weights, G' = the same gradient after the layers BEFORE i took their SGD step
    on the same batch; ICS = ‖G − G'‖₂ and cos(G, G'). Claim: BN does not reduce it.
(d) The curvature itself: the top eigenvalue λ_max of the loss's Hessian (on a fixed probe
    batch) along training, with and without BN, over 3 seeds — the quantity behind (b)'s
    β-smoothness (a function is β-smooth where ‖∇²L‖ ≤ β). Found by power iteration on
    Hessian-vector products, each a double backward (``tinybn.autograd.hvp``).

Run: ``tinybn demo santurkar [--quick|--full] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import Tensor, nn, optim
from tinybn import functional as F
from tinybn.autograd import top_hessian_eigenvalue
from tinybn.demos._common import (
    demo_parser,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    scale_name,
    smooth,
    write_results,
)
from tinybn.demos._mlp import build_mlp, digits_split, endless_batches, evaluate, state_restored

HIDDEN = [100, 100, 100]
BATCH_SIZE = 64
LEARNING_RATE = 0.1  # the same for every variant; chosen before running, not tuned
NOISE_MEAN_RANGE = 1.0  # m_j ~ U(−1, 1)
NOISE_SCALE_RANGE = 1.0  # s_j ~ U(0, 1)
STEP_SIZE_MULTIPLIERS = np.geomspace(0.25, 4.0, 7)  # η / learning rate along the gradient
VARIANTS = ("no BN", "BN", "noisy BN")
HESSIAN_SEEDS = 3  # seeds of part (d): seed, seed + 1, seed + 2
HESSIAN_PROBE = 256  # training samples in the fixed batch whose Hessian is measured
HESSIAN_ITERATIONS = 30  # power-iteration steps (stops earlier at 0.1% change)
COLORS = {"no BN": "C3", "BN": "C0", "noisy BN": "C2"}


# -- forward pass with optional noise after each BN ------------------------------------------


class BatchNoise:
    """Noise after each BN layer whose distribution changes at every step (part a)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.mean: list[np.ndarray] = []
        self.scale: list[np.ndarray] = []

    def new_step(self, model: nn.Sequential) -> None:
        """Draw a fresh mean m_j ~ U(−1, 1) and scale s_j ~ U(0, 1) for every BN unit."""
        widths = [m.num_features for m in model if isinstance(m, nn.BatchNorm1d)]
        self.mean = [self.rng.uniform(-NOISE_MEAN_RANGE, NOISE_MEAN_RANGE, c) for c in widths]
        self.scale = [self.rng.uniform(0.0, NOISE_SCALE_RANGE, c) for c in widths]

    def __call__(self, k: int, h: Tensor) -> Tensor:
        noise = self.mean[k] + self.scale[k] * self.rng.standard_normal(h.shape)
        return h + Tensor(noise.astype(h.dtype))


def forward(
    model: nn.Sequential, x: Any, noise: BatchNoise | None = None, watch: int | None = None
) -> tuple[Tensor, np.ndarray | None]:
    """Run the layers one by one, adding ``noise`` after each BN.

    Returns the logits and, if ``watch`` is the index of an activation module, the input
    to that activation (N, units) — the distribution the paper's Figure 2 follows.
    """
    h, watched, k = Tensor(x), None, 0
    for i, layer in enumerate(model):
        if i == watch:
            watched = h.data.copy()
        h = layer(h)
        if noise is not None and isinstance(layer, nn.BatchNorm1d):
            h = noise(k, h)
            k += 1
    return h, watched


def loss_and_grads(
    model: nn.Sequential, params: list[Tensor], xb: np.ndarray, yb: np.ndarray
) -> tuple[float, list[np.ndarray]]:
    """Cross-entropy on one batch (training mode) and the gradient of every parameter."""
    for p in params:
        p.grad = None
    loss = F.cross_entropy(forward(model, xb)[0], yb)
    loss.backward()
    return loss.item(), [p.grad.copy() for p in params]


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([a.ravel() for a in arrays])


def _set(params: list[Tensor], values: list[np.ndarray]) -> None:
    for p, v in zip(params, values):
        p.data[...] = v


# -- the measurements of parts (b) and (c) ---------------------------------------------------


def landscape(
    model: nn.Sequential, params: list[Tensor], xb: np.ndarray, yb: np.ndarray, lr: float
) -> dict[str, float]:
    """Loss range, gradient predictiveness and β-smoothness along −∇L from the current w."""
    w = [p.data.copy() for p in params]
    loss0, grads = loss_and_grads(model, params, xb, yb)
    g = _flat(grads)
    losses, changes, smoothness = [loss0], [], []
    for multiplier in STEP_SIZE_MULTIPLIERS:
        eta = lr * multiplier
        _set(params, [wi - eta * gi for wi, gi in zip(w, grads)])
        loss, moved = loss_and_grads(model, params, xb, yb)
        change = float(np.linalg.norm(_flat(moved) - g))
        losses.append(loss)
        changes.append(change)
        smoothness.append(change / (eta * float(np.linalg.norm(g)) + 1e-12))
    _set(params, w)
    return {
        "loss_range": float(np.max(losses) - np.min(losses)),
        "grad_predictiveness": float(np.max(changes)),
        "beta_smoothness": float(np.max(smoothness)),
    }


def internal_covariate_shift(
    model: nn.Sequential, params: list[Tensor], xb: np.ndarray, yb: np.ndarray, lr: float
) -> list[dict[str, float]]:
    """Santurkar et al.'s ICS of each Linear after the first: ‖G − G'‖₂ and cos(G, G')."""
    index = {id(p): k for k, p in enumerate(params)}
    w = [p.data.copy() for p in params]
    _, grads = loss_and_grads(model, params, xb, yb)
    shifts, earlier = [], []  # earlier: indices of the parameters of all previous modules
    for module in model:
        if isinstance(module, nn.Linear) and earlier:
            k = index[id(module.weight)]
            updated = [
                wi - lr * gi if j in earlier else wi for j, (wi, gi) in enumerate(zip(w, grads))
            ]
            _set(params, updated)
            _, moved = loss_and_grads(model, params, xb, yb)
            _set(params, w)
            G, G_moved = grads[k].ravel(), moved[k].ravel()
            cosine = G @ G_moved / (np.linalg.norm(G) * np.linalg.norm(G_moved) + 1e-12)
            shifts.append({"l2": float(np.linalg.norm(G - G_moved)), "cosine": float(cosine)})
        earlier += [index[id(p)] for p in module.parameters()]
    return shifts


# -- training ----------------------------------------------------------------------------------


def train_variant(
    variant: str, data: tuple, args: argparse.Namespace, steps: int, measure_every: int
) -> dict[str, Any]:
    """Train one variant with SGD; record curves, the watched unit, and (b)/(c) measurements."""
    (X_train, y_train), (X_test, y_test) = data
    model = build_mlp(
        [X_train.shape[1], *HIDDEN, 10],
        activation="relu",
        bn=None if variant == "no BN" else "before",
        rng=np.random.default_rng(args.seed),  # the same initial weights for every variant
    )
    params = list(model.parameters())
    optimizer = optim.SGD(params, lr=args.lr)
    noise = BatchNoise(np.random.default_rng(args.seed + 1)) if variant == "noisy BN" else None
    # the input to the last hidden ReLU
    watch = max(i for i, m in enumerate(model) if isinstance(m, nn.ReLU))
    history: dict[str, Any] = {
        "batch_loss": [],
        "eval_step": [],
        "test_acc": [],
        "unit_mean": [],
        "unit_std": [],
        "percentiles": [],
        "measure_step": [],
        "landscape": [],
        "ics": [],
    }
    batches = endless_batches(X_train, y_train, BATCH_SIZE, args.seed)
    model.train()
    for step in progress(range(steps + 1), desc=variant):
        xb, yb = next(batches)
        xb, yb = xb.data, yb.data
        if step % measure_every == 0:
            history["eval_step"].append(step)
            history["test_acc"].append(evaluate(model, X_test, y_test)[1])
            if noise is None:  # (b) and (c) compare plain BN with no BN
                history["measure_step"].append(step)
                with state_restored(model):  # the probes must not move the running stats
                    history["landscape"].append(landscape(model, params, xb, yb, args.lr))
                    history["ics"].append(internal_covariate_shift(model, params, xb, yb, args.lr))
        if step == steps:
            break
        if noise is not None:
            noise.new_step(model)
        logits, watched = forward(model, xb, noise, watch)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["batch_loss"].append(loss.item())
        history["unit_mean"].append(watched.mean(axis=0))
        history["unit_std"].append(watched.std(axis=0))
        history["percentiles"].append(np.percentile(watched[:, 0], (15, 50, 85)))
    unit_mean, unit_std = np.array(history["unit_mean"]), np.array(history["unit_std"])
    # drift: how far each unit's batch mean and std move from one step to the next
    history["drift"] = float(
        np.mean(np.abs(np.diff(unit_mean, axis=0))) + np.mean(np.abs(np.diff(unit_std, axis=0)))
    )
    history["final_test_acc"] = history["test_acc"][-1]
    history["final_train_loss"] = float(np.mean(history["batch_loss"][-50:]))
    return history


# -- (d): the top Hessian eigenvalue along training ---------------------------------------------


def top_eigenvalue(model: nn.Sequential, xb: np.ndarray, yb: np.ndarray, seed: int) -> float:
    """λ_max of ∇²L at the current weights, L the training-mode loss on (xb, yb)."""
    with state_restored(model):  # the probe's forward pass must not move the running stats
        loss = F.cross_entropy(forward(model, xb)[0], yb)
        value, _ = top_hessian_eigenvalue(
            loss, list(model.parameters()), iterations=HESSIAN_ITERATIONS, seed=seed, tol=1e-3
        )
    return value


def hessian_along_training(
    data: tuple, args: argparse.Namespace, steps: int, measure_every: int
) -> dict[str, Any]:
    """Train no BN and BN with SGD from HESSIAN_SEEDS seeds; λ_max every ``measure_every``."""
    (X_train, y_train), _ = data
    probe_x, probe_y = X_train[:HESSIAN_PROBE], y_train[:HESSIAN_PROBE]
    curves: dict[str, list[list[float]]] = {"no BN": [], "BN": []}
    measure_steps = list(range(0, steps + 1, measure_every))
    for variant in curves:
        for seed in range(args.seed, args.seed + HESSIAN_SEEDS):
            model = build_mlp(
                [X_train.shape[1], *HIDDEN, 10],
                activation="relu",
                bn=None if variant == "no BN" else "before",
                rng=np.random.default_rng(seed),
            )
            optimizer = optim.SGD(list(model.parameters()), lr=args.lr)
            batches = endless_batches(X_train, y_train, BATCH_SIZE, seed)
            model.train()
            values = []
            for step in progress(range(steps + 1), desc=f"λ_max {variant}, seed {seed}"):
                if step % measure_every == 0:
                    values.append(top_eigenvalue(model, probe_x, probe_y, seed))
                if step == steps:
                    break
                xb, yb = next(batches)
                loss = F.cross_entropy(model(xb), yb.data)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            curves[variant].append(values)
    return {"measure_step": measure_steps, "curves": curves}


def hessian_summary(hessian: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per variant: the median λ_max over training, its mean and spread over the seeds."""
    summary = {}
    for variant, runs in hessian["curves"].items():
        medians = [float(np.median(values)) for values in runs]
        summary[variant] = {
            "median_lambda_max_mean": float(np.mean(medians)),
            "median_lambda_max_std": float(np.std(medians)),
            "per_seed": medians,
        }
    return summary


def plot_hessian(hessian: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    steps = hessian["measure_step"]
    for variant, runs in hessian["curves"].items():
        values = np.array(runs)
        mean, low, high = values.mean(axis=0), values.min(axis=0), values.max(axis=0)
        ax.plot(steps, mean, "o-", ms=3, color=COLORS[variant], label=f"{variant} (mean)")
        ax.fill_between(steps, low, high, color=COLORS[variant], alpha=0.25)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("top Hessian eigenvalue λ_max")
    ax.set_title(
        f"(d) curvature along training: λ_max of ∇²L on {HESSIAN_PROBE} samples\n"
        f"band: min–max over {HESSIAN_SEEDS} seeds"
    )
    ax.legend(fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def verdicts(summary_bn: dict[str, float], summary_none: dict[str, float], hessian: dict) -> dict:
    """Reproduced / not, for the finite-step β-smoothness of (b) and λ_max of (d)."""
    beta_ratio = summary_bn["beta_smoothness"] / summary_none["beta_smoothness"]
    hess = hessian_summary(hessian)
    per_seed = zip(hess["BN"]["per_seed"], hess["no BN"]["per_seed"])
    smaller_every_seed = all(bn < none for bn, none in per_seed)
    lambda_ratio = hess["BN"]["median_lambda_max_mean"] / hess["no BN"]["median_lambda_max_mean"]
    return {
        "beta_smoothness (b)": {
            "BN / no BN": beta_ratio,
            "verdict": "reproduced" if beta_ratio < 1 else "NOT reproduced",
        },
        "lambda_max (d)": {
            "BN / no BN": lambda_ratio,
            "verdict": (
                "reproduced"
                if smaller_every_seed
                else ("partly reproduced" if lambda_ratio < 1 else "NOT reproduced")
            ),
        },
    }


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    steps = pick(args, 60, 1500, 6000)
    measure_every = pick(args, 20, 50, 200)
    data = digits_split(args.seed)
    result: dict[str, Any] = {
        v: train_variant(v, data, args, steps, measure_every) for v in VARIANTS
    }
    result["lr"] = args.lr
    hessian_steps = pick(args, 40, 600, 2000)
    result["hessian"] = hessian_along_training(data, args, hessian_steps, pick(args, 20, 100, 250))
    return result


# -- figures -----------------------------------------------------------------------------------


def plot_noisy(result: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(7.5, 10))
    axes = axes.T  # panel [r, c] drawn at row c, column r: two columns fit the page
    for v in VARIANTS:
        h = result[v]
        axes[0, 0].plot(smooth(h["batch_loss"], window=25), color=COLORS[v], label=v)
        axes[0, 1].plot(h["eval_step"], h["test_acc"], "o-", ms=3, color=COLORS[v], label=v)
    axes[0, 0].set_title("training loss (batch, smoothed)")
    axes[0, 0].set_yscale("log")
    axes[0, 1].set_title("test accuracy (eval mode, no noise)")
    for ax in axes[0, :2]:
        ax.set_xlabel("step")
        ax.legend(fontsize=9)
    drifts = [result[v]["drift"] for v in VARIANTS]
    axes[0, 2].bar(VARIANTS, drifts, color=[COLORS[v] for v in VARIANTS])
    axes[0, 2].set_yscale("log")
    for i, d in enumerate(drifts):
        axes[0, 2].text(i, d, f"{d:.2g}", ha="center", va="bottom")
    axes[0, 2].set_title(
        "activation drift: mean |Δ batch mean| + |Δ batch std|\nper step, last hidden layer"
    )
    for ax, v in zip(axes[1], VARIANTS):
        p = np.array(result[v]["percentiles"])
        steps = np.arange(len(p))
        ax.fill_between(steps, p[:, 0], p[:, 2], color=COLORS[v], alpha=0.3, label="15–85th pct")
        ax.plot(steps, p[:, 1], color=COLORS[v], lw=0.8, label="median")
        ax.set_title(f"{v}: input to one ReLU of the last hidden layer")
        ax.set_xlabel("step")
        ax.legend(fontsize=9)
    fig.suptitle("(a) BN with noise whose mean and scale change at every step")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_landscape(result: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    keys = (
        ("loss_range", "(b) loss range max−min of L(w − ηg) over η"),
        ("grad_predictiveness", "(b) gradient predictiveness\nmax ‖∇L(w − ηg) − ∇L(w)‖"),
        ("beta_smoothness", "(b) effective β-smoothness\nmax ‖∇L(w − ηg) − ∇L(w)‖ / ‖ηg‖"),
    )
    fig, axes = plt.subplots(3, 2, figsize=(7.5, 10.5))
    axes = axes.T  # panel [r, c] drawn at row c, column r: two columns fit the page
    for ax, (key, title) in zip(axes[0], keys):
        for v in ("no BN", "BN"):
            h = result[v]
            values = [m[key] for m in h["landscape"]]
            ax.plot(h["measure_step"], values, "o-", ms=3, color=COLORS[v], label=v)
        ax.set_title(title, fontsize=10)
        ax.set_yscale("log")
    for ax, key, title in (
        (axes[1, 0], "l2", "(c) ICS: ‖G − G′‖₂ of a layer's weight gradient"),
        (axes[1, 1], "cosine", "(c) ICS: cos(G, G′) (1 = no shift)"),
    ):
        for v in ("no BN", "BN"):
            h = result[v]
            for layer in range(len(h["ics"][0])):
                values = [m[layer][key] for m in h["ics"]]
                ax.plot(
                    h["measure_step"],
                    values,
                    color=COLORS[v],
                    alpha=0.35 + 0.3 * layer,
                    label=f"{v}, Linear {layer + 2}",
                )
        ax.set_title(title, fontsize=10)
    axes[1, 0].set_yscale("log")
    summaries = {v: summarize(result[v]) for v in ("no BN", "BN")}
    names = ["loss_range", "grad_predictiveness", "beta_smoothness", "ics_l2"]
    ratios = [summaries["BN"][k] / summaries["no BN"][k] for k in names]
    log_ratios = np.log2(ratios)
    axes[1, 2].barh(names, log_ratios, color=["C0" if r < 0 else "C3" for r in log_ratios])
    for i, (r, lr_) in enumerate(zip(ratios, log_ratios)):
        axes[1, 2].text(lr_, i, f" ×{r:.2f} ", va="center", ha="left" if lr_ >= 0 else "right")
    axes[1, 2].axvline(0.0, color="k", lw=0.8)
    limit = max(1.0, 1.6 * float(np.max(np.abs(log_ratios))))
    axes[1, 2].set_xlim(-limit, limit)
    axes[1, 2].set_xlabel("log₂(BN / no BN), medians over training; < 0: smaller with BN")
    axes[1, 2].set_title("which is smaller with BN?", fontsize=10)
    for ax in axes.flat[:5]:
        ax.set_xlabel("step")
        ax.legend(fontsize=9)
    fig.suptitle(
        f"loss landscape along −∇L (step sizes η = {STEP_SIZE_MULTIPLIERS[0]:g}…"
        f"{STEP_SIZE_MULTIPLIERS[-1]:g} × lr) and internal covariate shift, lr = {result['lr']}"
    )
    fig.tight_layout()
    return save_figure(fig, path)


def summarize(h: dict[str, Any]) -> dict[str, Any]:
    """Medians over the measurement steps (a mean would be dominated by step 0 alone)."""
    ics = h["ics"]
    return {
        **{k: float(np.median([m[k] for m in h["landscape"]])) for k in h["landscape"][0]},
        "ics_l2": float(np.median([layer["l2"] for m in ics for layer in m])),
        "ics_cosine": float(np.median([layer["cosine"] for m in ics for layer in m])),
    }


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options, lr=LEARNING_RATE)
    out = args.out
    print(f"santurkar ({scale_name(args)} scale)")
    result = experiment(args)

    rows = []
    for v in VARIANTS:
        h = result[v]
        row = {
            "variant": v,
            "final test acc": h["final_test_acc"],
            "final train loss": h["final_train_loss"],
            "activation drift": h["drift"],
        }
        if h["landscape"]:
            row.update(summarize(h))
        rows.append(row)
    print_table(rows, list(rows[1]))
    hessian = hessian_summary(result["hessian"])
    print("\n(d) top Hessian eigenvalue λ_max, median over training; mean ± std over seeds:")
    for variant, found in hessian.items():
        seeds = ", ".join(f"{v:.3g}" for v in found["per_seed"])
        print(
            f"  {variant:6s} {found['median_lambda_max_mean']:.4g} ± "
            f"{found['median_lambda_max_std']:.2g}   (per seed: {seeds})"
        )
    found_verdicts = verdicts(
        summarize(result["BN"]), summarize(result["no BN"]), result["hessian"]
    )
    print("\nSmoother with BN (the paper's claim), BN / no BN:")
    for name, verdict in found_verdicts.items():
        print(f"  {name:22s} ×{verdict['BN / no BN']:.3g}   {verdict['verdict']}")
    figures = [
        plot_noisy(result, out / "santurkar_noisy_bn.png"),
        plot_landscape(result, out / "santurkar_landscape.png"),
        plot_hessian(result["hessian"], out / "santurkar_hessian.png"),
    ]
    results = {
        "demo": "santurkar",
        "scale": scale_name(args),
        "seed": args.seed,
        "learning_rate": args.lr,
        "batch_size": BATCH_SIZE,
        "step_size_multipliers": STEP_SIZE_MULTIPLIERS,
        "summary": {row["variant"]: row for row in rows},
        "hessian": {**result["hessian"], "summary": hessian},
        "verdicts": found_verdicts,
        "curves": {
            v: {
                k: result[v][k]
                for k in ("eval_step", "test_acc", "measure_step", "landscape", "ics")
            }
            for v in VARIANTS
        },
        "figures": [str(f) for f in figures],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("santurkar", __doc__.splitlines()[0])
    parser.add_argument(
        "--lr", type=float, default=LEARNING_RATE, help=f"SGD learning rate ({LEARNING_RATE})"
    )
    args = parser.parse_args(argv)
    run(args.out, scale=scale_name(args), seed=args.seed, lr=args.lr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
