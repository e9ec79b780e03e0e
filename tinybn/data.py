"""Small datasets and mini-batch iteration.

Every dataset is a pure function of its arguments: randomness comes only from the
``seed`` you pass (``np.random.default_rng(seed)``), never from numpy's global state, so
the same call returns the same arrays. With ``seed=None`` the numbers come from tinybn's
default generator, which ``tb.manual_seed(n)`` seeds. Datasets return numpy arrays (``X`` float64 of
shape (N, D), ``y`` int64 of shape (N,)), as scikit-learn does; wrap them in ``Tensor``
yourself, or let ``DataLoader`` do it batch by batch.

    X, y = placement(n=200, seed=0)                      # cgpa, iq -> placed
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    X_train, X_test, stats = standardize(X_train, X_test)
    for xb, yb in DataLoader(X_train, y_train, batch_size=32, shuffle=True, seed=0):
        ...                                              # xb, yb are Tensors
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from tinybn.random import generator
from tinybn.tensor import Tensor

PLACEMENT_FEATURES = ("cgpa", "iq")


def _check_count(n: int, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return int(n)


def _check_noise(noise: float) -> float:
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    return float(noise)


# -- datasets --------------------------------------------------------------------------------


def placement(
    n: int = 1000, seed: int | None = None, noise: float = 1.0, return_names: bool = False
) -> tuple:
    """Synthetic campus placement records, like the table in the lecture notes (cgpa, iq → placed).

    cgpa is drawn around 7.5 and kept in [5, 10] (two decimals); iq around 100 and kept in
    [60, 160] (whole numbers). A student is placed with probability
    σ(k · (z_cgpa + 0.7 z_iq)) where z are the standardized scores and k = 4 / (noise + 1e-12)
    (so ``noise`` blurs the boundary: 0 gives a clean linear rule, larger values more overlap).
    Both features matter, so a model must combine them.

    Args:
        n: number of students.
        seed: seed for ``np.random.default_rng``; the same seed gives the same data.
        noise: how blurred the placed / not placed boundary is (>= 0).
        return_names: also return the feature names ``("cgpa", "iq")``.
    Returns:
        X: (n, 2) float64, columns cgpa and iq. y: (n,) int64, 1 = placed.
        (and the feature names, if ``return_names``)

    Examples:
        >>> from tinybn import data
        >>> X, y = data.placement(100, seed=0)  # (cgpa, iq) → placed
        >>> X.shape, sorted(set(y.ravel().tolist()))
        ((100, 2), [0, 1])
    """
    n, noise = _check_count(n), _check_noise(noise)
    rng = generator(seed)
    cgpa = np.round(np.clip(rng.normal(7.5, 1.0, n), 5.0, 10.0), 2)
    iq = np.round(np.clip(rng.normal(100.0, 18.0, n), 60.0, 160.0))
    score = (cgpa - 7.5) / 1.0 + 0.7 * (iq - 100.0) / 18.0
    if noise == 0:
        placed = score > 0
    else:
        probability = 1.0 / (1.0 + np.exp(-(4.0 / noise) * score))
        placed = rng.random(n) < probability
    X = np.stack([cgpa, iq], axis=1)
    y = placed.astype(np.int64)
    return (X, y, PLACEMENT_FEATURES) if return_names else (X, y)


def moons(n: int = 200, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, ...]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), shuffled.

    The upper moon (class 0) is (cos t, sin t); the lower one (class 1) is
    (1 − cos t, 0.5 − sin t), t ∈ [0, π]; Gaussian noise of std ``noise`` is added.

    Returns:
        X: (n, 2) float64. y: (n,) int64 in {0, 1} (n // 2 of class 0).

    Examples:
        >>> from tinybn import data
        >>> X, y = data.moons(100, seed=0)
        >>> X.shape, y.shape, sorted(set(y.tolist()))
        ((100, 2), (100,), [0, 1])
    """
    n, noise = _check_count(n), _check_noise(noise)
    rng = generator(seed)
    n_upper = n // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n - n_upper)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    X = np.concatenate([upper, lower]) + rng.normal(0.0, noise, (n, 2))
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n - n_upper, np.int64)])
    order = rng.permutation(n)
    return X[order], y[order]


