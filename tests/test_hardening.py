"""Regressions of the hardening pass: nothing silently wrong, nothing lost, no hang, and the
first hour's friction (help, reprs, tb.tensor, tb.manual_seed)."""

from __future__ import annotations

import gzip
import io
import json

import numpy as np
import pytest

import tinybn as tb
from demos import _common, _mlp, ioffe_fig1
from tinybn import Tensor, Value, nn
from tinybn import functional as F
from tinybn.fast import kernels
from tinybn.files import write_atomically, write_text_atomically

INT_DTYPES = [np.int64, np.int32, np.int8, np.uint8, np.bool_]


# -- integer input never comes back cast to int -------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "name, op, reference",
    [
        ("exp", lambda t: t.exp(), np.exp),
        ("log", lambda t: t.log(), np.log),
        ("sqrt", lambda t: t.sqrt(), np.sqrt),
        ("tanh", lambda t: t.tanh(), np.tanh),
        ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        ("nn.Sigmoid", lambda t: nn.Sigmoid()(t), lambda a: 1 / (1 + np.exp(-a))),
        ("nn.Tanh", lambda t: nn.Tanh()(t), np.tanh),
        ("mean", lambda t: t.mean(), np.mean),
        ("var", lambda t: t.var(), np.var),
        ("** 0.5", lambda t: t**0.5, np.sqrt),
        ("clip(0.5, 1.5)", lambda t: t.clip(0.5, 1.5), lambda a: np.clip(a, 0.5, 1.5)),
    ],
)
def test_integer_input_gives_the_default_float_dtype(name, op, reference, dtype):
    data = np.array([1, 2, 3, 1]).astype(dtype)
    out = op(Tensor(data))
    assert out.dtype == tb.get_default_dtype(), name
    np.testing.assert_allclose(out.data, reference(data.astype(np.float64)), rtol=1e-6)


def test_sigmoid_of_an_int_tensor_is_not_cast_back_to_int():
    y = Tensor(np.array([1, 2, -3])).sigmoid()
    np.testing.assert_allclose(y.data, [0.7310586, 0.8807971, 0.0474259], rtol=1e-6)


def test_integer_sums_are_int64_and_integer_ops_that_stay_integer_do():
    assert Tensor(np.array([200, 100], dtype=np.uint8)).sum().item() == 300  # no uint8 wrap
    assert Tensor(np.array([200, 100], dtype=np.uint8)).sum().dtype == np.int64
    assert Tensor(np.array([True, True, False])).sum().dtype == np.int64
    x = Tensor(np.array([1, -2, 3]))
    for out in (x.relu(), x.abs(), x.max(), x**2, -x, x.clip(0, 2)):
        assert out.dtype == np.int64  # as PyTorch: these have integer values


def test_integer_ops_match_pytorch_dtypes():
    torch = pytest.importorskip("torch")
    data = np.array([1, 2, 3])
    theirs = torch.tensor(data)
    for name in ("exp", "log", "sqrt", "tanh", "sigmoid", "sum", "abs", "relu"):
        ours = getattr(Tensor(data), name)()
        theirs_out = getattr(torch, name)(theirs)
        assert str(ours.dtype) == str(theirs_out.dtype).removeprefix("torch."), name
        np.testing.assert_allclose(ours.data, theirs_out.numpy(), rtol=1e-6)


# -- batch norm: integer input refused, float16 accumulated in float32 --------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.bool_])
@pytest.mark.parametrize("path", ["module", "fused", "composed"])
def test_batch_norm_refuses_integer_input_naming_the_dtype(dtype, path):
    x = Tensor(np.ones((256, 64), dtype=dtype))
    bn = nn.BatchNorm1d(64)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    with pytest.raises(TypeError, match=f"floating-point input, got dtype {np.dtype(dtype)}"):
        if path == "module":
            bn(x)
        else:
            (kernels if path == "fused" else F).batch_norm_with_stats(x, bn.weight, bn.bias)
    for key, value in bn.state_dict().items():
        np.testing.assert_array_equal(value, before[key])  # running stats untouched


