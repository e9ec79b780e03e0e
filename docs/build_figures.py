"""Make every picture in the docs and the README from tinybn itself.

    python docs/build_figures.py                 # about two minutes on 2 cores
    python docs/build_figures.py --only graphs   # one group: graphs, plots, demos

Writes into docs/figures/:

* graph renders of the lecture notes' worked example, drawn by ``tinybn.draw`` (SVG, and one
  PNG for the README, small enough to read at README width);
* ``docs/explorer/bn.html``: the worked example's explorer page (``tinybn.explore``), where
  backward runs one step per click;
* plots made here with matplotlib from tinybn computations (sigmoid regime, the three
  routes of the gradient, running statistics, a training run, speed);
* the figures of the demos, by running each demo in ``DEMOS`` at its default scale and copying
  its PNGs, plus ``<demo>.txt``: the table the demo printed, which the pages include
  (``--8<--``), so no number in the docs is typed by hand.

PNGs are re-encoded with a 256-colour palette to keep the committed files small.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's tinybn, when it is not installed editable

import tinybn as tb  # noqa: E402
from tinybn import Tensor, Value, nn, optim  # noqa: E402
from tinybn import functional as F  # noqa: E402
from tinybn.autograd import topological_order  # noqa: E402
from tinybn.check import batch_norm_backward  # noqa: E402
from tinybn.demos._common import use_demo_process_settings  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"
EXPLORER = Path(__file__).resolve().parent / "explorer" / "bn.html"
# chapter 0's graph: micrograd's opening example, L = (a·b + c)·f
BACKPROP_EXPLORER = EXPLORER.parent / "backprop.html"

# The lecture notes' worked example: a batch of 10 samples, 2 features.
X1 = [33, 72, 40, 104, 52, 56, 89, 24, 52, 73]
X2 = [9, 8, 7, 10, 5, 8, 7, 9, 8, 7]
# The loss the docs use: a weighted sum, sample i weighted i + 1 (never a plain Σy,
# whose gradient for γ and x is exactly zero because Σ x̂ = 0).
WEIGHTS = [float(i + 1) for i in range(len(X1))]

# The demos whose figures and tables the docs show, each run at its default scale: the same
# runs as the numbers in tinybn/demos/README.md (seconds to ~25 s each on 2 cores).
DEMOS = (
    "covariate_shift",
    "placement",
    "ioffe_fig1",
    "lr_init",
    "bn_position",
    "regularization",
    "inference",
    "santurkar",
    "layernorm",
    "gan",
    "cnn",
    "norms",
)


# -- helpers -----------------------------------------------------------------------------


def small_png(path: Path) -> None:
    """Re-encode a PNG with a 256-colour palette: plots lose nothing visible, size drops ~3×."""
    image = Image.open(path).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def save_plot(fig: plt.Figure, name: str) -> Path:
    path = FIGURES / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    small_png(path)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def save_graph(digraph, name: str) -> Path:
    """Lay out a graphviz.Digraph with dot and write it as name's format (svg or png)."""
    path = FIGURES / name
    path.write_bytes(digraph.pipe(format=path.suffix[1:]))
    if path.suffix == ".png":
        small_png(path)
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def worked_example(features: tuple[int, ...] = (0, 1)):
    """The worked example as a scalar graph: x (10 × C Values), γ, β, y and the loss."""
    columns = [[X1, X2][c] for c in features]
    x = tb.values([list(row) for row in zip(*columns)], "x")
    gamma = tb.values([1.0] * len(features), "γ")
    beta = tb.values([0.0] * len(features), "β")
    y = F.batch_norm(x, gamma, beta, eps=1e-5)
    loss = Value.sum(w * v for w, row in zip(WEIGHTS, y) for v in row).named("L")
    return x, gamma, beta, y, loss


# -- graphs drawn by tinybn.draw ------------------------------------------------------------


def four_samples_loss() -> Value:
    """The README's picture: batch norm of the first four samples of feature x1 (33, 72, 40,
    104), L = Σ wᵢ·yᵢ with wᵢ = i + 1, after backward. Four columns, drawn top to bottom:
    every label reads at README width (the full 10 × 2 graph is the explorer's job)."""
    x = tb.values([[v] for v in X1[:4]], "x")
    y = F.batch_norm(x, tb.values([1.0], "γ"), tb.values([0.0], "β"), eps=1e-5)
    terms = (Value(WEIGHTS[i], label=f"w[{i}]") * row[0] for i, row in enumerate(y))
    loss = Value.sum(terms).named("L")
    loss.backward()
    return loss


