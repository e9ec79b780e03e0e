"""One test helper for every op: outputs AND gradients against references (tinygrad style).

``check_op(fn, inputs, reference, grad_reference=...)`` runs ``fn`` on the tinybn engine
that fits the inputs — plain numbers → scalar ``Value`` leaves; arrays → float64
``Tensor`` leaves — and asserts:

1. the output equals ``reference(*inputs)`` (numpy / math, written independently);
2. the gradients equal ``grad_reference(*inputs, dout)`` when given (a closed form, or
   another engine), where ``dout`` = ∂L/∂output of the weighted loss L = Σ dout ⊙ output;
3. the gradients equal central finite differences (``tinybn.check``), unless ``fd=False``.

A weighted loss, never a plain Σ output: Σ of batch-norm outputs has zero gradient.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterator, Sequence
from numbers import Real
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from tinybn import Tensor, Value
from tinybn.check import check_grad, check_tensor_grad


def check_op(
    fn: Callable,
    inputs: Sequence,
    reference: Callable | None = None,
    *,
    grad_reference: Callable | None = None,
    fd: bool = True,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    fd_atol: float = 1e-6,
    fd_rtol: float = 1e-4,
    seed: int = 0,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Assert fn's output and gradients; return (output data, grads of the inputs).

    Args:
        fn: the tinybn computation; takes one Value (scalars) or Tensor (arrays) per input.
        inputs: numbers (scalar engine) or arrays (Tensor engine, float64).
        reference: numpy function of the raw inputs → the expected output.
        grad_reference: function of (*inputs, dout) → expected grad of each input.
        fd: also compare with finite differences.
    """
    scalar = all(isinstance(x, Real) for x in inputs)
    if scalar:
        leaves = [Value(float(x)) for x in inputs]
        out = fn(*leaves)
        assert isinstance(out, Value), f"expected a Value, got {type(out).__name__}"
        dout = 1.0
        out.backward()
        out_data = np.asarray(out.data)
        grads = [np.asarray(leaf.grad) for leaf in leaves]
        raw = [float(x) for x in inputs]
    else:
        raw = [np.array(x, dtype=np.float64) for x in inputs]
        leaves = [Tensor(a.copy(), requires_grad=True) for a in raw]
        out = fn(*leaves)
        assert isinstance(out, Tensor), f"expected a Tensor, got {type(out).__name__}"
        assert out.dtype == np.float64, f"float64 inputs gave a {out.dtype} output"
        # the same weights check_tensor_grad uses, so both check the same loss
        dout = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
        out.backward(dout)
        out_data = out.data
        grads = [
            leaf.grad if leaf.grad is not None else np.zeros_like(a) for leaf, a in zip(leaves, raw)
        ]
        for grad, a in zip(grads, raw):
            assert grad.shape == a.shape, f"grad shape {grad.shape} != input shape {a.shape}"

    if reference is not None:
        expected = np.asarray(reference(*raw), dtype=np.float64)
        assert out_data.shape == expected.shape, f"shape {out_data.shape} != {expected.shape}"
        np.testing.assert_allclose(out_data, expected, atol=atol, rtol=rtol, err_msg="output")
    if grad_reference is not None:
        expected_grads = grad_reference(*raw, dout)
        assert len(expected_grads) == len(grads)
        for i, (got, want) in enumerate(zip(grads, expected_grads)):
            np.testing.assert_allclose(
                got, want, atol=atol, rtol=rtol, err_msg=f"grad of input {i}"
            )
    if fd:
        if scalar:
            check_grad(fn, raw, atol=fd_atol, rtol=fd_rtol)
        else:
            check_tensor_grad(fn, raw, atol=fd_atol, rtol=fd_rtol, seed=seed)
    return out_data, grads


def torch_reference(torch_fn: Callable) -> dict[str, Callable]:
    """``reference`` and ``grad_reference`` for ``check_op`` from a PyTorch function.

    ``torch_fn`` takes one float64 torch tensor per input (each requiring grad) and returns
    a tensor; the reference output is its value and the reference grads are those of the
    weighted loss Σ dout ⊙ output, i.e. ``out.backward(dout)``. Usage:
    ``check_op(fn, inputs, **torch_reference(lambda x, w: torch.nn.functional.conv2d(x, w)))``.
    """
    import torch

    def run(*raw: np.ndarray) -> tuple[Any, list]:
        leaves = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in raw]
        return torch_fn(*leaves), leaves

    def reference(*raw: np.ndarray) -> np.ndarray:
        return run(*raw)[0].detach().numpy()

    def grad_reference(*args: Any) -> list[np.ndarray]:
        *raw, dout = args
        out, leaves = run(*raw)
        out.backward(torch.as_tensor(np.asarray(dout, dtype=np.float64)).reshape(out.shape))
        return [
            leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape) for leaf in leaves
        ]

    return {"reference": reference, "grad_reference": grad_reference}


