"""The bad-input table: every case is refused with the expected error type and a message
holding the expected words, and leaves the model's state, the optimizer's state and every
file on disk as they were.

Each row is (id, action, error type, words). An action gets a ``World``: a small trained
model with batch norm, its optimizer, a good checkpoint on disk and a scratch folder.
"""

from __future__ import annotations

import copy
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import tinybn as tb
from tinybn import Tensor, data, nn, optim
from tinybn import functional as F
from tinybn.demos import _mlp, ioffe_fig1


@dataclass
class World:
    model: nn.Sequential
    optimizer: optim.Adam
    checkpoint: Path  # a good tb.save file of model's state
    folder: Path  # holds the checkpoint, and the input files a case writes
    inputs: list[str] = field(default_factory=list)

    def file(self, name: str, content: bytes) -> Path:
        """Write a case's input file (the one thing a case may add to the folder)."""
        path = self.folder / name
        path.write_bytes(content)
        self.inputs.append(name)
        return path


@pytest.fixture
def world(tmp_path):
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        nn.Linear(4, 3, rng=rng), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2, rng=rng)
    )
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(Tensor(rng.normal(size=(8, 4)))), rng.integers(0, 2, 8)).backward()
        optimizer.step()
    checkpoint = tmp_path / "model.npz"
    tb.save(model.state_dict(), checkpoint)
    return World(model, optimizer, checkpoint, tmp_path)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def zip_of(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name.replace("__", "."), content)
    return buffer.getvalue()


def corrupted(checkpoint: Path) -> bytes:
    content = bytearray(checkpoint.read_bytes())
    content[content.find(b"\x93NUMPY") + 130] ^= 0xFF  # a byte of the first array's data
    return bytes(content)


def torch_save_bytes() -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    return buffer.getvalue()


def x(*shape, dtype=np.float32):
    return Tensor(np.ones(shape, dtype=dtype))