def micrograd_example() -> Value:
    """Chapter 0's graph (micrograd's first example): L = (a·b + c)·f, before backward."""
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c, f = Value(10.0, label="c"), Value(-2.0, label="f")
    return (((a * b).named("e") + c).named("d") * f).named("L")


def graphs() -> None:
    """The batch-norm graph of the worked example, before and after backward; spatial BN."""
    # top to bottom, 3 of the 10 samples drawn: ~950 px wide instead of 2240, so the labels
    # read in the docs' column (the whole graph is in the explorer)
    _, _, _, _, loss = worked_example(features=(0,))
    save_graph(tb.draw(loss, rankdir="TB", collapse=True), "bn_forward_x1.svg")
    loss.backward()
    save_graph(tb.draw(loss, rankdir="TB", collapse=True), "bn_backward_x1.svg")

    save_graph(tb.draw(four_samples_loss(), rankdir="TB", collapse=False), "bn_graph.png")

    _, _, _, _, loss = worked_example()
    # the whole graph unfolded is 304 boxes and ops: above draw's default 300
    EXPLORER.parent.mkdir(parents=True, exist_ok=True)
    tb.explore(loss, max_nodes=400).save(EXPLORER)
    print(f"wrote {EXPLORER.relative_to(ROOT)}")
    # top to bottom: the five nodes fill the explorer's left pane inside the page column
    tb.explore(micrograd_example(), rankdir="TB").save(BACKPROP_EXPLORER)
    print(f"wrote {BACKPROP_EXPLORER.relative_to(ROOT)}")

    x = Tensor(np.array([X1, X2], dtype=np.float64).T, requires_grad=True).named("x")
    gamma = Tensor(np.ones(2), requires_grad=True).named("γ")
    beta = Tensor(np.zeros(2), requires_grad=True).named("β")
    weights = Tensor(np.repeat(np.array(WEIGHTS)[:, None], 2, axis=1)).named("w")
    loss = (F.batch_norm(x, gamma, beta) * weights).sum().named("L")
    loss.backward()
    save_graph(tb.draw(loss, rankdir="TB"), "bn_tensor_graph.svg")  # 465 pt wide, not 4970
    spatial_bn_graph()


# -- plots ----------------------------------------------------------------------------------------


def gradient_graphs() -> None:
    """∂L/∂x₀ as autodiff builds it (create_graph) and the closed form's dx₀, three samples."""
    x = tb.values([[33.0], [72.0], [40.0]], "x")
    gamma = tb.values([1.0], "γ")
    y = F.batch_norm(x, gamma, tb.values([0.0], "β"))
    loss = Value.sum((i + 1) * row[0] for i, row in enumerate(y)).named("L")
    loss.backward(create_graph=True)
    save_graph(tb.draw(x[0][0].grad, rankdir="TB", clusters=False), "bn_grad_graph.svg")
    # the gradient's own graph, stepped backward in the explorer: ∂(∂L/∂x₀)/∂(everything)
    path = EXPLORER.parent / "bn_grad.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tb.explore(x[0][0].grad, rankdir="TB", clusters=False).save(path)
    print(f"wrote {path.relative_to(ROOT)}")
    dx, _, _ = F.batch_norm_backward([[1.0], [2.0], [3.0]], x, gamma)
    save_graph(tb.draw(dx[0][0], rankdir="TB", clusters=False), "bn_closed_form_graph.svg")


def sigmoid_regime() -> None:
    """x̂ of the worked example on the sigmoid, before and after a scale and shift."""
    _, _, _, y, _ = worked_example(features=(0,))
    xhat = np.array([row[0].data for row in y])
    gamma, beta = 3.0, 2.0
    z = np.linspace(-6, 6, 400)
    sigmoid = 1 / (1 + np.exp(-z))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, inputs, title in (
        (axes[0], xhat, "x̂ (γ = 1, β = 0): nearly linear"),
        (axes[1], gamma * xhat + beta, f"γ·x̂ + β (γ = {gamma:g}, β = {beta:g}): curved"),
    ):
        ax.plot(z, sigmoid, color="0.3", label="σ(z)")
        ax.plot(z, 0.5 + z / 4, "--", color="0.6", label="½ + z/4 (tangent at 0)")
        ax.scatter(inputs, 1 / (1 + np.exp(-inputs)), color="C3", zorder=3, label="inputs")
        ax.axvspan(inputs.min(), inputs.max(), color="C3", alpha=0.08)
        ax.set(title=title, xlabel="z", ylim=(-0.05, 1.05))
    axes[0].set_ylabel("σ(z)")
    axes[0].legend(loc="upper left", fontsize=8)
    save_plot(fig, "sigmoid_regime.png")


