"""Each op's local derivative, in words: what ``backward_steps`` prints beside the numbers.

A binary op's inputs are called a and b, a unary op's a, an n-ary reduction's vᵢ.
For Tensors, G is the incoming gradient dL/d(out), in the output's shape.
"""

from __future__ import annotations

SCALAR_RULES: dict[str, tuple[str, ...]] = {
    "+": ("d(a + b)/da = 1", "d(a + b)/db = 1"),
    "-": ("d(a − b)/da = 1", "d(a − b)/db = −1"),
    "*": ("d(a·b)/da = b", "d(a·b)/db = a"),
    "/": ("d(a/b)/da = 1/b", "d(a/b)/db = −a/b²"),
    "neg": ("d(−a)/da = −1",),
    "relu": ("d relu(a)/da = 1 if a > 0 else 0",),
    "tanh": ("d tanh(a)/da = 1 − tanh²(a)",),
    "sigmoid": ("d σ(a)/da = σ(a)·(1 − σ(a))",),
    "exp": ("d eᵃ/da = eᵃ",),
    "log": ("d ln(a)/da = 1/a",),
    "sqrt": ("d √a/da = 1/(2√a)",),
    "abs": ("d |a|/da = sign(a)",),
    "clip": ("d clip(a)/da = 1 inside [min, max], else 0",),
}

# Tensor ops whose rule is more than an elementwise derivative times G
TENSOR_RULES: dict[str, tuple[str, ...]] = {
    "+": ("d(a + b)/da = 1: G, summed over broadcast axes", "d(a + b)/db = 1: G, summed"),
    "-": ("d(a − b)/da = 1: G, summed over broadcast axes", "d(a − b)/db = −1: −G, summed"),
    "*": ("d(a·b)/da = b: G·b, summed over broadcast axes", "d(a·b)/db = a: G·a, summed"),
    "/": ("d(a/b)/da = 1/b: G/b, summed over broadcast axes", "d(a/b)/db = −a/b²: summed"),
    "@": ("d(A@B)/dA: G @ Bᵀ", "d(A@B)/dB: Aᵀ @ G"),
    "sum": ("d(Σ aᵢ)/daᵢ = 1: G copied back over the summed axes",),
    "mean": ("d(mean aᵢ)/daᵢ = 1/n: G/n copied back over the averaged axes",),
    "var": ("d var/daᵢ = 2(aᵢ − mean)/(n − correction)",),
    "max": ("d max/daᵢ = 1 at the maximum (ties share it equally), else 0",),
    "reshape": ("G reshaped back to a's shape",),
    "transpose": ("G transposed back",),
    "index": ("G scattered back into a zero array of a's shape",),
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
    # the fused kernel (tinybn.fused): one node for all of batch norm, inputs x, γ, β
    "batch_norm": (
        "closed form: γ/√(σ² + ε) · (G − mean(G) − x̂·mean(G·x̂))",
        "Σ over the batch of G·x̂",
        "Σ over the batch of G",
    ),
}


def local_rule(op: str, position: int, n_parents: int, tensor: bool = False) -> str:
    """The derivative of an op's output with respect to its input number ``position``."""
    if tensor and op in TENSOR_RULES:
        return TENSOR_RULES[op][position]
    if op.startswith("**"):
        k = op[2:]
        return f"d(a^{k})/da = {k}·a^({k} − 1)"
    if op.endswith("**"):  # number ** a
        c = op[:-2]
        return f"d({c}^a)/da = {c}^a·ln {c}"
    if op == "sum":
        return "d(Σ vᵢ)/dvᵢ = 1"
    if op == "mean":
        return f"d(mean vᵢ)/dvᵢ = 1/n = 1/{n_parents}"
    if op == "concat":
        return f"G's slice for input {position + 1}"
    if op == "stack":
        return f"G[{position}] along the stacked axis"
    rules = SCALAR_RULES.get(op)
    if rules is None:
        return f"d {op}/d input {position + 1}"
    return rules[min(position, len(rules) - 1)]


def operand_name(position: int, n_parents: int) -> str:
    """How the rule text calls input ``position``: a, b, or vᵢ."""
    if n_parents <= 2 and position < 2:
        return "ab"[position]
    return f"v{position + 1}"
