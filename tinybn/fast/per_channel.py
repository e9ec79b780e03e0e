"""Per-channel arithmetic on (N, C[, ...]) arrays, tuned for numpy: what the fused batch norm
(``kernels.batch_norm``) and the fused linear's Σ dy run on.

Each helper computes what one numpy line would (``a − row``, ``Σ a`` over the batch, ``Σ a·b``);
the docstrings say which shapes take another route and the benchmark line that justifies it
(``python -m benchmarks --cases bn_op --threads 1``, benchmarks/README.md).
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np

# Arrays at least this large take the long-row path of ``per_channel``; below it, building
# the repeated row costs more than it saves (measured: 10–20% faster from 2¹⁷ values up,
# 5–10% slower at 2¹⁵–2¹⁶)
_LONG_ROWS_FROM = 1 << 17
_LONG_ROW = 8192  # values per inner loop on that path


def per_channel(op: np.ufunc, a: np.ndarray, row: np.ndarray, out: np.ndarray | None = None):
    """``op(a, row)`` into ``out`` (a new array if None), ``row`` holding one value per channel.

    Args:
        op: a binary ufunc (np.subtract, np.multiply, ...).
        a: (N, C) or (N, C, L). row: (1, C) or (1, C, 1). out: like ``a``, may be ``a``.

    Speed: numpy runs its inner loop once per sample when one operand is broadcast over the
    batch, and each run has a fixed cost, large beside 64 or 512 values of arithmetic. For
    a large C-contiguous array, view it as N/k rows of k whole samples each (no copy) and
    repeat the per-channel values k times to match, so that each run covers 8,192 values.
    The samples that do not fill a whole long row (N not divisible by k) broadcast as usual.

    Benchmark: bn_op 4096×64, tinybn/hand numpy 0.56–0.58× → 0.49× (paired runs, same load);
    building the row by assignment instead of ``np.broadcast_to(...).reshape(...)``: 6–9 µs →
    ~1.5 µs per call, six calls per forward + backward (benchmarks/README.md).
    """
    n = a.shape[0]
    per_sample = a.size // n
    k = _LONG_ROW // per_sample if a.size >= _LONG_ROWS_FROM else 0
    if k < 2 or not (a.flags.c_contiguous and (out is None or out.flags.c_contiguous)):
        return op(a, row, out=out)
    if out is None:
        out = np.empty(a.shape, np.result_type(a, row))
    # the row repeated k times, by assignment into a fresh buffer: several µs cheaper than
    # reshaping np.broadcast_to(row, ...), which copies through a Python-level wrapper
    long_row = np.empty((k,) + a.shape[1:], row.dtype)
    long_row[...] = row
    width = k * per_sample
    whole = n - n % k  # samples in whole long rows
    op(
        a[:whole].reshape(-1, width),
        long_row.reshape(1, width),
        out=out[:whole].reshape(-1, width),  # a view: out is C-contiguous
    )
    if whole < n:
        op(a[whole:], row, out=out[whole:])
    return out


_LONG_ROW_OPS = tuple(partial(per_channel, op) for op in (np.subtract, np.multiply, np.add))
_PLAIN_OPS = (np.subtract, np.multiply, np.add)


def per_channel_ops(a: np.ndarray) -> tuple:
    """(subtract, multiply, add) for ``a`` and a per-channel row: the long-row versions
    for large arrays, numpy's own ufuncs (no Python call in between) for small ones."""
    return _LONG_ROW_OPS if a.size >= _LONG_ROWS_FROM else _PLAIN_OPS


def sum_per_channel(a: np.ndarray) -> np.ndarray:
    """Σ over the batch (axis 0, and axis 2 of (N, C, L)), shaped (1, C) or (1, C, 1).

    Speed: numpy's column sums of a C-contiguous (N, C) array run one short inner loop
    per row; the product with a vector of ones is the same sum done by BLAS, and at
    (4096, 64) it is about ten times faster.

    Benchmark: bn_op 4096×64 (the BLAS sum is ~10× numpy's column sums there; the cached
    vector of ones ``ones`` was measurable at that size too; benchmarks/README.md).
    """
    if a.ndim > 2:  # (N, C, L) or (N, C, H, W): the positions first, then the batch
        per_sample = a.reshape(a.shape[0], a.shape[1], -1).sum(axis=2)
        return sum_per_channel(per_sample).reshape((1, -1) + (1,) * (a.ndim - 2))
    if a.size < 8192:  # small: the direct reduction has less call overhead
        return np.add.reduce(a, axis=0, keepdims=True)
    return (ones(a.shape[0], a.dtype) @ a)[None, :]


@lru_cache(maxsize=32)
def ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of n ones, made once per (n, dtype): the batch size rarely changes."""
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


def dot_per_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over the batch (and L), shaped (1, C) or (1, C, 1).

    Speed: einsum never stores a·b, but like numpy's column sums it runs one inner loop
    per sample; with short samples (under 256 values, e.g. (4096, 64)) storing the product
    and summing it by BLAS is faster (53 vs 68 µs there; at (256, 512) einsum wins, 24 vs 29).

    Benchmark: bn_op 1.28× / 1.59× → 1.06–1.22× / 1.09–1.24× PyTorch with this and the
    row-by-assignment change of ``per_channel`` (benchmarks/README.md).
    """
    if a.size < 8192 or a.size // a.shape[0] < 256:
        return sum_per_channel(a * b)
    if a.ndim == 2:
        return np.einsum("nc,nc->c", a, b)[None, :]
    rows = a.shape[:2] + (-1,)  # (N, C, positions)
    sums = np.einsum("ncl,ncl->c", a.reshape(rows), b.reshape(rows))
    return sums.reshape((1, -1) + (1,) * (a.ndim - 2))