def test_pytorch_refuses_integer_batch_norm_too():
    torch = pytest.importorskip("torch")
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.nn.BatchNorm1d(4)(torch.ones(8, 4, dtype=torch.uint8))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "composed"])
def test_float16_batch_norm_accumulates_in_float32(fused):
    """N·C = 16384 values around 300: float16 sums overflow (they gave all NaN); the result
    must equal the float64 computation to float16 precision, and so must the running
    statistics and the gradients."""
    rng = np.random.default_rng(0)
    x16 = (300 + 50 * rng.standard_normal((256, 64))).astype(np.float16)
    x64 = x16.astype(np.float64)
    dy = rng.standard_normal((256, 64))
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    xhat = (x64 - mean) / np.sqrt(var + 1e-5)

    bn = nn.BatchNorm1d(64)
    x = Tensor(x16, requires_grad=True)
    if fused:
        y = bn(x)
    else:
        y, batch_mean, batch_var = F.batch_norm_with_stats(x, bn.weight, bn.bias, 1e-5)
        np.testing.assert_allclose(batch_mean.data.reshape(-1), mean, rtol=1e-6)
        np.testing.assert_allclose(batch_var.data.reshape(-1), var, rtol=1e-4)
    assert y.dtype == np.float16 and np.all(np.isfinite(y.data))
    np.testing.assert_allclose(y.data, xhat, atol=2e-3)  # float16's rounding at |x̂| ≤ 4
    (y * Tensor(dy.astype(np.float16))).sum().backward()
    dx = (dy - dy.mean(0) - xhat * (dy * xhat).mean(0)) / np.sqrt(var + 1e-5)
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad, dx, atol=2e-4, rtol=2e-2)
    np.testing.assert_allclose(bn.weight.grad, (dy * xhat).sum(0), rtol=2e-2, atol=0.5)
    if fused:
        np.testing.assert_allclose(bn.running_mean.data, 0.1 * mean, rtol=1e-5)
        np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x64.var(0, ddof=1), rtol=1e-5)


def test_float16_batch_norm_in_eval_uses_float32_running_statistics():
    rng = np.random.default_rng(1)
    x16 = (300 + 50 * rng.standard_normal((64, 8))).astype(np.float16)
    bn = nn.BatchNorm1d(8)
    bn.running_mean.data[...] = 300.3  # not a float16 number: 300.25 or 300.5 there
    bn.running_var.data[...] = 2500.0
    y = bn.eval()(Tensor(x16))
    expected = (x16.astype(np.float64) - 300.3) / np.sqrt(2500.0 + 1e-5)
    np.testing.assert_allclose(y.data, expected, atol=1e-3)


# -- no hang, nothing read past the header ------------------------------------------------


def test_endless_batches_refuses_fewer_examples_than_a_batch_at_the_call():
    X, y = np.zeros((50, 4)), np.zeros(50, dtype=np.int64)
    with pytest.raises(ValueError, match=r"50 example\(s\) cannot fill one batch of 60"):
        _mlp.endless_batches(X, y, batch_size=60, seed=0)  # no next(): refused at once
    batches = _mlp.endless_batches(X, y, batch_size=50, seed=0)
    for _ in range(3):  # exactly one batch is enough, epoch after epoch
        xb, _ = next(batches)
        assert xb.shape == (50, 4)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, n_images: int, n_labels: int) -> None:
    for prefix in ("train", "t10k"):
        images = np.zeros((n_images, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        labels = np.zeros(n_labels, dtype=np.uint8)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


def test_mnist_with_more_images_than_labels_is_refused(tmp_path):
    write_mnist(tmp_path, n_images=5, n_labels=4)
    with pytest.raises(ValueError, match="holds 5 images but .* holds 4 labels"):
        ioffe_fig1.load_mnist(tmp_path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "the file is empty"),
        (b"\x00\x00", "not an unsigned-byte IDX file"),
        (b"\x00\x00\x0d\x01" + bytes(8), "not an unsigned-byte IDX file"),  # float32 data
        (b"\x00\x00\x08\x03\x00\x00", "header truncated"),
        (idx_bytes(np.zeros((4, 3)))[:-2], "truncated: its header declares shape"),
        (idx_bytes(np.zeros((4, 3))) + b"\x00", "data past the 12 bytes"),
        (bytes([0, 0, 8, 3]) + np.array([60000, 6000, 6000], ">u4").tobytes(), "more than"),
    ],
    ids=["empty", "short magic", "float data", "short header", "truncated", "extra", "huge"],
)
def test_idx_reader_refuses_broken_files(tmp_path, content, words):
    path = tmp_path / "file-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        ioffe_fig1._read_idx(path)


