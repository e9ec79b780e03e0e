"""Ioffe & Szegedy (2015), Figure 1, at small scale.

Three fully connected hidden layers of 100 sigmoid units, trained with plain SGD on
mini-batches of 60, with and without batch norm (BN on z, before each sigmoid):
(a) test accuracy vs training steps; (b, c) the 15th, 50th and 85th percentiles of the
input to one sigmoid of the last hidden layer, over training, without and with BN.
The paper's claim: with BN the network trains faster and reaches higher accuracy, and
the distribution of a sigmoid's input is much more stable (less internal covariate shift).

Runs on the 8×8 digits; with ``--mnist-dir DIR`` (the four standard IDX files) on MNIST.

    tinybn demo ioffe_fig1 [--quick | --full] [--mnist-dir DIR] [--out DIR] [--seed N]
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import Any

import numpy as np

from tinybn import Tensor, nn, optim
from tinybn.demos._common import (
    column_panels,
    demo_parser,
    pick,
    print_table,
    run_settings,
    save_figure,
    scale_name,
    write_results,
)
from tinybn.demos._mlp import build_mlp, digits_split, evaluating, train_classifier

HIDDEN = [100, 100, 100]
BATCH_SIZE = 60  # as in the paper
LEARNING_RATE = 0.5  # plain SGD, the same for both networks; chosen before running, not tuned
PERCENTILES = (15, 50, 85)
NEURON = 0  # which sigmoid of the last hidden layer is watched


# -- MNIST from the standard IDX files ----------------------------------------------------


# the largest IDX data read, in bytes (MNIST's training images are 47 MB): a header that
# declares more is refused before anything is read
_MAX_IDX_BYTES = 1 << 30


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz): big-endian magic (0, 0, dtype code, ndim), dims, data.

    The header is read and checked first; then exactly the declared number of bytes (at
    most ``_MAX_IDX_BYTES``), so a forged or gzip-bombed file is refused without being
    read whole. ValueError for an empty, truncated, over-long or non-ubyte file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if not magic:
                raise ValueError(f"{path}: the file is empty, not an IDX file")
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08:
                raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic!r})")
            ndim = magic[3]
            header = f.read(4 * ndim)
            if ndim == 0 or len(header) < 4 * ndim:
                raise ValueError(f"{path}: IDX header truncated ({ndim} dimension(s) declared)")
            dims = tuple(int(d) for d in np.frombuffer(header, dtype=">u4"))
            size = math.prod(dims)
            if size > _MAX_IDX_BYTES:
                raise ValueError(
                    f"{path}: IDX header declares shape {dims} ({size} bytes), more than the "
                    f"{_MAX_IDX_BYTES} this reader accepts"
                )
            data = f.read(size)
            if len(data) < size:
                raise ValueError(
                    f"{path}: IDX file truncated: its header declares shape {dims} ({size} "
                    f"bytes of data), the file holds {len(data)}"
                )
            if f.read(1):
                raise ValueError(
                    f"{path}: IDX file has data past the {size} bytes its header declares "
                    f"(shape {dims})"
                )
    except (OSError, EOFError) as error:  # a corrupt or truncated .gz
        raise ValueError(f"{path}: cannot be read as a (gzipped) IDX file: {error}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them train-images.idx3-ubyte
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"{stem}[.gz] not found in {directory}")


def load_mnist(directory: Path) -> tuple[tuple, tuple]:
    """MNIST train/test as float32 pixels in [0, 1] (N, 784) and int64 labels."""
    parts = []
    for prefix in ("train", "t10k"):
        image_path = _find(directory, f"{prefix}-images-idx3-ubyte")
        label_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
        images, labels = _read_idx(image_path), _read_idx(label_path)
        if images.ndim != 3 or labels.ndim != 1:
            raise ValueError(
                f"{directory}: expected images (N, rows, cols) and labels (N,), got shapes "
                f"{images.shape} in {image_path.name} and {labels.shape} in {label_path.name}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{directory}: {image_path.name} holds {len(images)} images but "
                f"{label_path.name} holds {len(labels)} labels; they must match"
            )
        X = images.reshape(len(images), -1).astype(np.float32) / 255.0
        parts.append((X, labels.astype(np.int64)))
    return parts[0], parts[1]


# -- the experiment ---------------------------------------------------------------------------


def sigmoid_input(model: nn.Sequential, X: np.ndarray) -> np.ndarray:
    """The input of the last hidden layer's sigmoids on X (eval mode): (N, 100).

    Without BN this is z = W h + b; with BN it is BN(z) — what the sigmoid sees.
    """
    sigmoids = [i for i, layer in enumerate(model) if isinstance(layer, nn.Sigmoid)]
    h = Tensor(X)
    with evaluating(model):
        for layer in list(model)[: sigmoids[-1]]:
            h = layer(h)
    return h.data


def run_one(bn: bool, train: tuple, test: tuple, steps: int, eval_every: int, seed: int) -> dict:
    """Train one network; returns its history plus the watched sigmoid-input percentiles."""
    n_in, n_classes = train[0].shape[1], int(train[1].max()) + 1
    rng = np.random.default_rng(seed)
    model = build_mlp(
        [n_in, *HIDDEN, n_classes], "sigmoid", "before" if bn else None, init_scale=1.0, rng=rng
    )
    optimizer = optim.SGD(model.parameters(), lr=LEARNING_RATE)
    percentiles: list[list[float]] = []

    def watch(step: int) -> None:
        if step == 0:  # before any step, BN's running statistics are still the initial 0 / 1
            return
        z = sigmoid_input(model, test[0])[:, NEURON]
        percentiles.append([float(v) for v in np.percentile(z, PERCENTILES)])

    history = train_classifier(
        model,
        optimizer,
        train,
        test,
        steps,
        BATCH_SIZE,
        seed,
        eval_every,
        watch,
        desc="with BN" if bn else "without BN",
    )
    history["percentiles"] = percentiles
    return history


def first_step_reaching(history: dict, accuracy: float) -> int | None:
    for step, acc in zip(history["step"], history["test_acc"]):
        if acc >= accuracy:
            return int(step)
    return None


def plot(results: dict, dataset: str) -> Any:

    fig, axes = column_panels(3, panel_height=3.2)
    colours = {"without BN": "tab:gray", "with BN": "tab:blue"}
    ax = axes[0]
    for name, history in results["runs"].items():
        ax.plot(history["step"], history["test_acc"], color=colours[name], label=name, lw=2)
    ax.set(title=f"(a) test accuracy ({dataset})", xlabel="training step", ylabel="accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")

    lows, highs = [], []
    for history in results["runs"].values():
        p = np.asarray(history["percentiles"])
        lows.append(p.min())
        highs.append(p.max())
    for ax, (name, letter) in zip(axes[1:], (("without BN", "b"), ("with BN", "c"))):
        history = results["runs"][name]
        p = np.asarray(history["percentiles"])
        steps = history["step"][1:]
        ax.fill_between(
            steps, p[:, 0], p[:, 2], color=colours[name], alpha=0.2, label="15th–85th percentile"
        )
        for column, style in zip(range(3), ("--", "-", "--")):
            ax.plot(
                steps,
                p[:, column],
                style,
                color=colours[name],
                lw=1.5,
                label=f"{PERCENTILES[column]}th percentile",
            )
        ax.set(
            title=f"({letter}) input to one last-layer sigmoid, {name}",
            xlabel="training step",
            ylabel="sigmoid input",
        )
        ax.set_ylim(min(lows) - 0.2, max(highs) + 0.2)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    fig.suptitle("Ioffe & Szegedy Fig. 1: 3×100 sigmoid MLP, SGD, batch 60", fontsize=12)
    fig.tight_layout()
    return fig


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """Run the experiment at the chosen scale, write the figure and results.json.

    Options: ``mnist_dir`` (a folder with MNIST's IDX files; default: the 8×8 digits)."""
    args = run_settings(out, scale, seed, options, mnist_dir=None)
    out, mnist_dir = args.out, args.mnist_dir
    print(f"ioffe_fig1 ({scale} scale)")
    steps = pick(args, 150, 2000, 50000)
    eval_every = pick(args, 25, 100, 500)
    if mnist_dir is not None:
        train, test = load_mnist(Path(mnist_dir))
        dataset = "MNIST"
    else:
        train, test = digits_split(seed)
        dataset = "8×8 digits"

    runs = {}
    for name, bn in (("without BN", False), ("with BN", True)):
        runs[name] = run_one(bn, train, test, steps, eval_every, seed)

    summary = {}
    for name, history in runs.items():
        p = np.asarray(history["percentiles"])
        summary[name] = {
            "final_test_acc": history["test_acc"][-1],
            "final_train_loss": history["train_loss"][-1],
            "steps_to_90pct_test_acc": first_step_reaching(history, 0.90),
            # how far the median sigmoid input wandered over training
            "median_input_range": float(p[:, 1].max() - p[:, 1].min()),
            "final_percentiles": p[-1].tolist(),
        }
    results = {
        "demo": "ioffe_fig1",
        "dataset": dataset,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "seed": seed,
        "summary": summary,
        # per evaluation: step, train/test loss and accuracy, sigmoid-input percentiles
        "runs": {
            name: {k: v for k, v in h.items() if k != "batch_loss"} for name, h in runs.items()
        },
    }
    save_figure(plot(results, dataset), out / "ioffe_fig1.png")
    write_results(out, results)
    print_summary(results)
    return results


def print_summary(results: dict[str, Any]) -> None:
    """The table the command prints (run prints it after writing the files)."""
    rows = [
        {"model": name, **{k: v for k, v in s.items() if k != "final_percentiles"}}
        for name, s in results["summary"].items()
    ]
    print_table(
        rows,
        [
            "model",
            "final_test_acc",
            "final_train_loss",
            "steps_to_90pct_test_acc",
            "median_input_range",
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("ioffe_fig1", __doc__.splitlines()[0])
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