def check_module(module: Any, torch_module: Any, x: np.ndarray, **tolerances: Any) -> None:
    """``check_op`` for a layer against its PyTorch twin: x and every parameter are the
    leaves, so the output and the grads of x AND of each parameter are compared with torch
    (``torch.func.functional_call`` of ``torch_module`` with the same parameters and buffers,
    in the same train/eval mode) and with finite differences. Both modules run in float64;
    ``torch_module``'s own initial values are never used.

    Args:
        module: a tinybn ``nn.Module``; its current parameters and buffers are the values.
        torch_module: the ``torch.nn`` twin (same parameter and buffer names).
        x: the input, shaped as the layer expects.
        tolerances: passed to ``check_op`` (atol, rtol, fd_atol, ...).
    """
    import torch

    module.double()
    torch_module.double().train(module.training)
    names = [name for name, _ in module.named_parameters()]
    slots = []  # (owning module, attribute) of each parameter: "0.weight" → (model[0], "weight")
    for name in names:
        owner = module
        *path, attribute = name.split(".")
        for step in path:
            owner = owner._modules[step]
        slots.append((owner, attribute))
    buffers = {
        name: np.array(buffer.data, dtype=np.float64 if buffer.dtype.kind == "f" else buffer.dtype)
        for name, buffer in module.named_buffers()
        if buffer is not None
    }

    def put(owner: Any, attribute: str, param: Any) -> None:
        # in the registry and (where a module keeps one) its plain-attribute copy
        owner._parameters[attribute] = param
        if attribute in vars(owner):
            vars(owner)[attribute] = param

    def ours(x: Tensor, *params: Tensor) -> Tensor:
        saved = [owner._parameters[attribute] for owner, attribute in slots]
        try:
            for (owner, attribute), param in zip(slots, params):
                put(owner, attribute, param)  # the leaf itself, so that its grad is kept
            return module(x)
        finally:
            for (owner, attribute), param in zip(slots, saved):
                put(owner, attribute, param)

    def theirs(x: Any, *params: Any) -> Any:
        state = {name: torch.tensor(value) for name, value in buffers.items()}
        state.update(zip(names, params))
        return torch.func.functional_call(torch_module, state, (x,))

    values = [np.array(p.data, dtype=np.float64) for _, p in module.named_parameters()]
    check_op(ours, [x, *values], **torch_reference(theirs), **tolerances)


def json_leaves(value: Any) -> Iterator[Any]:
    """Every leaf (number, string, bool, null) of a JSON value, depth first."""
    if isinstance(value, dict):
        for v in value.values():
            yield from json_leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_leaves(v)
    else:
        yield value


def run_demo_quick(module: ModuleType, out: Path, **options: Any) -> dict:
    """Run a demo's ``run`` at quick scale (seed 0) into ``out`` and return its results.json.

    Asserts that ``run`` returned a dict with the results.json's keys and that the results
    hold numbers, all of them finite. ``options``: the demo's own options (``mnist_dir``...).
    """
    returned = module.run(out, scale="quick", seed=0, **options)
    results = json.loads((out / "results.json").read_text())
    assert isinstance(returned, dict) and set(returned) == set(results)
    numbers = [v for v in json_leaves(results) if isinstance(v, (int, float))]
    assert numbers and all(math.isfinite(v) for v in numbers)
    return results


def garbage_after_building(build: Callable[[], Any], value_class: type) -> int:
    """How many value_class nodes only the cycle collector could free after a graph is dropped.

    Counting only the nodes (not everything the collector finds) keeps the measure about
    the graph: finalizers of earlier tests' objects (figures, progress bars) can leave
    cycles of their own behind.
    """
    while gc.collect():  # a finalizer run by one pass can free more in the next
        pass
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds in gc.garbage
    try:
        build()
        gc.collect()
        return sum(isinstance(obj, value_class) for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
