"""Each op's local derivative, in words: what ``backward_steps`` prints beside the numbers.

The rules are written in the op's own symbols: ``{u}`` and ``{v}`` stand for the op's first
and second input, and ``backward_steps`` fills in letters that no label of the graph uses
(``∂(u·v)/∂u = v``, or ``∂(p·q)/∂p = q`` when the graph has a node called u). An n-ary
reduction's inputs are ``{u}ᵢ``. For Tensors, G is the incoming gradient dL/d(out), in the
output's shape. The arithmetic itself is each engine's ``pushes``; this is only its name.
"""

from __future__ import annotations

from collections.abc import Iterable

SCALAR_RULES: dict[str, tuple[str, ...]] = {
    "+": ("∂({u} + {v})/∂{u} = 1", "∂({u} + {v})/∂{v} = 1"),
    "-": ("∂({u} − {v})/∂{u} = 1", "∂({u} − {v})/∂{v} = −1"),
    "*": ("∂({u}·{v})/∂{u} = {v}", "∂({u}·{v})/∂{v} = {u}"),
    "/": ("∂({u}/{v})/∂{u} = 1/{v}", "∂({u}/{v})/∂{v} = −{u}/{v}²"),
    "neg": ("∂(−{u})/∂{u} = −1",),
    "relu": ("∂ relu({u})/∂{u} = 1 if {u} > 0 else 0",),
    "tanh": ("∂ tanh({u})/∂{u} = 1 − tanh²({u})",),
    "sigmoid": ("∂ σ({u})/∂{u} = σ({u})·(1 − σ({u}))",),
    "exp": ("∂ e^{u}/∂{u} = e^{u}",),
    "log": ("∂ ln({u})/∂{u} = 1/{u}",),
    "sqrt": ("∂ √{u}/∂{u} = 1/(2√{u})",),
    "abs": ("∂ |{u}|/∂{u} = sign({u})",),
    "clip": ("∂ clip({u})/∂{u} = 1 inside [min, max], else 0",),
}

# Tensor ops whose rule is more than an elementwise derivative times G
TENSOR_RULES: dict[str, tuple[str, ...]] = {
    "+": (
        "∂({u} + {v})/∂{u} = 1: G, summed over broadcast axes",
        "∂({u} + {v})/∂{v} = 1: G, summed",
    ),
    "-": (
        "∂({u} − {v})/∂{u} = 1: G, summed over broadcast axes",
        "∂({u} − {v})/∂{v} = −1: −G, summed",
    ),
    "*": (
        "∂({u}·{v})/∂{u} = {v}: G·{v}, summed over broadcast axes",
        "∂({u}·{v})/∂{v} = {u}: G·{u}, summed",
    ),
    "/": (
        "∂({u}/{v})/∂{u} = 1/{v}: G/{v}, summed over broadcast axes",
        "∂({u}/{v})/∂{v} = −{u}/{v}²: summed",
    ),
    "@": ("∂({u}@{v})/∂{u}: G @ {v}ᵀ", "∂({u}@{v})/∂{v}: {u}ᵀ @ G"),
    "sum": ("∂(Σ {u}ᵢ)/∂{u}ᵢ = 1: G copied back over the summed axes",),
    "mean": ("∂(mean {u}ᵢ)/∂{u}ᵢ = 1/n: G/n copied back over the averaged axes",),
    "var": ("∂ var/∂{u}ᵢ = 2({u}ᵢ − mean)/(n − correction)",),
    "max": ("∂ max/∂{u}ᵢ = 1 at the maximum (ties share it equally), else 0",),
    "reshape": ("G reshaped back to {u}'s shape",),
    "transpose": ("G transposed back",),
    "index": ("G scattered back into a zero array of {u}'s shape",),
    "where": ("G where the condition holds, else 0", "G where it does not hold, else 0"),
    "maximum": ("G where a > b, G/2 at ties, else 0", "G where b > a, G/2 at ties, else 0"),
    "minimum": ("G where a < b, G/2 at ties, else 0", "G where b < a, G/2 at ties, else 0"),
    "min": ("d min/daᵢ = 1 at the minimum (ties share it equally), else 0",),
    "logsumexp": ("d logΣexp(a)/daᵢ = softmax(a)ᵢ: G·softmax over the reduced axes",),
    "expand": ("G summed over the copies back to a's shape",),
    "rsqrt": ("d(a^(−1/2))/da = −½·a^(−3/2)",),
    "leaky_relu": ("1 where a > 0, else the negative slope",),
    "conv2d": (
        "full correlation of G with the flipped kernels (col2im of G @ W)",
        "Σ over N and positions of G × input patches",
        "Σ of G over N, H, W",
    ),
    "max_pool2d": ("G routed to the max of each window (the first one at ties)",),
    "avg_pool2d": ("G/k² spread over each window",),
    "pad reflect": ("G of each padded position added to the input value it copies",),
    "pad replicate": ("G of each padded position added to the input value it copies",),
    "pad circular": ("G of each padded position added to the input value it copies",),
    # the fused kernels (tinybn.fast.kernels): one node each
    "batch_norm": (
        "closed form: γ/√(σ² + ε) · (G − mean(G) − x̂·mean(G·x̂))",
        "Σ over the batch of G·x̂",
        "Σ over the batch of G",
    ),
    "linear": ("∂({u}@Wᵀ + b)/∂{u}: G @ W", "∂/∂W: Gᵀ @ {u}", "∂/∂b: Σ over the batch of G"),
    "cross_entropy": ("(softmax({u}) − one_hot(targets))/N",),
    "bce": ("({u} − y)/({u}(1 − {u}))/n", "(ln(1 − {u}) − ln {u})/n"),
    "bce_with_logits": ("(σ({u}) − y)/n", "−{u}/n"),
}