# (id, action, error type, words the message must contain)
CASES = [
    # -- tensors and ops
    ("tensor of a string", lambda w: Tensor("abc"), TypeError, "numbers"),
    ("tensor of None", lambda w: Tensor([1.0, None]), TypeError, "numbers"),
    ("int tensor requiring grad", lambda w: Tensor(np.arange(3), True), TypeError, "floating"),
    ("tb.tensor of strings", lambda w: tb.tensor(["a", "b"]), TypeError, "numbers"),
    ("tb.tensor int with grad", lambda w: tb.tensor([1, 2], requires_grad=True), TypeError, "floating"),
    ("shapes that do not broadcast", lambda w: x(2, 3) + x(4, 3), ValueError, "do not broadcast"),
    ("matmul inner sizes", lambda w: x(2, 3) @ x(2, 3), ValueError, "cannot be multiplied"),
    ("log of negatives", lambda w: Tensor([-1.0, 2.0]).log(), ValueError, "negative"),
    ("sqrt of negatives", lambda w: Tensor([-1.0]).sqrt(), ValueError, "negative"),
    ("negative ** 0.5", lambda w: Tensor([-1.0]) ** 0.5, ValueError, "fractional power"),
    ("tensor exponent", lambda w: x(2) ** x(2), TypeError, "exponent must be a number"),
    ("implicit grad of a vector", lambda w: Tensor([1.0, 2.0], True).exp().backward(), ValueError, "single-element"),
    ("backward without a graph", lambda w: x(1).backward(), ValueError, "does not require grad"),
    ("var of one value, unbiased", lambda w: x(1).var(unbiased=True), ValueError, "correction 1"),
    ("axis out of range", lambda w: x(2, 3).sum(axis=2), ValueError, "out of range"),
    ("reshape to the wrong size", lambda w: x(2, 3).reshape(4, 2), ValueError, "cannot reshape"),
    ("integer default dtype", lambda w: tb.set_default_dtype(np.int32), TypeError, "floating"),
    # -- layers and functional
    ("int64 input to a BN model", lambda w: w.model[1:](x(8, 3, dtype=np.int64)), TypeError, "got dtype int64"),
    ("uint8 input to BatchNorm1d", lambda w: w.model[1](x(8, 3, dtype=np.uint8)), TypeError, "got dtype uint8"),
    ("int input to composed BN", lambda w: F.batch_norm(x(8, 3, dtype=np.int8)), TypeError, "got dtype int8"),
    ("BN channels", lambda w: w.model[1](x(8, 5)), ValueError, "num_features=3"),
    ("BN 1-d input", lambda w: w.model[1](x(3)), ValueError, "(N, C) or (N, C, L)"),
    ("BN batch of one", lambda w: w.model(x(1, 4)), ValueError, "more than 1 value per channel"),
    ("BN num_features 0", lambda w: nn.BatchNorm1d(0), ValueError, ">= 1"),
    ("BN num_features str", lambda w: nn.BatchNorm1d("3"), TypeError, "must be an int"),
    ("BN negative eps", lambda w: nn.BatchNorm1d(3, eps=-1e-5), ValueError, "eps must be >= 0"),
    ("BN momentum 2", lambda w: nn.BatchNorm1d(3, momentum=2.0), ValueError, "momentum must be in [0, 1]"),
    ("Linear in_features", lambda w: w.model(x(8, 5)), ValueError, "in_features=4"),
    ("Dropout p 1.5", lambda w: nn.Dropout(1.5), ValueError, "between 0 and 1"),
    ("plain numbers as scalar gamma", lambda w: F.batch_norm(tb.values([[1.0], [2.0]]), [1.0], None), TypeError, "tb.values"),
    ("gamma length", lambda w: F.batch_norm(x(4, 3), Tensor(np.ones(2)), None), ValueError, "gamma has 2 value"),
    ("negative eps in F.batch_norm", lambda w: F.batch_norm(x(4, 3), eps=-1.0), ValueError, "eps must be >= 0"),
    ("cross-entropy class out of range", lambda w: F.cross_entropy(x(4, 2), np.array([0, 1, 2, 5])), ValueError, "targets must be in [0, 2)"),
    # -- state dicts and optimizers
    ("state_dict of another shape", lambda w: w.model.load_state_dict({**w.model.state_dict(), "0.weight": np.zeros((3, 5))}), ValueError, "'0.weight'"),
    ("state_dict with a key missing", lambda w: w.model.load_state_dict({k: v for k, v in w.model.state_dict().items() if k != "1.running_var"}), ValueError, "1.running_var"),
    ("state_dict holding text", lambda w: w.model.load_state_dict({**w.model.state_dict(), "0.bias": np.array(["a", "b", "c"])}), ValueError, "non-numeric"),
    ("optimizer negative lr", lambda w: w.optimizer.add_param_group({"params": [nn.Parameter(np.zeros(2))], "lr": -1.0}), ValueError, "lr"),
    ("Nesterov without momentum", lambda w: optim.SGD(w.model.parameters(), lr=0.1, nesterov=True), ValueError, "Nesterov"),
    ("Adam beta 1.0", lambda w: optim.Adam(w.model.parameters(), betas=(1.0, 0.9)), ValueError, "beta"),
    ("manual_seed negative", lambda w: tb.manual_seed(-1), ValueError, ">= 0"),
    ("manual_seed float", lambda w: tb.manual_seed(0.5), TypeError, "must be an int"),
    # -- saving
    ("save a non-string key", lambda w: tb.save({1: np.zeros(2)}, w.checkpoint), TypeError, "keys must be strings"),
    ("save a dict value", lambda w: tb.save({"meta": {"epoch": 1}}, w.checkpoint), TypeError, "not a numeric array"),
    ("save a reserved key", lambda w: tb.save({"file": np.zeros(2)}, w.checkpoint), ValueError, "'file'"),
    ("save onto a folder", lambda w: tb.save(w.model.state_dict(), w.folder), IsADirectoryError, "is a folder"),
    ("save into a missing folder", lambda w: tb.save(w.model.state_dict(), w.folder / "no" / "m.npz"), FileNotFoundError, "does not exist"),
    # -- loading (each file is written first; the model is loaded only if load returns)
    ("load an empty file", lambda w: tb.load(w.file("e.npz", b"")), ValueError, "is empty"),
    ("load a truncated file", lambda w: tb.load(w.file("t.npz", w.checkpoint.read_bytes()[:300])), ValueError, "truncated or corrupt zip"),
    ("load a text file", lambda w: tb.load(w.file("t.txt", b"w = 1\n")), ValueError, "not a zip archive"),
    ("load a pickle", lambda w: tb.load(w.file("p.pkl", pickle.dumps({"w": 1}))), ValueError, "Python pickle"),
    ("load a CRC error", lambda w: tb.load(w.file("c.npz", corrupted(w.checkpoint))), ValueError, "fails its CRC check"),
    ("load a torch.save file", lambda w: tb.load(w.file("m.pt", torch_save_bytes())), ValueError, "torch.save file"),
    ("load a zip of other files", lambda w: tb.load(w.file("z.npz", zip_of(w__npy=npy(np.zeros(2)), readme__txt=b"hi"))), ValueError, "'readme.txt' is not an .npy array"),
    ("load an object array", lambda w: tb.load(w.file("o.npz", zip_of(w__npy=npy(np.array([{}], dtype=object))))), ValueError, "holds Python objects"),
    ("load a string array", lambda w: tb.load(w.file("s.npz", zip_of(w__npy=npy(np.array(["x"]))))), ValueError, "not an array of numbers"),
    ("load a forged header", lambda w: tb.load(w.file("f.npz", zip_of(w__npy=npy(np.zeros(4)).replace(b"(4,)", b"(4000000000,)")))), ValueError, "header describes"),
    ("load a single .npy", lambda w: tb.load(w.file("one.npy", npy(np.zeros(3)))), ValueError, "single .npy array"),
    ("load a missing file", lambda w: tb.load(w.folder / "missing.npz"), FileNotFoundError, "missing.npz"),
    ("load into a model: wrong checkpoint", lambda w: w.model.load_state_dict(tb.load(w.file("wide.npz", zip_of(**{"0.weight__npy": npy(np.zeros((3, 9)))})))), ValueError, "(3, 9)"),
    # -- data
    ("DataLoader batch_size 0", lambda w: data.DataLoader(np.zeros((4, 2)), batch_size=0), ValueError, "at least 1"),
    ("DataLoader batch_size 2.5", lambda w: data.DataLoader(np.zeros((4, 2)), batch_size=2.5), TypeError, "must be an int"),
    ("DataLoader X and y lengths", lambda w: data.DataLoader(np.zeros((4, 2)), np.zeros(3)), ValueError, "X has 4 samples but y has 3"),
    ("split test_size 1.5", lambda w: data.train_test_split(np.zeros((4, 2)), np.zeros(4), test_size=1.5), ValueError, "test_size"),
    ("moons of 0 points", lambda w: data.moons(0), ValueError, "at least 1"),
    ("fewer examples than a batch", lambda w: _mlp.endless_batches(np.zeros((50, 2)), np.zeros(50), 60, 0), ValueError, "50 example(s) cannot fill one batch of 60"),
    ("empty IDX file", lambda w: ioffe_fig1._read_idx(w.file("x-idx1-ubyte", b"")), ValueError, "empty"),
    ("truncated IDX file", lambda w: ioffe_fig1._read_idx(w.file("x-idx1-ubyte", bytes([0, 0, 8, 1, 0, 0, 0, 9, 1]))), ValueError, "truncated"),
]  # fmt: skip


