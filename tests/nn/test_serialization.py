"""tb.save / tb.load: .npz checkpoints that never unpickle, and loading them into models."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, nn, serialization
from tinybn.files import write_atomically, write_text_atomically


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


# -- tb.save is atomic; tb.load refuses, with a ValueError saying what the file is, anything
# that is not an npz of numeric arrays, and reads no more than the arrays' declared size.


def saved(tmp_path, name="ckpt.npz", **arrays):
    path = tmp_path / name
    tb.save(arrays or {"w": np.arange(1000.0), "n": np.int64(3)}, path)
    return path


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_an_interrupted_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = saved(tmp_path, w=np.arange(24.0))
    before = path.read_bytes()

    def savez_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(serialization.np, "savez", savez_then_fail)
    with pytest.raises(KeyboardInterrupt):
        tb.save({"w": np.zeros(24)}, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind
    monkeypatch.undo()
    np.testing.assert_array_equal(tb.load(path)["w"], np.arange(24.0))


def test_save_replaces_the_file_and_keeps_its_permissions(tmp_path):
    path = saved(tmp_path, w=np.zeros(2))
    os.chmod(path, 0o640)
    tb.save({"w": np.ones(3)}, path)
    np.testing.assert_array_equal(tb.load(path)["w"], np.ones(3))
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


def test_a_new_file_gets_the_permissions_open_would_give(tmp_path):
    umask = os.umask(0o022)
    try:
        path = saved(tmp_path)
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644  # not mkstemp's 0o600


def test_save_to_a_folder_or_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        tb.save({"w": np.zeros(2)}, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tb.save({"w": np.zeros(2)}, tmp_path / "missing" / "ckpt.npz")


def test_truncated_empty_and_corrupt_files_say_what_they_are(tmp_path):
    good = saved(tmp_path).read_bytes()
    cases = {
        "empty.npz": (b"", "is empty"),
        "truncated.npz": (good[: len(good) // 2], "truncated or corrupt zip"),
        "text.npz": (b"hello world", "not a zip archive"),
        "pickle.npz": (pickle.dumps({"w": 1}), "Python pickle"),
    }
    flipped = bytearray(good)
    flipped[good.find(b"\x93NUMPY") + 300] ^= 0xFF  # a byte inside w's data
    cases["crc.npz"] = (bytes(flipped), "fails its CRC check")
    for name, (content, words) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=words):
            tb.load(tmp_path / name)


def test_a_torch_save_file_is_named_and_not_unpickled(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="torch.save file"):
        tb.load(path)


def test_members_that_are_not_npy_arrays_are_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("w.npy", npy_bytes(np.zeros(3)))
        archive.writestr("payload.bin", b"\0" * (8 << 20))  # 8 MB of zeros, ~8 kB on disk
    assert os.path.getsize(path) < 100_000
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, m, *a, **k: opened.append(m) or real_open(self, m)
    )
    with pytest.raises(ValueError, match="'payload.bin' is not an .npy array"):
        tb.load(path)
    assert opened == []  # refused from the directory alone, before any member is read


def test_a_header_that_does_not_match_the_member_size_is_refused_before_reading(tmp_path):
    data = npy_bytes(np.zeros(10))
    forged = data.replace(b"(10,)", b"(10000000000,)")  # claims 80 GB
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", forged)
    with pytest.raises(ValueError, match="header describes 80000000"):
        tb.load(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.npy", data[:-16])  # the last two floats cut off
    with pytest.raises(ValueError, match="'a' .* is corrupt"):
        tb.load(path)


@pytest.mark.parametrize(
    "array, words",
    [
        (np.array([{"epoch": 3}], dtype=object), "holds Python objects"),
        (np.array(["text"]), "not an array of numbers"),
        (np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]), "not an array of numbers"),
    ],
    ids=["object", "string", "structured"],
)
def test_non_numeric_members_are_refused(tmp_path, array, words):
    path = tmp_path / "odd.npz"
    np.savez(path, w=np.zeros(2), odd=array)
    with pytest.raises(ValueError, match=f"'odd'.*{words}"):
        tb.load(path)


def test_compressed_npz_and_an_empty_state_dict_still_load(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", a=np.arange(6.0).reshape(2, 3), b=np.int8(-2))
    loaded = tb.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded["a"], np.arange(6.0).reshape(2, 3))
    assert loaded["b"] == -2 and loaded["b"].dtype == np.int8
    assert loaded["a"].flags.writeable
    tb.save({}, tmp_path / "e.npz")
    assert tb.load(tmp_path / "e.npz") == {}


def test_a_fortran_ordered_array_loads_with_its_values(tmp_path):
    array = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    tb.save({"w": array}, tmp_path / "f.npz")
    np.testing.assert_array_equal(tb.load(tmp_path / "f.npz")["w"], array)


# -- atomic writes (tinybn.files) ------------------------------------------------------------------


def test_an_interrupted_atomic_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"old": true}\n')

    def half_then_fail(file):
        file.write(b'{"new": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, half_then_fail)
    assert path.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    write_text_atomically(path, '{"new": 1}\n')
    assert json.loads(path.read_text()) == {"new": 1}
