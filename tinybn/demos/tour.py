"""The tour: batch norm of the lecture's worked example, built from scalars and shown.

Ten samples of two features (the lecture notes' x1 and x2) go through
``tinybn.functional.batch_norm`` on scalar Values, so every step of Ioffe & Szegedy's
Algorithm 1 is a node. The tour prints μ, σ² and x̂ per feature, steps backward one
node at a time, renders the graph with γ's and β's gradient paths highlighted, and
splits one input's gradient into its three routes (through x̂, μ and σ²). It also writes
``explorer.html``: the same graph in a web page that runs backward one step per click.

The loss is a weighted sum L = Σᵢⱼ wᵢ·yᵢⱼ with wᵢ = i + 1. (A plain Σ y would make the
grads of γ and x exactly zero, because Σᵢ x̂ᵢ = 0 for every feature.) Then, in closed
form, ∂L/∂βⱼ = Σᵢ wᵢ = 55 and ∂L/∂γⱼ = Σᵢ wᵢ·x̂ᵢⱼ.

Run: ``tinybn tour`` (or ``python -m tinybn.demos.tour --out DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tinybn as tb
from tinybn import Value
from tinybn import functional as F
from tinybn.autograd import topological_order
from tinybn.demos._common import demo_parser, run_settings, scale_name, write_results
from tinybn.viz import GraphvizNotFoundError, render
from tinybn.viz.nodes import index, stage

# the lecture notes' worked example: two features of ten samples
X1 = [33, 72, 40, 104, 52, 56, 89, 24, 52, 73]
X2 = [9, 8, 7, 10, 5, 8, 7, 9, 8, 7]


@dataclass
class WorkedExample:
    """The batch-norm graph of the worked example and the nodes the tour talks about."""

    x: list[list[Value]]  # 10 rows × 2 features
    gamma: list[Value]
    beta: list[Value]
    mean: Any  # [[μ₀, μ₁]]: the μ nodes, in the form of x (nested lists)
    var: Any  # [[σ²₀, σ²₁]]: the σ² nodes
    y: list[list[Value]]
    weights: list[float]  # wᵢ = i + 1
    loss: Value

    def nodes_of_role(self, name: str) -> list[list[Value]]:
        """The graph's nodes labelled ``name[i,j]``, as rows × features."""
        found = [n for n in topological_order(self.loss) if stage(n) == name and index(n)]
        rows = 1 + max(index(n)[0] for n in found)
        table: list[list[Value]] = [[] for _ in range(rows)]
        for node in sorted(found, key=index):
            table[index(node)[0]].append(node)
        return table


def worked_example() -> WorkedExample:
    """Build x (leaves "x[i,j]"), γ = 1, β = 0, y = BN(x), and L = Σ wᵢ·yᵢⱼ."""
    x = tb.values([[a, b] for a, b in zip(X1, X2)], "x")
    gamma = tb.values([1.0, 1.0], "γ")
    beta = tb.values([0.0, 0.0], "β")
    y, mean, var = F.batch_norm_with_stats(x, gamma, beta)
    weights = [float(i + 1) for i in range(len(y))]
    terms = [
        (Value(weights[i], label=f"w[{i},{j}]") * v).named(f"w·y[{i},{j}]")
        for i, row in enumerate(y)
        for j, v in enumerate(row)
    ]
    loss = Value.sum(terms).named("L")
    return WorkedExample(x, gamma, beta, mean, var, y, weights, loss)


def print_normalization(example: WorkedExample) -> None:
    """μ, σ² and x̂ of each feature, as the lecture computes them by hand."""
    xhat = example.nodes_of_role("x̂")
    for j, column in enumerate((X1, X2)):
        mu, var = example.mean[0][j], example.var[0][j]
        print(f"feature x{j + 1} = {column}")
        print(f"  μ  = (1/m) Σ xᵢ        = {mu.data:.4f}")
        print(f"  σ² = (1/m) Σ (xᵢ − μ)² = {var.data:.4f}")
        print("  x̂  = (x − μ)/√(σ² + ε) = [" + ", ".join(f"{r[j].data:.3f}" for r in xhat) + "]")


def write_backward_steps(example: WorkedExample, out: Path) -> Path:
    """Run backward one node at a time; write every step to a file, print an excerpt."""
    steps = [step.text(max_parents=None) for step in tb.backward_steps(example.loss)]
    path = out / "backward_steps.txt"
    path.write_text("\n\n".join(steps) + "\n", encoding="utf-8")
    print(f"\nbackward, one node at a time ({len(steps)} steps; the first three and the last):")
    for text in [*steps[:3], "…", steps[-1]]:
        print(_shorten(text, 6))
    return path


def _shorten(text: str, max_lines: int) -> str:
    lines = text.splitlines()
    if len(lines) <= max_lines:
        return text
    return "\n".join(lines[:max_lines] + [f"    … ({len(lines) - max_lines} more lines in file)"])


