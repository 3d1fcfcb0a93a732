"""Metric values with a small real extractor ("tiny-test", registered with torch-fidelity): the same numbers
as torch_fidelity.calculate_metrics, FID ~ 0 for identical sets, folder == npz, cached reference statistics
reused, statistics files. (Stored ADM mu/sigma are Inception statistics: tested in test_eval_inception.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch_fidelity
from evalhelpers import images, write_folder, write_npz

from mirai_cli.evaluation import cache_reference, compute_reference_stats, evaluate

ALL = ("fid", "isc", "kid", "prc")


def labels_seen(log):
    return {label for label, _, _ in log}


def test_same_numbers_as_calculate_metrics(tmp_path, tiny, tiny_weights):
    a = write_folder(tmp_path / "a", images(24, seed=0))
    b = write_folder(tmp_path / "b", images(24, seed=1, style="dark"))
    ours = evaluate(a, b, tiny(metrics=ALL, use_cache=False))
    theirs = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), fid=True, isc=True, kid=True, prc=True, feature_extractor="tiny-test",
        feature_extractor_weights_path=str(tiny_weights), cuda=False, cache=False, verbose=False,
        save_cpu_ram=True, isc_splits=4, kid_subset_size=10, batch_size=16)
    assert ours.values["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours.values["isc_mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours.values["kid_mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5, abs=1e-9)
    assert ours.values["precision"] == theirs["precision"] and ours.values["recall"] == theirs["recall"]
    assert ours.ok and ours.values["fid"] > 0


def test_identical_sets_give_zero_and_perfect_prc(tmp_path, tiny):
    a = write_npz(tmp_path / "a.npz", images(24, seed=3))
    r = evaluate(a, a, tiny(metrics=("fid", "kid", "prc")))
    different = evaluate(a, images(24, seed=4, style="dark"), tiny(metrics=("fid", "kid")))
    assert abs(r.values["fid"]) < 1e-6 < different.values["fid"]
    # KID is unbiased with random subsets: ~0 (either sign) for identical sets, far below a real difference
    assert abs(r.values["kid_mean"]) < 0.05 * different.values["kid_mean"]
    assert r.values["precision"] == 1.0 and r.values["recall"] == 1.0


def test_folder_and_npz_give_the_same_number(tmp_path, tiny):
    s, ref = images(20, seed=4), images(20, seed=5, style="dark")
    folder = write_folder(tmp_path / "s", s)
    npz = write_npz(tmp_path / "s.npz", s)
    ref_npz = write_npz(tmp_path / "r.npz", ref)
    f1 = evaluate(folder, ref_npz, tiny()).values["fid"]
    f2 = evaluate(npz, ref_npz, tiny()).values["fid"]
    f3 = evaluate(s, write_folder(tmp_path / "r", ref), tiny()).values["fid"]  # in-memory array, reference folder
    assert f1 > 0.0
    assert f1 == pytest.approx(f2, rel=1e-9) and f1 == pytest.approx(f3, rel=1e-9)


def test_cached_reference_costs_no_extraction_and_gives_the_same_number(tmp_path, tiny):
    s = write_npz(tmp_path / "s.npz", images(20, seed=9))
    ref = write_folder(tmp_path / "ref", images(30, seed=10, style="dark"))
    first_log, second_log = [], []
    first = evaluate(s, ref, tiny(metrics=ALL), progress=lambda *a: first_log.append(a))
    second = evaluate(s, ref, tiny(metrics=ALL), progress=lambda *a: second_log.append(a))
    assert labels_seen(first_log) == {"reference", "samples"}
    assert labels_seen(second_log) == {"samples"}  # the reference side came from the cache
    assert second.reference["fid_statistics"] == "cache" and second.reference["features"] == ["cache"]
    assert second.values == first.values
    # a changed reference image changes the content hash: the cache is not fooled
    write_folder(ref, images(1, seed=11))
    third_log = []
    evaluate(s, ref, tiny(), progress=lambda *a: third_log.append(a))
    assert "reference" in labels_seen(third_log)


def test_cache_reference_lets_later_evaluations_skip_the_reference(tmp_path, tiny):
    s = write_npz(tmp_path / "s.npz", images(20, seed=14))
    ref = write_folder(tmp_path / "ref", images(30, seed=15, style="dark"))
    assert cache_reference(ref, tiny(metrics=ALL, use_cache=False)) is False  # no cache: nothing to fill
    assert cache_reference(ref, tiny(metrics=ALL)) is True
    assert cache_reference(ref, tiny(metrics=ALL)) is False  # already cached
    log = []
    r = evaluate(s, ref, tiny(metrics=ALL), progress=lambda *a: log.append(a))
    assert labels_seen(log) == {"samples"}
    assert r.reference["fid_statistics"] == "cache" and r.reference["features"] == ["cache"]
    assert r.values == evaluate(s, ref, tiny(metrics=ALL, use_cache=False)).values


def test_stats_file_round_trip(tmp_path, tiny):
    s = write_npz(tmp_path / "s.npz", images(20, seed=12))
    ref = write_npz(tmp_path / "r.npz", images(24, seed=13, style="dark"))
    meta = compute_reference_stats(ref, tmp_path / "stats.npz", tiny(), with_features=True)
    assert meta["count"] == 24 and meta["extractor"] == "tiny-test" and meta["feature_layers"] == ["feat"]
    with np.load(tmp_path / "stats.npz") as z:  # ADM-readable layout: mu and sigma at the top level
        assert z["mu"].shape == (24,) and z["sigma"].shape == (24, 24) and z["features_feat"].shape == (24, 24)
    direct = evaluate(s, ref, tiny(metrics=ALL))
    log = []
    via_file = evaluate(s, tmp_path / "stats.npz", tiny(metrics=ALL, use_cache=False), progress=lambda *a: log.append(a))
    assert labels_seen(log) == {"samples"}
    for key in ("fid", "isc_mean", "kid_mean", "precision", "recall"):
        assert via_file.values[key] == pytest.approx(direct.values[key], rel=1e-6, abs=1e-12), key
    assert via_file.reference["kind"] == "stats" and via_file.reference["count"] == 24


def test_result_json_names_extractor_and_counts(tmp_path, tiny):
    s = write_npz(tmp_path / "s.npz", images(16, seed=14))
    r = evaluate(s, s, tiny(metrics=("fid", "isc")))
    d = r.to_dict()
    assert list(d["metrics"]) == ["FD-tiny", "IS-tiny", "IS-tiny std"]
    assert "not comparable" in d["comparability"]
    assert d["samples"]["count"] == 16 and d["reference"]["count"] == 16 and d["image_size"] == [16, 16]
    assert d["reference"]["id"] and d["extractor"]["weights"]["sha256"]
    assert {"mirai", "torch", "torch-fidelity", "numpy"} <= set(d["versions"]) and d["ok"] is True
    r.write_json(tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text().startswith("{")


def test_fashion_mnist_reference_through_data_helper(tmp_path, tiny):
    from mirai_cli.data.builtin import fashion_mnist_dirs

    if not any((d / "train-images-idx3-ubyte.gz").is_file() for d in fashion_mnist_dirs()):
        pytest.skip("Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)")
    s = write_npz(tmp_path / "s.npz", images(20, size=28, seed=15))
    r = evaluate(s, "fashion-mnist", tiny(ref_limit=40))
    assert r.reference["kind"] == "dataset" and r.reference["count"] == 40 and r.values["fid"] > 0