def gradient_routes() -> None:
    """∂L/∂x of the worked example (feature x1) split into its three routes, vs closed form."""
    x, gamma, _, y, loss = worked_example(features=(0,))
    loss.backward()
    m = len(X1)
    graph = {node.label: node for node in topological_order(loss)}
    std = graph["√(σ² + ε)[0,0]"].data
    dvar, dmu = graph["σ²[0,0]"].grad, graph["μ[0,0]"].grad
    direct = np.array([graph[f"x̂[{i},0]"].grad / std for i in range(m)])
    via_var = np.array([dvar * 2 * graph[f"x − μ[{i},0]"].data / m for i in range(m)])
    via_mean = np.full(m, dmu / m)
    total = np.array([row[0].grad for row in x])
    dy = np.array(WEIGHTS)[:, None]
    closed, _, _ = batch_norm_backward(dy, np.array(X1, float)[:, None], [1.0])

    fig, ax = plt.subplots(figsize=(8, 3.4))
    samples = np.arange(m)
    width = 0.27
    ax.bar(samples - width, direct, width, label="through x̂ directly")
    ax.bar(samples, via_var, width, label="through σ²")
    ax.bar(samples + width, via_mean, width, label="through μ")
    ax.plot(samples, total, "ko", label="∂L/∂x (backward)")
    ax.plot(samples, closed[:, 0], "w+", markersize=9, label="closed form")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set(
        xticks=samples,
        xticklabels=[f"{v}\nw={w:g}" for v, w in zip(X1, WEIGHTS)],
        ylabel="gradient",
        title=f"∂L/∂x for feature x1, L = Σ wᵢ yᵢ   (Σ ∂L/∂x = {total.sum():.1e})",
    )
    ax.legend(fontsize=8, ncol=3)
    save_plot(fig, "bn_routes.png")