def spirals(
    n: int = 300, classes: int = 3, noise: float = 0.2, seed: int | None = None
) -> tuple[np.ndarray, ...]:
    """Interleaved spiral arms, one per class (the CS231n toy set), shuffled.

    Arm k: radius r ∈ [0, 1], angle θ = 4k + 4r + noise·ε (ε ~ N(0, 1)); point (r sin θ, r cos θ).
    Not linearly separable: a network needs hidden layers to fit it.

    Args:
        n: total number of points, split as evenly as possible over the classes.
        classes: number of arms (>= 2).
    Returns:
        X: (n, 2) float64. y: (n,) int64 in [0, classes).

    Examples:
        >>> from tinybn import data
        >>> X, y = data.spirals(90, classes=3, seed=0)
        >>> X.shape, sorted(set(y.tolist()))
        ((90, 2), [0, 1, 2])
    """
    n, noise, classes = _check_count(n), _check_noise(noise), _check_count(classes, "classes")
    if classes < 2:
        raise ValueError(f"spirals needs at least 2 classes, got {classes}")
    rng = generator(seed)
    per_class = [n // classes + (k < n % classes) for k in range(classes)]
    points, labels = [], []
    for k, count in enumerate(per_class):
        radius = np.linspace(0.0, 1.0, count)
        theta = 4.0 * k + 4.0 * radius + noise * rng.standard_normal(count)
        points.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        labels.append(np.full(count, k, dtype=np.int64))
    order = rng.permutation(n)
    return np.concatenate(points)[order], np.concatenate(labels)[order]


def blobs(
    n: int = 300,
    centers: int | np.ndarray = 3,
    noise: float = 1.0,
    seed: int | None = None,
) -> tuple[np.ndarray, ...]:
    """Gaussian clusters, one per class, shuffled.

    Args:
        n: total number of points, split as evenly as possible over the clusters.
        centers: a number of clusters (their centres are spaced evenly on a circle of
            radius 4), or an array (K, 2) of centres.
        noise: the standard deviation of each cluster.
    Returns:
        X: (n, 2) float64. y: (n,) int64 in [0, K).

    Examples:
        >>> from tinybn import data
        >>> X, y = data.blobs(90, centers=3, seed=0)
        >>> X.shape, sorted(set(y.tolist()))
        ((90, 2), [0, 1, 2])
    """
    n, noise = _check_count(n), _check_noise(noise)
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = _check_count(centers, "centers")
        angles = 2.0 * np.pi * np.arange(k) / k
        centre_points = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        centre_points = np.asarray(centers, dtype=float)
        if centre_points.ndim != 2 or centre_points.shape[1] != 2 or len(centre_points) == 0:
            raise ValueError(f"centers must be an int or an array (K, 2), got {centers!r}")
    k = len(centre_points)
    rng = generator(seed)
    labels = np.concatenate([np.full(n // k + (i < n % k), i, dtype=np.int64) for i in range(k)])
    X = centre_points[labels] + rng.normal(0.0, noise, (n, 2))
    order = rng.permutation(n)
    return X[order], labels[order]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 handwritten digits that scikit-learn ships (1797 images, UCI ML repository).

    Needs scikit-learn: ``pip install tinybn[demos]``.

    Returns:
        X: (1797, 64) float64 pixel intensities in [0, 16] (row-major 8×8 images).
        y: (1797,) int64 digit labels 0–9.

    Examples:
        >>> from tinybn import data
        >>> X, y = data.digits()  # the 8×8 digits, flattened
        >>> X.shape, y.shape
        ((1797, 64), (1797,))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "tinybn.data.digits() needs scikit-learn, which ships the 8x8 digits: "
            "pip install tinybn[demos]"
        ) from error
    bunch = load_digits()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


# -- splitting and scaling -----------------------------------------------------------------------


def _check_pair(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"X and y need a sample axis, got shapes {X.shape} and {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}; they must match")
    return X, y


def train_test_split(
    X: Any, y: Any, test_size: float | int = 0.25, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the samples (seeded) and hold out a test set.

    Args:
        X: (N, ...) inputs. y: (N, ...) targets.
        test_size: a fraction in (0, 1) (rounded up, as scikit-learn does) or a count in [1, N).
        seed: seed for the shuffle.
    Returns:
        X_train, X_test, y_train, y_test (scikit-learn's order).

    Examples:
        >>> import numpy as np
        >>> from tinybn import data
        >>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
        >>> X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.3, seed=0)
        >>> X_train.shape, X_test.shape
        ((7, 2), (3, 2))
    """
    X, y = _check_pair(X, y)
    n = len(X)
    if isinstance(test_size, bool):
        raise TypeError("test_size must be a float fraction or an int count, not a bool")
    if isinstance(test_size, (int, np.integer)):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = math.ceil(test_size * n)
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or an int, got {test_size}")
    if not 1 <= n_test < n:
        raise ValueError(
            f"test_size={test_size} leaves {n_test} of {n} samples for testing; "
            "both the train and the test set need at least one"
        )
    order = generator(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


class Stats(NamedTuple):
    """Per-feature statistics of the training set: mean (D,), std (D,)."""

    mean: np.ndarray
    std: np.ndarray


def standardize(train: Any, *others: Any) -> tuple[Any, ...]:
    """Scale each feature to mean 0 and std 1 using the TRAINING set's statistics only.

        mean = mean(train over axis 0),  std = std(train over axis 0) (1 where std is 0)
        z = (x − mean) / std   for train and for every array in ``others``

    The test set must not leak into the statistics, hence "fit on train, apply to others".

    Args:
        train: (N, D) training inputs.
        others: more (M, D) arrays (validation, test) to transform with the same statistics.
    Returns:
        (train_z, *others_z, Stats(mean, std)),
        e.g. ``X_tr, X_te, stats = standardize(X_tr, X_te)``.

    Examples:
        >>> import numpy as np
        >>> from tinybn import data
        >>> train, test = np.array([[1.0], [3.0]]), np.array([[5.0]])
        >>> train_z, test_z, stats = data.standardize(train, test)  # train statistics
        >>> train_z.ravel(), test_z.ravel()
        (array([-1.,  1.]), array([3.]))
    """
    train = np.asarray(train, dtype=float)
    if train.ndim != 2 or len(train) == 0:
        raise ValueError(
            f"standardize expects a non-empty (N, D) training array, got {train.shape}"
        )
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature is only centred
    scaled = []
    for i, array in enumerate(others):
        array = np.asarray(array, dtype=float)
        if array.ndim != 2 or array.shape[1] != train.shape[1]:
            raise ValueError(
                f"standardize: array {i + 1} has shape {array.shape}, but train has "
                f"{train.shape[1]} features"
            )
        scaled.append((array - mean) / std)
    return ((train - mean) / std, *scaled, Stats(mean, std))


# -- mini-batches ------------------------------------------------------------------------------


def batch_indices(
    n: int,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    rng: np.random.Generator | None = None,
) -> list[np.ndarray]:
    """Split sample indices 0..n−1 into consecutive mini-batches of ``batch_size``.

    With ``shuffle`` the indices are permuted by ``rng`` first. The last batch holds the
    remainder (n mod batch_size) unless ``drop_last``. Every index appears at most once.

    Examples:
        >>> from tinybn import data
        >>> [b.tolist() for b in data.batch_indices(5, 2)]
        [[0, 1], [2, 3], [4]]
    """
    if shuffle and rng is None:
        raise ValueError("batch_indices: shuffle=True needs an rng")
    order = rng.permutation(n) if shuffle and rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[start : start + batch_size] for start in range(0, stop, batch_size)]


class DataLoader:
    """Iterate over (X, y) in mini-batches, like ``torch.utils.data.DataLoader``.

    Each batch is a pair of ``Tensor``s (as PyTorch yields torch tensors): ``xb`` of shape
    (B, ...) keeping X's dtype, ``yb`` of shape (B, ...) keeping y's dtype (integer class
    labels stay integer). If ``y`` is None, each batch is the single Tensor ``xb``.

    With ``shuffle=True`` every pass (epoch) visits the samples in a new order drawn from
    the loader's own generator, ``np.random.default_rng(seed)`` (or, with ``seed=None``, one
    seeded from tinybn's default generator, see ``tb.manual_seed``): two loaders built with
    the same seed produce the same sequence of epochs, and every sample appears exactly once
    per epoch (or is in the dropped remainder when ``drop_last``).

    Args:
        X: (N, ...) inputs. y: (N, ...) targets or None.
        batch_size: samples per batch (>= 1); PyTorch's default is 1.
        shuffle: reshuffle at the start of every epoch.
        drop_last: drop the final batch if it has fewer than batch_size samples.
        seed: seed of the shuffling generator.

    Examples:
        >>> import numpy as np
        >>> from tinybn import data
        >>> loader = data.DataLoader(np.arange(10.0).reshape(5, 2), np.arange(5), batch_size=2)
        >>> [len(xb) for xb, yb in loader]  # the last batch is smaller (drop_last=False)
        [2, 2, 1]
    """

    def __init__(
        self,
        X: Any,
        y: Any = None,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if y is None:
            X = np.asarray(X)
            if X.ndim == 0:
                raise ValueError("X needs a sample axis, got a 0-d array")
        else:
            X, y = _check_pair(X, y)
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self._rng = generator(seed)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.X)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        for index in batch_indices(
            len(self.X), self.batch_size, self.shuffle, self.drop_last, self._rng
        ):
            if self.y is None:
                yield Tensor(self.X[index])
            else:
                yield Tensor(self.X[index]), Tensor(self.y[index])


__all__ = [
    "PLACEMENT_FEATURES",
    "placement",
    "moons",
    "spirals",
    "blobs",
    "digits",
    "train_test_split",
    "standardize",
    "Stats",
    "batch_indices",
    "DataLoader",
]
