"""tinybn.data: seeded datasets, splitting, standardization and the mini-batch loader."""

import sys

import numpy as np
import pytest

from tinybn import Tensor, data

# -- datasets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, n_classes",
    [
        (lambda seed: data.placement(n=150, seed=seed), 2),
        (lambda seed: data.moons(n=150, noise=0.1, seed=seed), 2),
        (lambda seed: data.spirals(n=150, classes=3, seed=seed), 3),
        (lambda seed: data.blobs(n=150, centers=3, seed=seed), 3),
    ],
)
def test_datasets_shapes_dtypes_and_determinism(make, n_classes):
    X, y = make(0)
    assert X.shape == (150, 2) and X.dtype == np.float64
    assert y.shape == (150,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(n_classes))
    X2, y2 = make(0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(1)
    assert not np.array_equal(X, X3)


def test_datasets_do_not_touch_numpy_global_random_state():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    data.placement(n=50, seed=0)
    data.moons(n=50, seed=0)
    data.spirals(n=50, seed=0)
    data.blobs(n=50, seed=0)
    list(data.DataLoader(np.zeros((10, 2)), np.zeros(10), batch_size=3, shuffle=True, seed=0))
    assert np.random.random() == expected


def test_placement_ranges_and_both_features_matter():
    X, y, names = data.placement(n=3000, seed=0, return_names=True)
    assert names == ("cgpa", "iq") == data.PLACEMENT_FEATURES
    cgpa, iq = X[:, 0], X[:, 1]
    assert 5.0 <= cgpa.min() and cgpa.max() <= 10.0 and 60.0 <= iq.min() and iq.max() <= 160.0
    assert np.all(iq == np.round(iq)) and np.allclose(cgpa * 100, np.round(cgpa * 100))
    assert 0.3 < y.mean() < 0.7
    # among students of similar iq, the higher cgpa is placed more often, and vice versa
    similar_iq = np.abs(iq - 100) < 5
    high_cgpa = cgpa > 7.5
    assert y[similar_iq & high_cgpa].mean() > y[similar_iq & ~high_cgpa].mean() + 0.3
    similar_cgpa = np.abs(cgpa - 7.5) < 0.25
    high_iq = iq > 100
    assert y[similar_cgpa & high_iq].mean() > y[similar_cgpa & ~high_iq].mean() + 0.3
    # noise blurs the boundary: without it, the rule is exact; with it, some are mislabelled
    rule = (cgpa - 7.5) + 0.7 * (iq - 100) / 18 > 0
    assert 0.8 < np.mean(rule == y) < 0.97
    X0, y0 = data.placement(n=3000, seed=0, noise=0.0)
    rule0 = (X0[:, 0] - 7.5) + 0.7 * (X0[:, 1] - 100) / 18 > 0
    np.testing.assert_array_equal(y0, rule0.astype(int))


def test_moons_geometry_and_noise():
    X, y = data.moons(n=101, noise=0.0, seed=0)
    assert np.sum(y == 0) == 50 and np.sum(y == 1) == 51
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1.0, lower[:, 1] - 0.5), 1.0)
    noisy, _ = data.moons(n=101, noise=0.3, seed=0)
    assert not np.allclose(np.sort(noisy, axis=0), np.sort(X, axis=0), atol=0.05)


def test_spirals_radius_and_class_sizes():
    X, y = data.spirals(n=100, classes=3, noise=0.0, seed=0)
    assert np.bincount(y).tolist() == [34, 33, 33]
    radius = np.hypot(X[:, 0], X[:, 1])
    assert radius.max() == pytest.approx(1.0) and radius.min() == 0.0
    with pytest.raises(ValueError, match="classes"):
        data.spirals(n=10, classes=1)


def test_blobs_centres_and_spread():
    centres = np.array([[-5.0, 0.0], [5.0, 0.0]])
    X, y = data.blobs(n=2000, centers=centres, noise=0.5, seed=0)
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(axis=0), centres[k], atol=0.05)
        np.testing.assert_allclose(X[y == k].std(axis=0), 0.5, rtol=0.08)
    with pytest.raises(ValueError, match="centers"):
        data.blobs(n=10, centers=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="noise"):
        data.moons(n=10, noise=-1.0)
    with pytest.raises(ValueError, match="at least 1"):
        data.moons(n=0)


