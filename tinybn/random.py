"""The default random generator: where tinybn draws numbers when you pass no ``rng``/``seed``.

``nn.Linear``'s initial weights, ``nn.Dropout``'s and ``F.dropout``'s masks, a
``DataLoader``'s shuffling and the datasets of ``tinybn.data`` all take an explicit
``rng`` (a ``numpy.random.Generator``) or ``seed``; without one they draw from this
module's single generator. ``tb.manual_seed(n)`` reseeds it, as ``torch.manual_seed``
reseeds PyTorch's, so that a script that starts with it is reproducible:

    tb.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))   # the same weights every run

numpy's global state (``np.random.seed``) is never used.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed tinybn's default generator with ``seed`` (an int >= 0) and return it.

    Everything drawn afterwards without an explicit ``rng``/``seed`` (Linear init, dropout
    masks, DataLoader shuffling, datasets) repeats exactly when the same seed is set again.

    Examples:
        >>> import tinybn as tb
        >>> from tinybn import nn
        >>> _ = tb.manual_seed(0)
        >>> a = nn.Linear(2, 2).weight.data.copy()
        >>> _ = tb.manual_seed(0)
        >>> bool((nn.Linear(2, 2).weight.data == a).all())  # the same initial weights
        True
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """tinybn's default generator (the one ``manual_seed`` reseeds).

    Examples:
        >>> import tinybn as tb
        >>> from tinybn.random import default_generator
        >>> _ = tb.manual_seed(0)
        >>> a = default_generator().random()
        >>> _ = tb.manual_seed(0)
        >>> default_generator().random() == a
        True
    """
    return _generator


def generator(seed: int | None = None) -> np.random.Generator:
    """``np.random.default_rng(seed)`` for a given seed; a new generator seeded from the
    default generator if ``seed`` is None (so ``manual_seed`` decides it).

    Examples:
        >>> from tinybn.random import generator
        >>> generator(0).random() == generator(0).random()  # a seed: its own stream
        True
    """
    if seed is not None:
        return np.random.default_rng(seed)
    return np.random.default_rng(int(_generator.integers(2**63)))


__all__ = ["manual_seed", "default_generator", "generator"]
