"""Layer normalization (Ba, Kiros & Hinton 2016) vs batch normalization.

Batch norm normalizes each unit over the EXAMPLES of a batch; layer norm normalizes each
example over its UNITS (the same ``F`` code, a different axis). Three consequences:

1. Batch size. BN's statistics come from the batch: with one example per batch they do not
   exist (tinybn raises ValueError, as PyTorch does), with two they are very noisy and the
   running statistics used at test time differ from them. LN does not care.
2. Invariances (Ba et al., Table 1), checked numerically on a = x Wᵀ: which re-scalings or
   re-centerings of the weights, of the data, or of a single example leave the output alone.
3. Recurrent networks. BN would need statistics per time step; LN just normalizes the summed
   inputs of each step: h_t = tanh(LN(W x_t + U h_{t−1} + b)), trained on the adding problem
   with sequences of different lengths, with and without LN.

Run: ``tinybn demo layernorm [--quick|--full] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import tinybn as tb
from tinybn import Tensor, nn, optim
from tinybn import functional as F
from tinybn.data import DataLoader
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
from tinybn.demos._mlp import digits_split, evaluate, state_restored

BATCH_SIZES = (1, 2, 4, 8, 32, 128)
HIDDEN = 100
LEARNING_RATE = 1e-3  # Adam, the same for every batch size and both norms; not tuned
NORMS = ("BN", "LN")
COLORS = {"BN": "C0", "LN": "C1", "no norm": "C3"}


# -- 1. accuracy vs batch size ---------------------------------------------------------------


def build_classifier(norm: str, sizes: list[int], rng: np.random.Generator) -> nn.Sequential:
    """Linear → norm → ReLU for each hidden layer, then a Linear to the class logits."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Linear(fan_in, fan_out, rng=rng))
        layers.append(nn.BatchNorm1d(fan_out) if norm == "BN" else nn.LayerNorm(fan_out))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(sizes[-2], sizes[-1], rng=rng))
    return nn.Sequential(*layers)