def test_idx_reader_reads_only_the_declared_size_of_a_gzip_bomb(tmp_path, monkeypatch):
    """A .gz that declares 10 bytes of data but inflates to 64 MB: refused after reading the
    header, the 10 bytes and one more, not after inflating everything."""
    path = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([10], ">u4").tobytes())
        f.write(bytes(64 << 20))
    assert path.stat().st_size < 200_000
    requested = []
    real_open = gzip.open

    class Counting(io.BufferedIOBase):
        def __init__(self, inner):
            self.inner = inner

        def read(self, n=-1):
            requested.append(n)
            return self.inner.read(n)

        def __exit__(self, *exc):
            self.inner.close()

    monkeypatch.setattr(ioffe_fig1.gzip, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    with pytest.raises(ValueError, match="data past the 10 bytes"):
        ioffe_fig1._read_idx(path)
    assert all(0 <= n <= 10 for n in requested)  # never read(-1): never the whole file


def test_idx_reader_reads_a_good_gzipped_file(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(idx_bytes(labels))
    np.testing.assert_array_equal(ioffe_fig1._read_idx(path), labels)


# -- atomic results, bad output folders ----------------------------------------------------


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


def test_demo_results_json_is_written_atomically(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(_common, "write_text_atomically", lambda p, t: calls.append((p, t)))
    _common.write_results(tmp_path, {"x": np.float32(1.5), "bad": float("nan")})
    assert calls and calls[0][0] == tmp_path / "results.json"
    assert json.loads(calls[0][1]) == {"x": 1.5, "bad": None}


@pytest.mark.parametrize("kind", ["a file", "under a file", "empty"])
def test_a_bad_demo_out_is_a_one_line_error(tmp_path, capsys, kind):
    from demos import inference

    (tmp_path / "taken").write_text("not a folder")
    out = {"a file": tmp_path / "taken", "under a file": tmp_path / "taken" / "sub", "empty": ""}
    with pytest.raises(SystemExit) as exit_info:
        inference.main(["--quick", "--out", str(out[kind])])
    message = str(exit_info.value.code) if kind != "empty" else capsys.readouterr().err
    assert exit_info.value.code != 0
    expected = {"a file": "is a file, not a folder", "under a file": "cannot be written"}
    assert expected.get(kind, "needs a folder name") in message
    assert "Traceback" not in message and len(message.strip().splitlines()) <= 2


@pytest.mark.parametrize("kind", ["folder", "empty", "missing folder"])
def test_a_bad_benchmark_json_path_is_refused_before_running(tmp_path, capsys, kind):
    from benchmarks import run

    path = {"folder": str(tmp_path), "empty": "", "missing folder": str(tmp_path / "no/x.json")}
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--json", path[kind], "--cases", "scalar_bn"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    expected = {"folder": "is a folder", "empty": "needs a file name"}
    assert expected.get(kind, "does not exist") in err
    assert "running" not in err  # nothing was measured


# -- first hour ------------------------------------------------------------------------------


def test_demo_help_lists_the_demos_and_their_flags(capsys):
    from tinybn.cli import main

    assert main(["demo", "--help"]) == 0
    text = capsys.readouterr().out
    for word in ("bn_position", "gan", "placement", "--quick", "--full", "--out", "--seed"):
        assert word in text


def test_top_level_help_and_version(capsys):
    from tinybn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("demo NAME", "gan", "--quick", "--full", "--out", "--seed"):
        assert word in text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == "tinybn 0.1.0"


def test_demo_without_a_name_still_errors_and_points_to_help(capsys):
    from tinybn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert "tinybn demo --help" in capsys.readouterr().err


def test_reprs_show_significant_digits():
    assert repr(Value(1e-9)) == "Value(data=1e-09, grad=0.0)"
    tiny = Value(1e-4)
    (tiny * 3e-4).backward()
    assert repr(tiny) == "Value(data=0.0001, grad=0.0003)"
    assert repr(Value(-1.1142234)) == "Value(data=-1.11422, grad=0.0)"
    assert repr(Value(55.0, label="b")) == "Value(label='b', data=55.0, grad=0.0)"
    assert "1.e-09" in repr(Tensor(np.array([1e-9])))
    assert repr(Tensor(np.array([3e-8, 1.0]))).startswith("Tensor([3.e-08 1.e+00]")


def test_plain_numbers_as_scalar_gamma_are_refused_naming_tb_values():
    x = tb.values([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]], "x")
    with pytest.raises(TypeError, match="tb.values"):
        F.batch_norm(x, [1.0, 1.0], tb.values([0.0, 0.0], "β"))
    with pytest.raises(TypeError, match="beta .*tb.values"):
        F.batch_norm(x, tb.values([1.0, 1.0], "γ"), [0.0, 0.0])
    gamma, beta = tb.values([1.0, 1.0], "γ"), tb.values([0.0, 0.0], "β")
    y = F.batch_norm(x, gamma, beta)
    sum(v for row in y for v in row[:1]).backward()
    assert beta[0].grad == 3.0 and beta[1].grad == 0.0


def test_tb_tensor_is_the_pytorch_style_factory():
    t = tb.tensor([1, 2, 3])
    assert isinstance(t, Tensor) and t.dtype == np.int64
    assert tb.tensor([1.0, 2.5]).dtype == tb.get_default_dtype()
    assert tb.tensor([True, False]).dtype == np.bool_
    assert tb.tensor(np.arange(3.0)).dtype == np.float64  # an array keeps its dtype
    w = tb.tensor([[1, 2]], dtype=np.float64, requires_grad=True)
    assert w.dtype == np.float64 and w.requires_grad and w.shape == (1, 2)
    source = np.zeros(3)
    copy = tb.tensor(source)
    copy.data[0] = 5.0
    assert source[0] == 0.0  # a copy, as torch.tensor
    with pytest.raises(TypeError, match="floating"):
        tb.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="numbers"):
        tb.tensor(["a"])


def test_tb_tensor_matches_torch_tensor_dtypes():
    torch = pytest.importorskip("torch")
    for data in ([1, 2], [1.0, 2.0], [1, 2.0], [[True]], 3, 2.5, []):
        assert str(tb.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")


def test_the_tensor_module_stays_reachable():
    import tinybn.tensor_module as by_import

    from tinybn import tensor_module
    from tinybn.tensor import Tensor as FromModule

    assert FromModule is Tensor and tensor_module.Tensor is Tensor
    assert by_import is tensor_module and tensor_module.tensor is tb.tensor


def test_manual_seed_makes_unseeded_layers_masks_and_shuffles_repeat():
    def build():
        tb.manual_seed(123)
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
        out = model(Tensor(np.ones((16, 4), dtype=np.float32))).data
        loader = tb.data.DataLoader(np.arange(20), batch_size=5, shuffle=True)
        order = np.concatenate([b.data for b in loader])
        X, _ = tb.data.moons(10)
        mask = F.dropout(Tensor(np.ones(50)), 0.5).data
        return [model[0].weight.data, model[2].bias.data, out, order, X, mask]

    first, second = build(), build()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    tb.manual_seed(124)
    other = nn.Linear(4, 8).weight.data
    assert not np.array_equal(other, first[0])


def test_manual_seed_refuses_what_is_not_a_seed():
    with pytest.raises(TypeError, match="int"):
        tb.manual_seed(1.5)
    with pytest.raises(ValueError, match=">= 0"):
        tb.manual_seed(-1)


def test_demo_printouts_name_the_threshold_and_round_floats(tmp_path, capsys, monkeypatch):
    """The printing of three demos' main, on results of the shape their run returns (the
    experiments themselves run in test_demos1/2)."""
    from demos import bn_position, gan, inference

    fake_inference = {
        "final_errors": {"PyTorch EMA (momentum 0.1)": {"mean": 0.02, "var": 0.05}},
        "population_after_training": {"mean_error": 0.001, "var_error": 0.005},
        "forgotten_eval": {
            "train_mode_prediction_changes": 0.4,
            "train_mode_prob_range": [0.043107133358716965, 0.9615419507026672],
            "test_set_prediction_flips_train_mode": 0.05,
            "test_set_prediction_flips_eval_mode": 0.0,
        },
        "fold": {"max_abs_difference": 5.7e-06},
    }
    monkeypatch.setattr(inference, "run", lambda *a, **k: fake_inference)
    assert inference.main(["--quick", "--out", str(tmp_path / "i")]) == 0
    text = capsys.readouterr().out
    assert "probability range [0.0431, 0.962]" in text

    row = {"activation": "sigmoid", "placement": "none", "final_train_loss": 2.2}
    fake_table = [
        {**row, "final_test_acc": 0.1, "steps_to_threshold": None},
        {**row, "final_test_acc": 0.9, "steps_to_threshold": 43},
    ]
    monkeypatch.setattr(bn_position, "run", lambda *a, **k: {"table": fake_table, "steps": 80})
    assert bn_position.main(["--quick", "--out", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "None" not in text and "steps_to_loss<0.3" in text
    assert "never" in text and "below 0.3 (never: not within 80 steps)" in text

    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gan, "run", stop)
    with pytest.raises(KeyboardInterrupt):
        gan.main(["--quick", "--out", str(tmp_path / "g")])
    assert capsys.readouterr().out.startswith("gan (quick scale)")