def render_bn_graph(out: Path, example: WorkedExample | None = None) -> dict[str, Path]:
    """Render the worked example's graph (PNG and SVG, DOT source beside them).

    Without Graphviz's ``dot`` the .gv files are still written and the install hint
    printed. Returns {"png", "svg", "params_png", "dot", "params_dot"} → path, for the files
    written ("png", "svg", "params_png" are missing when ``dot`` is).
    """
    if example is None:
        example = worked_example()
        example.loss.backward()
    whole = tb.draw(example.loss, max_nodes=400, collapse=False)
    parameters = [*example.gamma, *example.beta]
    params_only = tb.draw(
        example.loss, between=parameters, with_inputs=True, max_nodes=400, collapse=False
    )
    jobs = [
        ("png", whole, "bn_graph.png"),
        ("svg", whole, "bn_graph.svg"),
        ("params_png", params_only, "bn_graph_gamma_beta.png"),
    ]
    paths: dict[str, Path] = {}
    dot_missing = False
    for key, graph, filename in jobs:
        try:
            paths[key] = render(graph, out / filename)
        except GraphvizNotFoundError as error:
            if not dot_missing:
                print(f"\nnote: {error}")
            dot_missing = True
        source = (out / filename).with_suffix(".gv")
        paths[key.replace("png", "dot").replace("svg", "dot")] = source
    return paths


def write_explorer(path: Path, example: WorkedExample | None = None) -> Path | None:
    """The worked example's explorer (``tinybn.explore``): one HTML page that steps through
    backward in a browser. None (and the install hint printed) when ``dot`` is missing."""
    if example is None:
        example = worked_example()
    try:
        # 304 boxes and ops unfolded: above draw's default 300, so allow the whole graph
        return tb.explore(example.loss, max_nodes=400).save(path)
    except GraphvizNotFoundError as error:
        print(f"\nnote: no explorer page: {error}")
        return None


def print_gradients(example: WorkedExample) -> None:
    """γ and β grads beside their closed forms: ∂L/∂βⱼ = Σ wᵢ, ∂L/∂γⱼ = Σ wᵢ x̂ᵢⱼ."""
    xhat = example.nodes_of_role("x̂")
    print("\ngradients of the parameters (graph vs closed form):")
    for j in range(2):
        closed_gamma = sum(w * row[j].data for w, row in zip(example.weights, xhat))
        print(
            f"  ∂L/∂γ[{j}] = {example.gamma[j].grad:.6f}   Σ wᵢ·x̂ᵢ = {closed_gamma:.6f}    "
            f"∂L/∂β[{j}] = {example.beta[j].grad:.6f}   Σ wᵢ = {sum(example.weights):.1f}"
        )


def run(out: Path, *, scale: str = "default", seed: int = 0, **options: Any) -> dict:
    """The tour into ``out``: print the worked example, write its graph, backward steps, tree
    and explorer page, then the lecture notes' Keras model (at quick scale whatever ``scale``:
    the tour takes seconds). Writes results.json (L, the files) and returns it."""
    args = run_settings(out, scale, seed, options)
    out = args.out

    example = worked_example()
    print("Batch norm, step by step, on the lecture's example (γ = 1, β = 0, ε = 1e-5):\n")
    print_normalization(example)
    print("\nloss L = Σᵢⱼ wᵢ·yᵢⱼ with wᵢ = i + 1 (not Σ y: that makes γ's and x's grads 0)")
    print(f"L = {example.loss.data:.6f}")

    steps_path = write_backward_steps(example, out)
    print_gradients(example)

    chosen = example.x[3][0]  # x = 104, the largest value of feature 1
    print(f"\nhow {chosen.label} (= {chosen.data:g}) got its gradient, route by route:")
    print(tb.contributions(chosen, example.loss))

    tree_path = out / "tree.txt"
    tree_path.write_text(tb.tree(example.loss, depth=12, max_lines=2000) + "\n", encoding="utf-8")
    paths = render_bn_graph(out, example)

    explorer_path = write_explorer(out / "explorer.html", example)

    print("\nfiles:")
    for path in [*paths.values(), steps_path, tree_path]:
        print(f"  wrote {path}")
    if explorer_path is not None:
        print(f"  wrote {explorer_path}  <- open it in a browser: step through backward")

    from tinybn.demos import placement  # the lecture notes' Keras model, with and without BN

    print(
        "\nthe lecture notes' Keras model on the placement data, with and without BN (quick scale):"
    )
    placement.run(out / "placement", scale="quick", seed=args.seed)  # prints its table
    files = [*paths.values(), steps_path, tree_path]
    if explorer_path is not None:
        files.append(explorer_path)
    results = {"demo": "tour", "loss": example.loss.data, "files": [str(f) for f in files]}
    write_results(out, results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = demo_parser("tour", "Batch norm of the worked example: graph, backward steps.")
    args = parser.parse_args(argv)
    run(args.out, scale=scale_name(args), seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
