"""Speed: every cache, shortcut and fused kernel of tinybn, each justified by a benchmark.

The engines and layers are written to be read (the rule beside the op, as in micrograd);
where a hot path needs something faster they make one call into this package:

- ``paths``: the engines' shortcuts — the chain-shaped backward order, the scalar engine's
  unary/binary chain rule, cached 0-d scalars, grads adopted without a copy, ``Module``'s
  plain attributes.
- ``kernels``: fused Tensor kernels, one graph node each with the backward in closed form —
  batch norm (the registered fast path of ``functional.batch_norm``, see
  ``kernels.batch_norm_with_stats``), linear, the losses. Under ``create_graph`` each defers
  to its composed source, so second derivatives are the composed graph's.
- ``per_channel``: per-channel sums and arithmetic on (N, C, ...) arrays, tuned for numpy.

Each function's docstring names the line of ``python -m benchmarks`` (benchmarks/README.md)
that it moves. Removing any of them changes times, never results: the tests check each fast
path against the plain code it replaces. (``kernels`` is imported on its own — it builds on
``tinybn.tensor``, which itself uses ``paths``.)
"""

from tinybn.fast.paths import (
    chain_order,
    float_pushes,
    mirror_attribute,
    needs_grad,
    push_array_grads,
    scalar,
)

__all__ = [
    "chain_order",
    "float_pushes",
    "mirror_attribute",
    "needs_grad",
    "push_array_grads",
    "scalar",
]
