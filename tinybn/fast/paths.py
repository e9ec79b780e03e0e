"""Shortcuts the engines take on their hot paths: each does what the plain code beside the
op does, in fewer Python or numpy calls.

The engines (``autograd``, ``scalar``, ``tensor``, ``nn``) keep the plain version and make
a one-line call into this module where the speed matters; each function here says the
benchmark line that justifies it (``python -m benchmarks --cases ... --threads 1``; numbers
from benchmarks/README.md or the run named). Each computes what the plain code would:
replacing a call by that code changes times, never results (tests/test_tensor.py checks
``chain_order``, ``scalar`` and ``_made_for_one`` against it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

# -- graph walking (autograd) ----------------------------------------------------------------


def chain_order(root: Any) -> list[Any] | None:
    """The nodes with parents below ``root`` (itself included), parents first, if they form a
    chain — each has at most one parent that has parents of its own, as in the graph of a
    Sequential of layers — else None (``autograd.topological_order`` then does the work).

    On a chain the topological order is simply the path from the root down, found without a
    seen-set and a stack, in a third of the time.

    Benchmark: small_step, with ``scalar`` and ``Module``'s plain attributes below,
    0.64× → 0.48–0.49× PyTorch (benchmarks/README.md, "Small steps").
    """
    path = []
    node = root
    while node is not None:
        path.append(node)
        below = None
        for parent in node._parents:
            if parent._parents and parent is not below:
                if below is not None:
                    return None  # a second parent with parents: not a chain
                below = parent
        node = below
    path.reverse()
    return path


# -- the scalar engine's chain rule (Value.pushes) ----------------------------------------


def float_pushes(node: Any, grad: float) -> list[tuple[Any, Any]]:
    """``Value.pushes`` of a unary or binary node (nearly every node) for a float grad,
    without the list comprehensions of the general n-ary code.

    Benchmark: scalar_bn 32×8 and scalar_mlp (every interior node goes through here once per
    backward pass; benchmarks/README.md, "Scalar engine").
    """
    parents = node._parents
    if len(parents) == 1:
        (a,) = parents
        (local,) = node._rule(node.data, (a.data,))
        return [(a, local * grad)]
    a, b = parents
    local_a, local_b = node._rule(node.data, (a.data, b.data))
    return [(a, local_a * grad), (b, local_b * grad)]


# -- the Tensor engine's nodes and grads -----------------------------------------------------


@lru_cache(maxsize=64, typed=True)
def scalar(value: float, dtype: np.dtype) -> Any:
    """``value`` for arithmetic with arrays of ``dtype``: a cached, read-only 0-d array of that
    dtype if it is floating, else the number itself (numpy's own promotion, e.g. bool → int).

    numpy pairs a small array with a 0-d array of its own dtype about twice as fast as with a
    Python number, whose type it resolves again on every call; the result is the same as with
    the Python number (cast to the array's dtype either way).

    Benchmark: small_step (ReLU, BCE and the running-statistics update use it), with
    ``chain_order`` above: 0.64× → 0.48–0.49× PyTorch (benchmarks/README.md, "Small steps").
    """
    if np.dtype(dtype).kind != "f":
        return value
    array = np.array(value, dtype=dtype)
    array.flags.writeable = False
    return array


def needs_grad(parents: tuple[Any, ...]) -> bool:
    """``any(parent.requires_grad for parent in parents)`` as a plain loop: this runs for every
    Tensor op, and for one or two parents the generator's setup costs more than the test.

    Benchmark: op_overhead (4×4, per op) — 3.1 µs per op against PyTorch's 7.0 µs
    (benchmarks/README.md, "Tensor engine overhead per op").
    """
    for parent in parents:
        if parent.requires_grad:
            return True
    return False


def push_array_grads(incoming: np.ndarray | None, pushes: list[tuple[Any, np.ndarray]]) -> None:
    """``parent._accumulate_grad(amount)`` for each of a Tensor node's ``pushes``, except that a
    first grad nothing else will modify is taken as it is, without a copy: an interior node's
    (only its own rule reads it), or an array the rule has just made for this leaf alone
    (``_made_for_one``; a leaf's grad is otherwise copied, as the optimizer updates it in
    place). Done here rather than in ``_accumulate_grad``: one call fewer per edge.

    Benchmark: mlp_bn_step — the 256×784 dW is adopted instead of copied ("Leaf grads without
    a copy", benchmarks/README.md); op_overhead for the interior grads.
    """
    for parent, amount in pushes:
        if parent.grad is None and (parent._parents or _made_for_one(amount, incoming, pushes)):
            dtype = parent.data.dtype
            parent.grad = amount if amount.dtype == dtype else amount.astype(dtype)
        else:
            parent._accumulate_grad(amount)


def _made_for_one(grad: np.ndarray, incoming: np.ndarray | None, pushes: list) -> bool:
    """True if a backward rule made ``grad`` just now for one parent alone: it owns its memory
    (not a view), is not the grad that came in, and is not also handed to another parent.
    (Rules return the incoming grad, views of it, or arrays they have just computed.)"""
    if grad.base is not None or grad is incoming:
        return False
    # a plain loop: sum() over a generator costs three times as much for two or three grads
    count = 0
    for _, g in pushes:
        if g is grad:
            count += 1
    return count == 1


# -- nn.Module ---------------------------------------------------------------------------


def mirror_attribute(module: Any, name: str, value: Any) -> None:
    """Keep a registered parameter, buffer or submodule also as a plain instance attribute, so
    that reading ``self.weight`` in ``forward`` is an ordinary lookup (~30 ns). Without it,
    every such read first fails and then goes through ``Module.__getattr__`` (~500 ns; a
    training step of a small model makes ~16 of them). The registries stay the record;
    ``Module._file`` and ``Module.__delattr__`` keep the two in step.

    Benchmark: small_step, with ``chain_order`` and ``scalar`` above: 0.64× → 0.48–0.49×
    PyTorch (benchmarks/README.md, "Small steps").
    """
    module.__dict__[name] = value
