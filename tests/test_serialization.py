"""tb.save / tb.load: .npz checkpoints that never unpickle, and loading them into models."""

import pickle

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn


def trained_model(seed=0):
    rng = np.random.default_rng(seed)
    model = nn.Sequential(
        nn.Linear(2, 3, rng=rng), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1, rng=rng)
    )
    for _ in range(3):
        model(Tensor(rng.normal(1.0, 2.0, (8, 2))))
    return model


def test_round_trip_keeps_keys_order_dtypes_shapes_and_values(tmp_path):
    model = trained_model()
    state = model.state_dict()
    path = tmp_path / "ckpt.npz"
    tb.save(state, path)
    loaded = tb.load(path)
    assert type(loaded) is dict and list(loaded) == list(state)
    for key, value in state.items():
        assert isinstance(loaded[key], np.ndarray)
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)
    assert loaded["1.num_batches_tracked"].shape == () and loaded["1.num_batches_tracked"] == 3


def test_a_loaded_checkpoint_restores_the_model(tmp_path):
    model = trained_model(seed=0)
    tb.save(model.state_dict(), tmp_path / "ckpt.npz")
    other = trained_model(seed=1)
    x = Tensor(np.random.default_rng(5).normal(size=(4, 2)))
    model.eval(), other.eval()
    assert not np.allclose(other(x).data, model(x).data)
    other.load_state_dict(tb.load(tmp_path / "ckpt.npz"))
    np.testing.assert_array_equal(other(x).data, model(x).data)


def test_save_writes_exactly_the_given_path_and_accepts_tensors(tmp_path):
    path = tmp_path / "weights"  # np.savez alone would write weights.npz
    tb.save({"w": Tensor(np.arange(3.0)), "n": 7}, str(path))
    assert path.exists() and not (tmp_path / "weights.npz").exists()
    loaded = tb.load(path)
    np.testing.assert_array_equal(loaded["w"], [0.0, 1.0, 2.0])
    assert loaded["n"] == 7 and loaded["n"].shape == ()


def test_save_refuses_what_would_need_pickle(tmp_path):
    path = tmp_path / "bad.npz"
    with pytest.raises(TypeError, match="'meta'"):
        tb.save({"w": np.zeros(2), "meta": {"epoch": 3}}, path)
    with pytest.raises(TypeError, match="keys must be strings"):
        tb.save({1: np.zeros(2)}, path)
    with pytest.raises(ValueError, match="'file'"):
        tb.save({"file": np.zeros(2)}, path)
    assert not path.exists()


def test_load_refuses_an_archive_holding_objects(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, w=np.zeros(2), meta=np.array([{"epoch": 3}], dtype=object))
    with pytest.raises(ValueError, match="'meta'.*pickle"):
        tb.load(path)


class _Sentinel:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_load_never_runs_code_from_a_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"w": _Sentinel(str(marker))}))
    with pytest.raises(ValueError, match="pickle"):
        tb.load(path)
    assert not marker.exists()
    # (the sentinel really does run when unpickled: the test above would catch it)
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_load_refuses_a_single_npy_array(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="single .npy"):
        tb.load(path)


def test_wrong_checkpoint_is_one_error_and_the_model_is_unchanged(tmp_path):
    wide = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    tb.save(wide.state_dict(), tmp_path / "wide.npz")
    model = trained_model()
    before = model.state_dict()
    with pytest.raises(ValueError) as error:
        model.load_state_dict(tb.load(tmp_path / "wide.npz"))
    message = str(error.value)
    for key in ("0.weight", "0.bias", "1.weight", "1.running_var", "3.weight"):
        assert repr(key) in message
    assert "(4, 2)" in message and "(3, 2)" in message
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_pytorch_state_dict_saved_as_npz_loads(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 1)
    )
    theirs(torch.randn(8, 2))
    theirs.eval()
    tb.save({k: v.numpy() for k, v in theirs.state_dict().items()}, tmp_path / "torch.npz")
    ours = trained_model().eval()
    ours.load_state_dict(tb.load(tmp_path / "torch.npz"))
    x = np.random.default_rng(0).normal(size=(4, 2)).astype(np.float32)
    np.testing.assert_allclose(
        ours(Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6
    )