def snapshot(world: World) -> tuple:
    state = {k: v.copy() for k, v in world.model.state_dict().items()}
    optimizer_state = copy.deepcopy(world.optimizer.state_dict())
    files = {p.name: p.read_bytes() for p in world.folder.iterdir() if p.is_file()}
    return state, optimizer_state, files, tb.get_default_dtype()


@pytest.mark.parametrize("action, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_changes(world, action, error, words):
    state, optimizer_state, files, dtype = snapshot(world)
    with pytest.raises(error) as info:
        action(world)
    assert words in str(info.value), f"{words!r} not in: {info.value}"
    after_state, after_optimizer, after_files, after_dtype = snapshot(world)
    assert after_state.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(after_state[key], value, err_msg=key)
        assert after_state[key].dtype == value.dtype
    assert after_optimizer["param_groups"] == optimizer_state["param_groups"]
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            np.testing.assert_array_equal(after_optimizer["state"][index][name], value)
    assert after_dtype == dtype
    # every file that was there (the checkpoint) is byte for byte the same, and the only
    # new files are the case's own inputs (no temporary or half-written file left)
    for name, content in files.items():
        assert after_files[name] == content, name
    assert set(after_files) - set(files) <= set(world.inputs)
    assert tb.load(world.checkpoint).keys() == state.keys()


def test_the_table_covers_every_refusal_kind():
    """How many cases, and of which kind: the closing count of the hardening issue."""
    kinds = {}
    for _, _, error, _ in CASES:
        kinds[error.__name__] = kinds.get(error.__name__, 0) + 1
    assert len(CASES) == len({c[0] for c in CASES}) >= 60  # ids are unique
    assert set(kinds) == {"TypeError", "ValueError", "IsADirectoryError", "FileNotFoundError"}