def training_curves() -> None:
    """The README's training plot: a deep sigmoid MLP on two moons, with and without BN."""
    from tinybn import data

    X, labels = data.moons(512, noise=0.15, seed=0)
    depth, width, lr = 4, 32, 0.5
    curves = {}
    for name, with_bn in (("without BN", False), ("with BN", True)):
        rng = np.random.default_rng(0)  # the same initial weights and batches for both
        layers, n_in = [], 2
        for _ in range(depth):
            norm = [nn.BatchNorm1d(width)] if with_bn else []
            layers += [nn.Linear(n_in, width, rng=rng), *norm, nn.Sigmoid()]
            n_in = width
        model = nn.Sequential(*layers, nn.Linear(width, 2, rng=rng))
        opt = optim.SGD(model.parameters(), lr=lr)
        losses = []
        for _ in range(40):
            order = rng.permutation(len(X))
            for start in range(0, len(X), 32):
                batch = order[start : start + 32]
                loss = F.cross_entropy(model(Tensor(X[batch])), labels[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        curves[name] = np.array(losses)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, losses in curves.items():
        ax.plot(np.convolve(losses, np.ones(16) / 16, mode="valid"), label=name)
    ax.set(
        xlabel="SGD step (batch 32)",
        ylabel="training loss (moving average)",
        title=f"{depth} hidden sigmoid layers of {width} on moons, SGD lr {lr}",
    )
    ax.legend()
    save_plot(fig, "training_moons.png")


def bn_forward_backward(engine: str, data: np.ndarray, dy: np.ndarray) -> None:
    """batch_norm of data (N, C) on one engine, then backward of Σ dy·y."""
    c = data.shape[1]
    if engine == "Value":
        x = tb.values(data.tolist(), "x")
        y = F.batch_norm(x, tb.values([1.0] * c, "γ"), tb.values([0.0] * c, "β"))
        loss = Value.sum(w * v for wrow, row in zip(dy, y) for w, v in zip(wrow, row))
    else:
        x = Tensor(data, requires_grad=True)
        loss = (F.batch_norm(x, Tensor(np.ones(c)), Tensor(np.zeros(c))) * dy).sum()
    loss.backward()


def speed() -> None:
    """The same batch_norm source on both engines: time for forward + backward."""
    rows = []
    rng = np.random.default_rng(0)
    for n, c in ((8, 2), (32, 8), (128, 16)):
        data = rng.standard_normal((n, c))
        dy = rng.standard_normal((n, c))
        timings = {}
        for engine in ("Value", "Tensor"):
            bn_forward_backward(engine, data, dy)  # warm-up: first calls fill caches
            start = time.perf_counter()
            repeats = 0
            while time.perf_counter() - start < 0.5 or repeats < 3:
                bn_forward_backward(engine, data, dy)
                repeats += 1
            timings[engine] = (time.perf_counter() - start) / repeats
        rows.append((n, c, timings["Value"], timings["Tensor"]))
    lines = [
        "| N × C | scalar `Value` graph | `Tensor` graph | Tensor speed-up |",
        "| --- | --- | --- | --- |",
    ]
    for n, c, scalar, tensor in rows:
        lines.append(
            f"| {n} × {c} | {scalar * 1e3:.2f} ms | {tensor * 1e3:.3f} ms "
            f"| {scalar / tensor:.0f}× |"
        )
    path = FIGURES / "speed.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def spatial_bn_graph() -> None:
    """Spatial batch norm on scalars: a (2, 2, 2, 2) input (N, C, H, W), drawn from the
    σ² of channel 0 back: its inputs are the 8 values x[n, 0, h, w], both examples and all
    four positions, through one μ."""
    x = tb.ValueArray(np.round(np.random.default_rng(0).normal(size=(2, 2, 2, 2)), 1).tolist())
    y, _, var = F.batch_norm_with_stats(x.named("x"))
    weights = np.arange(1.0, 17.0).reshape(2, 2, 2, 2)
    (tb.ValueArray(y) * weights).sum().backward()  # the grads shown: of L = Σ w·y
    # top to bottom: the 8 inputs side by side fit the column (left to right is 1759 px)
    save_graph(tb.draw(var.values[0, 0, 0, 0], rankdir="TB"), "spatial_bn_channel0.png")


def norm_family() -> None:
    """The GroupNorm paper's Figure 2: the four normalizations on an N × C × (H·W) block,
    the values that share one μ and σ² shaded. The shaded sets are not drawn by hand: for
    each norm, the entries x with ∂y[0, 0, 0]/∂x ≠ 0 (computed by tinybn's own functions
    and backward pass) are exactly those normalized together with the first entry."""
    n, c, h, w = 6, 6, 3, 2
    x = np.random.default_rng(0).normal(size=(n, c, h, w))
    norms = {
        "Batch Norm": lambda t: F.batch_norm(t),
        "Layer Norm": lambda t: F.layer_norm(t, normalized_ndim=3),
        "Instance Norm": lambda t: F.instance_norm(t),
        "Group Norm (2 channels a group)": lambda t: F.group_norm(t, c // 2),
    }
    fig = plt.figure(figsize=(7.5, 7.2))  # 2 × 2: laid out for the docs' column
    for i, (name, norm) in enumerate(norms.items()):
        leaf = Tensor(x, requires_grad=True)
        norm(leaf)[0, 0, 0, 0].backward()
        shared = (np.abs(leaf.grad) > 1e-12).reshape(n, c, h * w)
        ax = fig.add_subplot(2, 2, i + 1, projection="3d")
        colors = np.where(shared[..., None], [0.27, 0.51, 0.71, 0.95], [1.0, 1.0, 1.0, 0.25])
        ax.voxels(
            np.ones(shared.shape, dtype=bool), facecolors=colors, edgecolor=(0, 0, 0, 0.25), lw=0.3
        )
        ax.set_xlabel("N", labelpad=-12)
        ax.set_ylabel("C", labelpad=-12)
        ax.set_zlabel("H, W", labelpad=-12)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=22, azim=-52)
        ax.set_title(f"{name}\n{int(shared.sum())} values share μ, σ²", fontsize=10)
    fig.suptitle(
        "Which values are normalized together (shaded): N examples × C channels × H·W positions",
        fontsize=11,
    )
    save_plot(fig, "norm_family.png")


def plots() -> None:
    gradient_graphs()
    norm_family()
    sigmoid_regime()
    gradient_routes()
    training_curves()
    speed()


# -- demos --------------------------------------------------------------------------------------


def run_demo(name: str) -> None:
    """Run one demo into a temporary folder; keep its PNGs and the table it printed."""
    module = importlib.import_module(f"tinybn.demos.{name}")
    with tempfile.TemporaryDirectory() as out:
        printed = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            module.run(Path(out), scale="default", seed=0)
        seconds = time.perf_counter() - start
        for png in sorted(Path(out).glob("*.png")):
            target = FIGURES / (png.name if png.name.startswith(name) else f"{name}_{png.name}")
            shutil.copyfile(png, target)
            small_png(target)
            print(f"wrote {target.relative_to(ROOT)}")
    table = [line for line in printed.getvalue().splitlines() if not line.startswith("wrote ")]
    header = f"# tinybn demo {name}   (default scale, seed 0)"
    path = FIGURES / f"{name}.txt"
    path.write_text(header + "\n" + "\n".join(table).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}   ({seconds:.0f} s)")


def _cell_starts(line: str) -> list[int]:
    """Where each cell of an aligned text row begins: column 0 and after every 2+ spaces."""
    return [0] + [m.end() for m in re.finditer(r"  +(?=\S)", line.rstrip())]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def text_tables(text: str) -> list[str | list[list[str]]]:
    """Split a demo's printed output into prose lines and tables (lists of rows of cells).

    The demos print aligned tables (``print_table``: cells padded, 2+ spaces apart). A line
    is a row of the table above it when its cells start where that table's columns start;
    a line whose own cells start elsewhere, followed by such a row, opens a new table; a
    line of one cell is prose."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    parts: list[str | list[list[str]]] = []
    starts: list[int] = []
    for index, line in enumerate(lines):
        own = _cell_starts(line)
        following = _cell_starts(lines[index + 1]) if index + 1 < len(lines) else []
        if line.startswith(" "):  # an indented note under a table: prose
            starts = []
            parts.append(line.rstrip())
        elif len(own) >= 2 and starts and set(own) <= set(starts) and isinstance(parts[-1], list):
            parts[-1].append(_cells(line, starts))
        elif len(own) >= 2 and len(following) >= 2 and set(following) <= set(own):
            starts = own
            parts.append([_cells(line, starts)])
        else:
            starts = []
            parts.append(line.rstrip())
    return parts


def _cells(line: str, starts: list[int]) -> list[str]:
    bounds = [*starts, len(line)]
    return [line[a:b].strip() for a, b in zip(bounds, bounds[1:])]


def markdown_table(rows: list[list[str]]) -> str:
    """A demo table as markdown that fits the page column: as printed when it has at most
    four columns or more rows than columns, otherwise turned on its side (one column per
    model, one row per measure), so a wide table becomes a tall one whose cells wrap."""
    header, *body = rows
    if len(header) > 4 and len(header) > len(body) + 1:
        # the first column names the row; so does each next column without a digit in it
        # (bn_position: "sigmoid", "BN before act (z)")
        labels = 1
        while labels < len(header) - 1 and not any(re.search(r"\d", r[labels]) for r in body):
            labels += 1
        names = [" · ".join(cell for cell in row[:labels] if cell) for row in body]
        header, body = (
            [" · ".join(header[:labels]), *names],
            [
                [header[c].replace("_", " "), *(row[c] for row in rows[1:])]
                for c in range(labels, len(header))
            ],
        )
    else:
        header = [cell.replace("_", " ") for cell in header]
    line = lambda cells: "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in body)])


def demo_tables(name: str) -> Path:
    """docs/figures/<demo>.md: the demo's printed tables as markdown tables (its notes as
    text), from <demo>.txt: what the pages include, so a table never runs off the page."""
    text = (FIGURES / f"{name}.txt").read_text(encoding="utf-8")
    blocks: list[str] = []
    prose: list[str] = []  # consecutive notes, shown verbatim in one text block
    for part in [*text_tables(text), []]:
        if isinstance(part, list):
            if prose:
                blocks.append("```text\n" + "\n".join(prose) + "\n```")
                prose = []
            if part:
                blocks.append(markdown_table(part))
        elif part != f"{name} (default scale)":
            prose.append(part)
    path = FIGURES / f"{name}.md"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def tables() -> None:
    for name in DEMOS:
        demo_tables(name)


def demos() -> None:
    use_demo_process_settings()  # BLAS on one thread (and the Agg backend, set above)
    for name in DEMOS:
        run_demo(name)
    tables()


GROUPS = {"graphs": graphs, "plots": plots, "demos": demos, "tables": tables}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=sorted(GROUPS), action="append", help="build only this group (repeatable)"
    )
    args = parser.parse_args(argv)
    FIGURES.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in args.only or list(GROUPS):
        GROUPS[name]()
    print(f"figures in {FIGURES.relative_to(ROOT)}/ ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