def train_at_batch_size(
    norm: str, batch_size: int, data: tuple, epochs: int, seed: int
) -> dict[str, Any]:
    """Train for ``epochs`` passes (the same examples seen at every batch size).

    Returns test accuracy and final training loss, or ``cannot_train`` with the error
    the framework raised (BN with one example per batch).
    """
    (X_train, y_train), (X_test, y_test) = data
    model = build_classifier(
        norm, [X_train.shape[1], HIDDEN, HIDDEN, 10], np.random.default_rng(seed)
    )
    optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loader = DataLoader(X_train, y_train, batch_size, shuffle=True, drop_last=True, seed=seed)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            try:
                loss = F.cross_entropy(model(xb), yb)
            except ValueError as error:
                return {"cannot_train": True, "error": str(error)}
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    test_loss, test_acc = evaluate(model, X_test, y_test)
    result = {
        "cannot_train": False,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "final_train_loss": float(np.mean(losses[-max(1, len(losses) // 10) :])),
        "steps": len(losses),
    }
    if batch_size > 1:
        result["test_acc_batch_stats"] = _batch_mode_accuracy(model, X_test, y_test, batch_size)
    return result


def _batch_mode_accuracy(
    model: nn.Sequential, X: np.ndarray, y: np.ndarray, batch_size: int
) -> float:
    """Test accuracy when normalizing with the statistics of test batches of this size.

    For LN this equals eval mode; for BN it shows how much the batch statistics themselves
    (which the network trained on) differ from the running statistics.
    """
    model.train()
    correct = 0
    # the running statistics are left as training made them
    with state_restored(model), tb.no_grad():
        for start in range(0, len(X) - batch_size + 1, batch_size):
            logits = model(Tensor(X[start : start + batch_size]))
            correct += int(np.sum(logits.data.argmax(axis=1) == y[start : start + batch_size]))
    return correct / (len(X) // batch_size * batch_size)


# -- 2. invariances ----------------------------------------------------------------------------

# Ba et al. (2016), Table 1: is the normalized output invariant under ...? (the paper's claims)
CLAIMED = {
    "weight matrix re-scaling": (True, True),
    "weight matrix re-centering": (False, True),
    "weight vector re-scaling": (True, False),
    "dataset re-scaling": (True, True),
    "dataset re-centering": (True, False),
    "single example re-scaling": (False, True),
}


def invariance_table(seed: int, n: int = 16, d: int = 8, h: int = 6) -> dict[str, Any]:
    """max |Δy| of BN and LN outputs (float64, no affine) under each transformation.

    a = x Wᵀ with x (n, d), W (h, d); y = BN(a) normalizes columns, LN(a) rows.
    """
    rng = np.random.default_rng(seed)
    x, W = rng.normal(size=(n, d)), rng.normal(size=(h, d))
    eps = 1e-12  # tiny: the checks are about the exact transform, not ε's slight blur

    def outputs(x: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = Tensor(x @ W.T)
        return F.batch_norm(a, eps=eps).data, F.layer_norm(a, eps=eps).data

    row_scales = np.ones((h, 1))
    row_scales[2] = 7.0
    example_scales = np.ones((n, 1))
    example_scales[3] = 10.0
    transforms = {
        "weight matrix re-scaling": (x, 3.0 * W),
        "weight matrix re-centering": (x, W + rng.normal(size=(1, d))),  # same vector on every row
        "weight vector re-scaling": (x, row_scales * W),  # one unit's weights × 7
        "dataset re-scaling": (4.0 * x, W),
        "dataset re-centering": (x + rng.normal(size=(1, d)), W),
        "single example re-scaling": (example_scales * x, W),  # example 3 × 10
    }
    bn, ln = outputs(x, W)
    table = {}
    for name, (x_new, W_new) in transforms.items():
        bn_new, ln_new = outputs(x_new, W_new)
        bn_change, ln_change = (
            float(np.max(np.abs(bn_new - bn))),
            float(np.max(np.abs(ln_new - ln))),
        )
        table[name] = {
            "BN_max_change": bn_change,
            "LN_max_change": ln_change,
            "BN_invariant": bn_change < 1e-6,
            "LN_invariant": ln_change < 1e-6,
            "paper_BN_invariant": CLAIMED[name][0],
            "paper_LN_invariant": CLAIMED[name][1],
        }
    return table


# -- 3. a recurrent network on the adding problem ---------------------------------------------


def adding_problem(
    count: int, min_length: int, max_length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences of (value, marker) pairs; the target is the sum of the two marked values.

    Each sequence has its own length T ∈ [min_length, max_length]; one marker is in the first
    half, one in the second. Padded to max_length with zeros.
    Returns inputs (count, max_length, 2), lengths (count,), targets (count, 1).
    """
    inputs = np.zeros((count, max_length, 2))
    lengths = rng.integers(min_length, max_length + 1, size=count)
    targets = np.zeros((count, 1))
    for i, T in enumerate(lengths):
        inputs[i, :T, 0] = rng.random(T)
        first, second = rng.integers(0, T // 2), rng.integers(T // 2, T)
        inputs[i, [first, second], 1] = 1.0
        targets[i, 0] = inputs[i, first, 0] + inputs[i, second, 0]
    return inputs.astype(np.float32), lengths, targets.astype(np.float32)


class TinyRNN(nn.Module):
    """h_t = tanh(LN(W x_t + U h_{t−1} + b)) (or without LN), a linear read-out of the last h.

    Shapes: x (N, T, 2) with per-sequence lengths (N,); h (N, H); output (N, 1).
    A sequence that has ended keeps its hidden state: h_t = h_{t−1} where t ≥ length.
    """

    def __init__(self, hidden: int, layer_norm: bool, rng: np.random.Generator) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_hidden = nn.Linear(2, hidden, rng=rng)  # W and b
        self.hidden_to_hidden = nn.Linear(hidden, hidden, bias=False, rng=rng)  # U
        self.norm = nn.LayerNorm(hidden) if layer_norm else None
        self.readout = nn.Linear(hidden, 1, rng=rng)

    def forward(self, x: np.ndarray, lengths: np.ndarray) -> Tensor:
        h = Tensor(np.zeros((x.shape[0], self.hidden), dtype=x.dtype))
        for t in range(int(lengths.max())):
            summed = self.input_to_hidden(Tensor(x[:, t])) + self.hidden_to_hidden(h)
            h_new = (self.norm(summed) if self.norm is not None else summed).tanh()
            running = (t < lengths).astype(x.dtype)[:, None]  # 1 while the sequence lasts
            h = h_new * running + h * (1.0 - running)
        return self.readout(h)


def train_rnn(layer_norm: bool, args: argparse.Namespace, steps: int, lengths: tuple) -> dict:
    rng = np.random.default_rng(args.seed + 7)
    test_x, test_len, test_y = adding_problem(500, *lengths, rng)
    model = TinyRNN(32, layer_norm, np.random.default_rng(args.seed))
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    data_rng = np.random.default_rng(args.seed + 8)
    history: dict[str, list] = {"step": [], "train_mse": [], "test_mse": []}
    name = "RNN with LN" if layer_norm else "RNN without LN"
    recent: list[float] = []
    for step in progress(range(1, steps + 1), desc=name):
        x, length, y = adding_problem(64, *lengths, data_rng)
        loss = F.mse_loss(model(x, length), Tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        recent.append(loss.item())
        if step % max(1, steps // 20) == 0 or step == steps:
            with tb.no_grad():
                test_mse = F.mse_loss(model(test_x, test_len), Tensor(test_y)).item()
            history["step"].append(step)
            history["train_mse"].append(float(np.mean(recent)))
            history["test_mse"].append(test_mse)
            recent = []
    history["final_test_mse"] = history["test_mse"][-1]
    # predicting the mean target (1.0) everywhere scores Var(u1 + u2) = 1/6
    history["baseline_mse"] = float(np.mean((test_y - 1.0) ** 2))
    return history


# -- figures -----------------------------------------------------------------------------------


def plot_batch_sizes(sweep: dict[str, dict], path: Any) -> Any:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4))
    positions = np.arange(len(BATCH_SIZES))
    for norm in NORMS:
        accs = [sweep[norm][b].get("test_acc", np.nan) for b in BATCH_SIZES]
        axes[0].plot(positions, accs, "o-", color=COLORS[norm], label=f"{norm} (eval mode)")
        if norm == "BN":
            batch_accs = [sweep[norm][b].get("test_acc_batch_stats", np.nan) for b in BATCH_SIZES]
            axes[0].plot(
                positions,
                batch_accs,
                "s--",
                color=COLORS[norm],
                alpha=0.5,
                label="BN with test-batch statistics",
            )
        for i, b in enumerate(BATCH_SIZES):
            if sweep[norm][b]["cannot_train"]:
                axes[0].annotate(
                    "BN cannot train\n(batch of 1)",
                    (i, 0.1),
                    ha="center",
                    color=COLORS[norm],
                    fontsize=9,
                )
        losses = [sweep[norm][b].get("final_train_loss", np.nan) for b in BATCH_SIZES]
        axes[1].plot(positions, losses, "o-", color=COLORS[norm], label=norm)
    for ax in axes:
        ax.set_xticks(positions, [str(b) for b in BATCH_SIZES])
        ax.set_xlabel("batch size (same number of epochs each)")
        ax.legend(fontsize=9)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_title("test accuracy, 8×8 digits")
    axes[1].set_title("final training loss")
    axes[1].set_yscale("log")
    return save_figure(fig, path)


def plot_invariances(table: dict[str, Any], path: Any) -> Any:
    import matplotlib.pyplot as plt

    names = list(table)
    changes = np.array([[table[n]["BN_max_change"], table[n]["LN_max_change"]] for n in names])
    fig, ax = plt.subplots(figsize=(7.5, 4.3))
    shown = np.log10(np.maximum(changes, 1e-17))
    ax.imshow(shown < -6, cmap="RdYlGn", vmin=-0.3, vmax=1.3, aspect="auto")
    for i, name in enumerate(names):
        for j, norm in enumerate(("BN", "LN")):
            ok = table[name][f"{norm}_invariant"]
            agrees = ok == table[name][f"paper_{norm}_invariant"]
            text = f"{'invariant' if ok else 'changes'}\nmax|Δy| = {changes[i, j]:.1e}"
            text += "" if agrees else "\n(paper disagrees!)"
            ax.text(j, i, text, ha="center", va="center", fontsize=9)
    ax.set_xticks([0, 1], ["batch norm", "layer norm"])
    ax.set_yticks(range(len(names)), names)
    ax.set_title("Ba et al. (2016) Table 1, measured: does the normalized output change?")
    return save_figure(fig, path)


def plot_rnn(rnn: dict[str, dict], path: Any) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, color in (("without LN", "C3"), ("with LN", "C1")):
        h = rnn[name]
        ax.plot(h["step"], h["test_mse"], "o-", ms=3, color=color, label=f"{name} (test)")
        ax.plot(h["step"], h["train_mse"], ":", color=color, alpha=0.7, label=f"{name} (train)")
    ax.axhline(
        rnn["with LN"]["baseline_mse"],
        color="gray",
        ls="--",
        lw=0.8,
        label="predict the mean (≈ 1/6)",
    )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("MSE")
    ax.set_title(
        "adding problem, variable-length sequences: "
        r"$h_t = \tanh(\mathrm{LN}(W x_t + U h_{t-1} + b))$"
    )
    ax.legend(fontsize=9)
    return save_figure(fig, path)


# -- main ------------------------------------------------------------------------------------------


def experiment(args: argparse.Namespace) -> dict[str, Any]:
    epochs = pick(args, 1, 2, 10)
    n_train = pick(args, 160, None, None)
    data = digits_split(args.seed, n_train=n_train)
    sweep: dict[str, dict] = {norm: {} for norm in NORMS}
    for norm in NORMS:
        for b in progress(BATCH_SIZES, desc=f"{norm} batch sizes"):
            sweep[norm][b] = train_at_batch_size(norm, b, data, epochs, args.seed)
    table = invariance_table(args.seed)
    rnn_steps = pick(args, 30, 1000, 3000)
    lengths = pick(args, (5, 10), (10, 30), (20, 60))
    rnn = {
        "without LN": train_rnn(False, args, rnn_steps, lengths),
        "with LN": train_rnn(True, args, rnn_steps, lengths),
    }
    return {
        "sweep": sweep,
        "invariances": table,
        "rnn": rnn,
        "epochs": epochs,
        "rnn_lengths": lengths,
    }


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the demo at ``scale``; write its figures and results.json into ``out`` and
    return the results."""
    args = run_settings(out, scale, seed, options)
    out = args.out
    print(f"layernorm ({scale_name(args)} scale)")
    result = experiment(args)
    sweep, table, rnn = result["sweep"], result["invariances"], result["rnn"]

    rows = []
    for b in BATCH_SIZES:
        row: dict[str, Any] = {"batch size": b}
        for norm in NORMS:
            r = sweep[norm][b]
            row[f"{norm} test acc"] = "cannot train" if r["cannot_train"] else r["test_acc"]
        rows.append(row)
    print_table(rows, list(rows[0]))
    inv_rows = [
        {"transformation": name, "BN max|Δy|": t["BN_max_change"], "LN max|Δy|": t["LN_max_change"]}
        for name, t in table.items()
    ]
    print_table(inv_rows, list(inv_rows[0]))
    rnn_rows = [
        {"RNN": name, "final test MSE": h["final_test_mse"], "baseline MSE": h["baseline_mse"]}
        for name, h in rnn.items()
    ]
    print_table(rnn_rows, list(rnn_rows[0]))

    figures = [
        plot_batch_sizes(sweep, out / "layernorm_batch_size.png"),
        plot_invariances(table, out / "layernorm_invariances.png"),
        plot_rnn(rnn, out / "layernorm_rnn.png"),
    ]
    results = {
        "demo": "layernorm",
        "scale": scale_name(args),
        "seed": args.seed,
        "epochs": result["epochs"],
        "batch_sizes": {norm: {str(b): r for b, r in sweep[norm].items()} for norm in NORMS},
        "invariances": table,
        "rnn": rnn,
        "rnn_lengths": result["rnn_lengths"],
        "figures": [str(f) for f in figures],
    }
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    return main_of("layernorm", __doc__ or "", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
