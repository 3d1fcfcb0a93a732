"""torch-fidelity's Inception (inception-v3-compat) offline: weights from a file the test makes (random, fixed
seed, features that do not collapse), from $MIRAI_INCEPTION_WEIGHTS, from the torch hub cache; a clear, fast
error without weights and network; stored ADM mu/sigma used for FID. Few 32 px images: Inception runs at 299."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from evalhelpers import images, write_npz

from mirai_cli.errors import MiraiError
from mirai_cli.evaluation import (
    EvalSettings,
    compute_reference_stats,
    evaluate,
    make_random_inception_weights,
)
from mirai_cli.evaluation.weights import (
    INCEPTION_URL,
    hub_inception_path,
    network_available,
    resolve_inception_weights,
)


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory):
    return make_random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth", seed=0)


def settings(tmp_path, **kw):
    base = {"metrics": ("fid",), "cache_dir": str(tmp_path / "cache"), "batch_size": 8}
    base.update(kw)
    return EvalSettings(**base)


def test_offline_without_weights_is_one_fast_line(tmp_path, no_network):
    write_npz(tmp_path / "s.npz", images(4, size=32))
    t0 = time.perf_counter()
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "s.npz", settings(tmp_path))
    assert time.perf_counter() - t0 < 10  # the probe gives up at once (or after 2 s), no network timeout
    msg = str(e.value)
    assert "\n" not in msg and "no network" in msg
    assert INCEPTION_URL in msg and str(hub_inception_path()) in msg
    assert "--inception-weights" in msg and "MIRAI_INCEPTION_WEIGHTS" in msg and "efficientnet-lite2" in msg
    with pytest.raises(MiraiError, match="downloads are turned off"):
        evaluate(tmp_path / "s.npz", tmp_path / "s.npz", settings(tmp_path, allow_download=False))


def test_weights_sources_in_order(tmp_path, inception_file, monkeypatch):
    assert not network_available()  # refused by the test guard, quickly
    monkeypatch.setattr("mirai_cli.evaluation.weights.network_available", lambda *a, **k: True)
    assert resolve_inception_weights() == (None, "downloaded by torch-fidelity")  # online: torch-fidelity's path
    hub = hub_inception_path()
    hub.parent.mkdir(parents=True)
    shutil.copy(inception_file, hub)
    assert resolve_inception_weights() == (hub, "torch hub cache")  # downloaded before: no network needed
    monkeypatch.setenv("MIRAI_INCEPTION_WEIGHTS", str(inception_file))
    assert resolve_inception_weights() == (inception_file.resolve(), "$MIRAI_INCEPTION_WEIGHTS")
    assert resolve_inception_weights(str(hub))[1] == "--inception-weights"
    with pytest.raises(MiraiError, match="file not found"):
        resolve_inception_weights(str(tmp_path / "missing.pth"))


def test_wrong_weights_file(tmp_path):
    import torch

    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    write_npz(tmp_path / "s.npz", images(4, size=32))
    for name, needle in (("other.pth", "is not torch-fidelity's Inception"), ("junk.pth", "cannot read Inception")):
        with pytest.raises(MiraiError, match=needle):
            evaluate(tmp_path / "s.npz", tmp_path / "s.npz",
                     settings(tmp_path, inception_weights=str(tmp_path / name)))


def test_inception_fid_cached_stats_and_stored_mu_sigma(tmp_path, inception_file, monkeypatch, no_network):
    a, b = images(5, size=32, seed=0), images(5, size=32, seed=1, style="dark")
    a_npz, b_npz = write_npz(tmp_path / "a.npz", a), write_npz(tmp_path / "b.npz", b)
    log = []
    first = evaluate(a_npz, b_npz, settings(tmp_path, inception_weights=str(inception_file)),
                     progress=lambda *x: log.append(x[0]))
    fid_ab = first.values["fid"]
    assert log[0] == "reference" and set(log) == {"reference", "samples"}
    assert first.names["fid"] == "FID" and first.comparable and fid_ab > 0
    assert first.extractor["weights"]["origin"] == "--inception-weights"
    assert any("biased" in n for n in first.notes)

    # statistics file from the cached reference features: no extraction at all
    log.clear()
    meta = compute_reference_stats(b_npz, tmp_path / "b-stats.npz", settings(tmp_path, inception_weights=str(inception_file)),
                                   progress=lambda *x: log.append(x[0]))
    assert log == [] and meta["layer"] == "2048" and meta["count"] == 5

    # an ADM-style batch whose arr_0 is `a` but whose mu/sigma are b's: FID must use the stored statistics
    with np.load(tmp_path / "b-stats.npz") as z:
        adm = write_npz(tmp_path / "adm.npz", a, mu=z["mu"], sigma=z["sigma"])
    monkeypatch.setenv("MIRAI_INCEPTION_WEIGHTS", str(inception_file))
    log.clear()
    stored = evaluate(a_npz, adm, settings(tmp_path), progress=lambda *x: log.append(x[0]))
    assert set(log) == {"samples"}  # arr_0 is not even read for FID
    assert stored.values["fid"] == pytest.approx(fid_ab, rel=1e-5)
    assert stored.reference["fid_statistics"] == "stored in adm file"
    assert any("official Inception weights" in n for n in stored.notes)  # random test weights are not official

    assert no_network == []  # nothing tried to reach the network


def test_download_failure_is_one_line(tmp_path, monkeypatch, no_network):
    """The probe said online, then torch-fidelity's download fails (refused here): still one clear line."""
    monkeypatch.setattr("mirai_cli.evaluation.weights.network_available", lambda *a, **k: True)
    write_npz(tmp_path / "s.npz", images(4, size=32))
    with pytest.raises(MiraiError) as e:
        evaluate(tmp_path / "s.npz", tmp_path / "s.npz", settings(tmp_path))
    assert "download failed" in str(e.value) and INCEPTION_URL in str(e.value) and "\n" not in str(e.value)
    assert no_network  # torch-fidelity did try its normal download path
    assert not hub_inception_path().exists()  # nothing half-written is left to be mistaken for weights
