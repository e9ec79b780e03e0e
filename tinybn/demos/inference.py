"""Batch norm at inference: running statistics, eval(), and folding BN into Linear.

The lecture notes: at test time there is no mini-batch, so BN uses statistics gathered in
training — an exponential moving average (PyTorch: momentum 0.1 on the NEW value; Keras:
momentum 0.99 on the OLD value), or the paper's population estimate E[x] = E_B[μ_B],
Var[x] = m/(m−1)·E_B[σ²_B] (``BatchNorm1d(momentum=None)``). This demo trains a small BN
network on the 8×8 digits and shows
  1. each estimator's error against the true statistics of the whole training set over
     training, and the paper's estimate recomputed with the final weights;
  2. training-mode vs eval-mode outputs;
  3. what goes wrong when ``eval()`` is forgotten: one example's prediction changes with
     the batch it sits in;
  4. ``nn.fold_batchnorm``: each Linear → BatchNorm1d pair becomes one Linear
     (W' = γ/√(Var+ε)·W, b' = γ/√(Var+ε)·(b − E[x]) + β) with equal outputs.

    tinybn demo inference [--quick | --full] [--out DIR] [--seed N]
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

import tinybn as tb
from tinybn import Tensor, keras, nn, optim
from tinybn import functional as F
from tinybn.demos._common import (
    main_of,
    pick,
    print_table,
    progress,
    run_settings,
    save_figure,
    write_results,
)
from tinybn.demos._mlp import digits_split, endless_batches

HIDDEN = 32
BATCH_SIZE = 32
LEARNING_RATE = 0.05
MOMENTUM = 0.9
WATCHED_FEATURE = 0
ESTIMATORS = {  # label: colour
    "PyTorch EMA (momentum 0.1)": "tab:blue",
    "Keras EMA (momentum 0.99)": "tab:orange",
    "cumulative average over training (momentum=None)": "tab:green",
}


def build_model(rng: np.random.Generator) -> nn.Sequential:
    """64 → Linear → BatchNorm1d(32) → ReLU → Linear → 10 logits."""
    return nn.Sequential(
        nn.Linear(64, HIDDEN, rng=rng),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, 10, rng=rng),
    )


class Trackers:
    """The three running-statistics estimators, fed the same pre-BN batches z (m, C).

    Each is the real layer: nn.BatchNorm1d(momentum=0.1), nn.BatchNorm1d(momentum=None)
    and keras BatchNormalization(momentum=0.99) (whose moving variance is biased, as in
    Keras), run in training mode only to update their statistics.
    """

    def __init__(self, features: int) -> None:
        self.torch_ema = nn.BatchNorm1d(features, momentum=0.1)
        self.cumulative = nn.BatchNorm1d(features, momentum=None)
        self.keras_ema = keras.BatchNormalization(momentum=0.99)
        self.keras_ema.build(features)

    def update(self, z: np.ndarray) -> None:
        with tb.no_grad():
            self.torch_ema(Tensor(z))
            self.cumulative(Tensor(z))
            self.keras_ema(Tensor(z), training=True)

    def estimates(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """label → (mean (C,), variance (C,))."""
        return {
            "PyTorch EMA (momentum 0.1)": (
                self.torch_ema.running_mean.data.copy(),
                self.torch_ema.running_var.data.copy(),
            ),
            "Keras EMA (momentum 0.99)": (
                self.keras_ema.moving_mean.data.copy(),
                self.keras_ema.moving_variance.data.copy(),
            ),
            "cumulative average over training (momentum=None)": (
                self.cumulative.running_mean.data.copy(),
                self.cumulative.running_var.data.copy(),
            ),
        }


def pre_bn(model: nn.Sequential, X: np.ndarray | Tensor) -> np.ndarray:
    """z = first Linear(X): what the BatchNorm1d layer normalizes, (N, C)."""
    with tb.no_grad():
        return model[0](X if isinstance(X, Tensor) else Tensor(X)).data


def statistic_errors(estimate: tuple, true_mean: np.ndarray, true_var: np.ndarray) -> tuple:
    """(mean |μ̂ − μ| / σ, mean |σ̂²/σ² − 1|) over the features: errors in units of the truth."""
    mean, var = estimate
    std = np.sqrt(true_var)
    return (
        float(np.mean(np.abs(mean - true_mean) / std)),
        float(np.mean(np.abs(var / true_var - 1.0))),
    )


def train_with_trackers(model: nn.Sequential, train: tuple, steps: int, seed: int) -> dict:
    """Train; after every step compare each estimator with the full-data statistics of z."""
    optimizer = optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    trackers = Trackers(HIDDEN)
    batches = endless_batches(*train, BATCH_SIZE, seed)
    log: dict[str, Any] = {"step": [], "true_mean": [], "true_var": []}
    log["errors"] = {name: {"mean": [], "var": []} for name in ESTIMATORS}
    log["watched"] = {name: [] for name in ESTIMATORS}
    model.train()
    for step in progress(range(1, steps + 1), desc="training"):
        xb, yb = next(batches)
        # the statistics of z under the weights this step's batch sees
        z_all = pre_bn(model, train[0])
        trackers.update(pre_bn(model, xb))
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        true_mean, true_var = z_all.mean(axis=0), z_all.var(axis=0)
        log["step"].append(step)
        log["true_mean"].append(float(true_mean[WATCHED_FEATURE]))
        log["true_var"].append(float(true_var[WATCHED_FEATURE]))
        for name, estimate in trackers.estimates().items():
            mean_err, var_err = statistic_errors(estimate, true_mean, true_var)
            log["errors"][name]["mean"].append(mean_err)
            log["errors"][name]["var"].append(var_err)
            log["watched"][name].append(float(estimate[0][WATCHED_FEATURE]))
    return log


def population_after_training(model: nn.Sequential, train: tuple, seed: int) -> dict:
    """The paper's procedure: freeze the trained weights, pass the training set through in
    mini-batches, average μ_B and m/(m−1)·σ²_B (a BatchNorm1d with momentum=None)."""
    population = nn.BatchNorm1d(HIDDEN, momentum=None)
    batches = endless_batches(*train, BATCH_SIZE, seed)
    with tb.no_grad():
        for _ in range(len(train[0]) // BATCH_SIZE):
            population(Tensor(pre_bn(model, next(batches)[0])))
    z_all = pre_bn(model, train[0])
    true_mean, true_var = z_all.mean(axis=0), z_all.var(axis=0)
    estimate = (population.running_mean.data, population.running_var.data)
    mean_err, var_err = statistic_errors(estimate, true_mean, true_var)
    bn = model[1]
    ema_mean_err, ema_var_err = statistic_errors(
        (bn.running_mean.data, bn.running_var.data), true_mean, true_var
    )
    return {
        "mean_error": mean_err,
        "var_error": var_err,
        "model_ema_mean_error": ema_mean_err,
        "model_ema_var_error": ema_var_err,
    }


def train_vs_eval(model: nn.Sequential, test: tuple) -> dict:
    """Outputs on the test set in batches of BATCH_SIZE, training mode vs eval mode."""
    forgetful = copy.deepcopy(model).train()  # training mode would also move running stats
    X = test[0]
    with tb.no_grad():
        train_logits = np.concatenate(
            [
                forgetful(Tensor(X[i : i + BATCH_SIZE])).data
                for i in range(0, len(X) - 1, BATCH_SIZE)
                if len(X[i : i + BATCH_SIZE]) > 1
            ]
        )
        eval_logits = model.eval()(Tensor(X[: len(train_logits)])).data
    y = test[1][: len(train_logits)]
    return {
        "train_logits": train_logits,
        "eval_logits": eval_logits,
        "train_mode_acc": float(np.mean(train_logits.argmax(1) == y)),
        "eval_mode_acc": float(np.mean(eval_logits.argmax(1) == y)),
        "max_abs_logit_difference": float(np.max(np.abs(train_logits - eval_logits))),
    }


def forgotten_eval(model: nn.Sequential, test: tuple, n_batches: int, seed: int) -> dict:
    """What a forgotten ``eval()`` does to predictions.

    1. The test example the model is least sure about (smallest eval-mode margin between
       its top two classes: the one where it shows most) is placed in ``n_batches`` random
       batches of the test set. In training mode its output depends on the other examples
       (batch statistics); in eval mode it does not.
    2. The whole test set, split into random batches twice: the share of examples whose
       predicted class differs between the two batchings (training mode vs eval mode).
    """
    rng = np.random.default_rng(seed)
    X, y = test
    forgetful = copy.deepcopy(model).train()  # a copy: training mode moves running stats
    model.eval()
    with tb.no_grad():
        probs_alone = F.softmax(model(Tensor(X))).data
        top_two = np.sort(probs_alone, axis=1)[:, -2:]
        index = int(np.argmin(top_two[:, 1] - top_two[:, 0]))
        cls = int(probs_alone[index].argmax())
        others = np.delete(np.arange(len(X)), index)
        probs: dict[str, list[float]] = {"train mode": [], "eval mode": []}
        predicted: dict[str, list[int]] = {"train mode": [], "eval mode": []}
        for _ in range(n_batches):
            batch = np.concatenate([[index], rng.choice(others, BATCH_SIZE - 1, replace=False)])
            for mode, net in (("train mode", forgetful), ("eval mode", model)):
                p = F.softmax(net(Tensor(X[batch]))).data[0]
                probs[mode].append(float(p[cls]))
                predicted[mode].append(int(p.argmax()))

        flips = {}
        for mode, net in (("train mode", forgetful), ("eval mode", model)):
            labels = []
            for _ in range(2):
                order = rng.permutation(len(X))
                batches = [order[i : i + BATCH_SIZE] for i in range(0, len(X), BATCH_SIZE)]
                batches = [b for b in batches if len(b) > 1]
                prediction = np.empty(len(X), dtype=np.int64)
                for b in batches:
                    prediction[b] = net(Tensor(X[b])).data.argmax(axis=1)
                labels.append(prediction)
            flips[mode] = float(np.mean(labels[0] != labels[1]))
    return {
        "example_index": index,
        "example_label": int(y[index]),
        "eval_class": cls,
        "prob_alone_eval": float(probs_alone[index, cls]),
        "probs": probs,
        "train_mode_prob_range": [min(probs["train mode"]), max(probs["train mode"])],
        "train_mode_prediction_changes": float(np.mean(np.array(predicted["train mode"]) != cls)),
        "eval_mode_max_deviation": float(
            np.max(np.abs(np.array(probs["eval mode"]) - probs_alone[index, cls]))
        ),
        "test_set_prediction_flips_train_mode": flips["train mode"],
        "test_set_prediction_flips_eval_mode": flips["eval mode"],
    }


def folding(model: nn.Sequential, test: tuple) -> dict:
    """nn.fold_batchnorm(model) against model in eval mode on the test set."""
    folded = nn.fold_batchnorm(model)
    model.eval()
    with tb.no_grad():
        original = model(Tensor(test[0])).data
        merged = folded(Tensor(test[0])).data
    kinds = [type(m).__name__ for m in folded]
    return {
        "original": original,
        "folded": merged,
        "folded_layers": kinds,
        "max_abs_difference": float(np.max(np.abs(original - merged))),
        "predictions_equal": bool(np.array_equal(original.argmax(1), merged.argmax(1))),
    }


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Train, measure the four things above, write inference.png and results.json."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"inference ({scale} scale)")
    steps = pick(args, 60, 600, 3000)
    n_batches = pick(args, 50, 300, 1000)
    train, test = digits_split(seed)
    model = build_model(np.random.default_rng(seed))
    log = train_with_trackers(model, train, steps, seed)
    population = population_after_training(model, train, seed)
    modes = train_vs_eval(model, test)
    forgot = forgotten_eval(model, test, n_batches, seed)
    fold = folding(model, test)

    final_errors = {
        name: {"mean": e["mean"][-1], "var": e["var"][-1]} for name, e in log["errors"].items()
    }
    results = {
        "demo": "inference",
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "seed": seed,
        "final_errors": final_errors,
        "population_after_training": population,
        "train_vs_eval": {k: v for k, v in modes.items() if not k.endswith("logits")},
        "forgotten_eval": {k: v for k, v in forgot.items() if k != "probs"},
        "fold": {k: v for k, v in fold.items() if k not in ("original", "folded")},
        "curves": log,
    }
    save_figure(plot(log, population, modes, forgot, fold), out / "inference.png")
    write_results(out, results)
    print_summary(results)
    return results


def plot(log: dict, population: dict, modes: dict, forgot: dict, fold: dict) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 2, figsize=(7.5, 10.5))
    axes = axes.T  # panel [r, c] drawn at row c, column r: two columns fit the page
    steps = log["step"]

    ax = axes[0, 0]
    ax.plot(steps, log["true_mean"], color="black", lw=2.5, label="true mean (all training data)")
    for name, colour in ESTIMATORS.items():
        ax.plot(steps, log["watched"][name], color=colour, lw=1.5, label=name)
    ax.set(
        title=f"running mean of feature {WATCHED_FEATURE}\nvs the truth",
        xlabel="training step",
        ylabel="mean of z",
    )

    for ax, key, what in ((axes[0, 1], "mean", "|μ̂ − μ| / σ"), (axes[0, 2], "var", "|σ̂²/σ² − 1|")):
        for name, colour in ESTIMATORS.items():
            ax.plot(steps, log["errors"][name][key], color=colour, lw=1.5, label=name)
        ax.axhline(
            population[f"{key}_error"],
            color="tab:green",
            ls=":",
            lw=2,
            label="paper's estimate with the final weights",
        )
        ax.set(
            title=f"error of the running {'mean' if key == 'mean' else 'variance'}\n"
            f"({what}, avg over features)",
            xlabel="training step",
            ylabel="error",
            yscale="log",
        )

    ax = axes[1, 0]
    ax.scatter(modes["eval_logits"].ravel(), modes["train_logits"].ravel(), s=3, alpha=0.3)
    lims = [modes["eval_logits"].min(), modes["eval_logits"].max()]
    ax.plot(lims, lims, color="black", lw=1, label="equal")
    ax.set(
        title=f"train- vs eval-mode logits\n(test set, batches of {BATCH_SIZE})\n"
        f"accuracy: train mode {modes['train_mode_acc']:.3f}, "
        f"eval {modes['eval_mode_acc']:.3f}",
        xlabel="eval mode (running statistics)",
        ylabel="training mode (batch statistics)",
    )
    ax.legend()

    ax = axes[1, 1]
    ax.hist(
        forgot["probs"]["train mode"],
        bins=30,
        color="tab:red",
        alpha=0.7,
        label="eval() forgotten: batch statistics",
    )
    ax.axvline(
        forgot["prob_alone_eval"], color="black", lw=2.5, label="eval mode (any batch, or alone)"
    )
    ax.set(
        title=f"least certain test example (a '{forgot['example_label']}')\n"
        f"in {len(forgot['probs']['train mode'])} random batches: without eval()\n"
        f"its prediction changes in "
        f"{100 * forgot['train_mode_prediction_changes']:.0f}% of them",
        xlabel=f"predicted probability of class {forgot['eval_class']}",
        ylabel="number of batches",
    )
    ax.legend(fontsize=9)

    ax = axes[1, 2]
    ax.scatter(fold["original"].ravel(), fold["folded"].ravel(), s=3, alpha=0.3, color="tab:purple")
    ax.set(
        title=f"nn.fold_batchnorm: Linear+BN → Linear\n"
        f"max |difference| = {fold['max_abs_difference']:.2e}",
        xlabel="model.eval() logits",
        ylabel="folded model logits",
    )
    fig.suptitle("Batch norm at inference: running statistics, eval(), folding", fontsize=13)
    # one legend for the three estimator panels (left column), under the figure
    handles, labels = axes[0, 1].get_legend_handles_labels()
    handles.insert(0, axes[0, 0].get_lines()[0])
    labels.insert(0, "true mean (all training data)")
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def print_summary(results: dict[str, Any]) -> None:
    """The table the command prints (run prints it after writing the files)."""
    rows = [
        {"estimator": name, "mean_error": e["mean"], "var_error": e["var"]}
        for name, e in results["final_errors"].items()
    ]
    population = results["population_after_training"]
    rows.append(
        {
            "estimator": "paper's estimate, final weights",
            "mean_error": population["mean_error"],
            "var_error": population["var_error"],
        }
    )
    print_table(rows, ["estimator", "mean_error", "var_error"])
    forgot, fold = results["forgotten_eval"], results["fold"]
    print(
        f"forgot eval(): prediction changed in {forgot['train_mode_prediction_changes']:.0%} "
        "of batches; probability range "
        f"[{', '.join(f'{p:.3g}' for p in forgot['train_mode_prob_range'])}]"
    )
    print(
        f"forgot eval(): {forgot['test_set_prediction_flips_train_mode']:.1%} of test "
        "predictions change when the test set is batched differently "
        f"(eval mode: {forgot['test_set_prediction_flips_eval_mode']:.1%})"
    )
    print(f"fold_batchnorm: max |difference| {fold['max_abs_difference']:.2e}")


def main(argv: list[str] | None = None) -> int:
    return main_of("inference", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