def test_digits_from_scikit_learn():
    pytest.importorskip("sklearn")
    X, y = data.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 16.0 and set(y) == set(range(10))


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install tinybn\[demos\]"):
        data.digits()


# -- splitting and scaling ------------------------------------------------------------------------


def test_train_test_split_partitions_and_keeps_pairs():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, test_size=0.25, seed=0)
    assert len(X_te) == 3 and len(X_tr) == 7  # ceil(2.5), as scikit-learn
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(10))
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)  # rows stay with their targets
    np.testing.assert_array_equal(X_te[:, 0], 2 * y_te)
    again = data.train_test_split(X, y, test_size=0.25, seed=0)
    np.testing.assert_array_equal(again[3], y_te)
    assert len(data.train_test_split(X, y, test_size=4, seed=0)[1]) == 4
    with pytest.raises(ValueError, match="samples"):
        data.train_test_split(X, y[:9])
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, y, test_size=1.5)
    with pytest.raises(ValueError, match="test_size"):
        data.train_test_split(X, y, test_size=10)


def test_standardize_fits_on_train_and_applies_to_others():
    train = np.array([[1.0, 10.0, 5.0], [3.0, 30.0, 5.0], [5.0, 20.0, 5.0]])
    test = np.array([[3.0, 40.0, 6.0]])
    train_z, test_z, stats = data.standardize(train, test)
    np.testing.assert_allclose(stats.mean, [3.0, 20.0, 5.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(8 / 3), np.sqrt(200 / 3), 1.0])  # 0 → 1
    np.testing.assert_allclose(train_z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(train_z.std(axis=0), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(test_z, [[0.0, 20.0 / np.sqrt(200 / 3), 1.0]])
    only, stats_only = data.standardize(train)
    np.testing.assert_allclose(only, train_z)
    with pytest.raises(ValueError, match="features"):
        data.standardize(train, np.zeros((2, 2)))


# -- DataLoader -----------------------------------------------------------------------------------


def loader_data(n=10):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return X, np.arange(n)


def test_loader_batch_sizes_len_and_drop_last():
    X, y = loader_data(10)
    loader = data.DataLoader(X, y, batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    xb, yb = batches[0]
    assert isinstance(xb, Tensor) and isinstance(yb, Tensor)
    assert xb.dtype == np.float32 and yb.dtype == y.dtype and not xb.requires_grad
    np.testing.assert_array_equal(yb.data, [0, 1, 2, 3])  # no shuffle: in order
    dropping = data.DataLoader(X, y, batch_size=4, drop_last=True)
    assert len(dropping) == 2 and [len(b[1]) for b in dropping] == [4, 4]
    assert len(data.DataLoader(X, y)) == 10  # PyTorch's default batch_size=1
    assert len(data.DataLoader(X, y, batch_size=10, drop_last=True)) == 1


def test_loader_shuffle_covers_every_sample_once_and_reshuffles_reproducibly():
    X, y = loader_data(23)
    loader = data.DataLoader(X, y, batch_size=5, shuffle=True, seed=7)
    epochs = [np.concatenate([yb.data for _, yb in loader]) for _ in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(23))
    assert not np.array_equal(epochs[0], epochs[1])  # a new order every epoch
    assert not np.array_equal(epochs[0], np.arange(23))
    twin = data.DataLoader(X, y, batch_size=5, shuffle=True, seed=7)
    for order in epochs:  # the same seed replays the same sequence of epochs
        np.testing.assert_array_equal(np.concatenate([yb.data for _, yb in twin]), order)
    for xb, yb in loader:  # rows stay with their targets
        np.testing.assert_array_equal(xb.data[:, 0], 2 * yb.data)
    dropping = data.DataLoader(X, y, batch_size=5, shuffle=True, drop_last=True, seed=1)
    seen = np.concatenate([yb.data for _, yb in dropping])
    assert len(seen) == 20 and len(set(seen.tolist())) == 20


def test_loader_without_targets_and_bad_arguments():
    X, y = loader_data(5)
    batches = list(data.DataLoader(X, batch_size=2))
    assert all(isinstance(b, Tensor) for b in batches) and [len(b) for b in batches] == [2, 2, 1]
    with pytest.raises(ValueError, match="5 samples but y has 4"):
        data.DataLoader(X, y[:4], batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(X, y, batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        data.DataLoader(X, y, batch_size=2.5)