# letters for an op's inputs, tried in this order: the first pair no label of the graph uses
SYMBOL_PAIRS = (("u", "v"), ("p", "q"), ("s", "t"), ("a", "b"), ("g", "h"), ("ξ", "ζ"))


def symbols_for(names: Iterable[str]) -> tuple[str, str]:
    """Two letters for a rule's inputs that none of ``names`` (the graph's labels) uses."""
    taken = set(names)
    for pair in SYMBOL_PAIRS:
        if not taken & set(pair):
            return pair
    return ("in₁", "in₂")


def local_rule(
    op: str,
    position: int,
    n_parents: int,
    tensor: bool = False,
    symbols: tuple[str, str] = ("u", "v"),
) -> str:
    """The derivative of an op's output with respect to its input number ``position``."""
    u, v = symbols
    return _template(op, position, n_parents, tensor).format(u=u, v=v)


def _template(op: str, position: int, n_parents: int, tensor: bool) -> str:
    if tensor and op in TENSOR_RULES:
        rules = TENSOR_RULES[op]
        return rules[min(position, len(rules) - 1)]
    if op.startswith("**"):
        k = op[2:]
        return f"∂({{u}}^{k})/∂{{u}} = {k}·{{u}}^({k} − 1)"
    if op.endswith("**"):  # number ** u
        c = op[:-2]
        return f"∂({c}^{{u}})/∂{{u}} = {c}^{{u}}·ln {c}"
    if op.startswith("astype"):
        return "G cast back to {u}'s dtype"
    if op == "sum":
        return "∂(Σ {u}ᵢ)/∂{u}ᵢ = 1"
    if op == "mean":
        return f"∂(mean {{u}}ᵢ)/∂{{u}}ᵢ = 1/n = 1/{n_parents}"
    if op == "concat":
        return f"G's slice for input {position + 1}"
    if op == "stack":
        return f"G[{position}] along the stacked axis"
    found = SCALAR_RULES.get(op)
    if found is None:
        return f"∂ {op}/∂ input {position + 1}"
    return found[min(position, len(found) - 1)]


def operand_name(position: int, n_parents: int, symbols: tuple[str, str] = ("u", "v")) -> str:
    """How the rule text calls input ``position``: u, v, or uᵢ (i counted from 1)."""
    if n_parents <= 2 and position < 2:
        return symbols[position]
    return f"{symbols[0]}{_subscript(position + 1)}"


def _subscript(number: int) -> str:
    return str(number).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
