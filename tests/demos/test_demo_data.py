"""The demos' data helpers: endless_batches refuses too few examples at the call, and the
MNIST IDX reader refuses broken files without hanging or reading past the declared size."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from tinybn.demos import _mlp, ioffe_fig1


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
