"""Evaluation test setup: no network (any connection attempt is recorded and refused), a private cache and
torch home per test, the tiny registered extractor, and small image sets made by the tests."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import tiny_extractor


def _openblas_threads_fns():
    """numpy's bundled OpenBLAS (set, get) thread functions, or (None, None)."""
    import ctypes
    import glob
    import os

    import numpy

    for lib in glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*")):
        dll = ctypes.CDLL(lib)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"), ("openblas_", "")):
            set_fn = getattr(dll, f"{prefix}set_num_threads{suffix}", None)
            get_fn = getattr(dll, f"{prefix}get_num_threads{suffix}", None)
            if set_fn is not None and get_fn is not None:
                return set_fn, get_fn
    return None, None


_BLAS_SET, _BLAS_GET = _openblas_threads_fns()


@pytest.fixture(autouse=True)
def one_thread():
    """One thread for torch and OpenBLAS in these tests (restored after each): the 2 cores are shared with other
    jobs, and oversubscribed threads make Inception 2-3x and FID's 2048x2048 eigvals (OpenBLAS busy-waiting)
    ~7x slower here."""
    torch_threads = torch.get_num_threads()
    blas_threads = _BLAS_GET() if _BLAS_GET else None
    torch.set_num_threads(1)
    if _BLAS_SET:
        _BLAS_SET(1)
    yield
    torch.set_num_threads(torch_threads)
    if _BLAS_SET and blas_threads:
        _BLAS_SET(blas_threads)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every DNS lookup or connect raises and is recorded; tests assert the list stays empty where it must."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(autouse=True)
def private_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("MIRAI_CACHE", str(tmp_path / "mirai_cache"))
    monkeypatch.delenv("MIRAI_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("MIRAI_OFFLINE", raising=False)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    path = tiny_extractor.make_weights(tmp_path_factory.mktemp("tiny") / "tiny.pt", seed=0)
    tiny_extractor.WEIGHTS["path"] = path
    return path


@pytest.fixture
def tiny(tiny_weights, tmp_path):
    """EvalSettings for the tiny extractor with a private cache."""
    from mirai_cli.evaluation import EvalSettings

    def make(**kw):
        base = {"extractor": "tiny-test", "cache_dir": str(tmp_path / "cache"), "kid_subset_size": 10, "isc_splits": 4,
                    "batch_size": 16}
        base.update(kw)
        return EvalSettings(**base)

    return make
