"""Nothing a user made is orphaned or overwritten without asking: tokenizer refits, folder locks, scratch files
of killed jobs, a full disk. Every case runs the real command line in a subprocess."""

import json
import os
import resource
import signal

import numpy as np
import pytest
from clirun import assert_ok, assert_one_line_error, hold_lock, mirai, tiny_vq_args
from mirai_testdata import make_class_images

from mirai_cli.files.locks import LOCK_FILE


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A fitted tokenizer and its token store, made with the CLI."""
    root = tmp_path_factory.mktemp("fitted")
    images, labels = make_class_images(40, size=16)
    np.savez(root / "images.npz", images=images, labels=labels)
    args = tiny_vq_args(root, root / "images.npz")
    assert_ok(mirai("tokenize", "fit", *args, "--quiet"))
    assert_ok(mirai("tokenize", "encode", *args, "--quiet"))
    return root, args


@pytest.mark.slow
def test_refit_never_overwrites_and_force_keeps_the_identity(fitted, tmp_path):
    root, args = fitted
    tok = root / "tok" / "tokenizer.pt"
    before = tok.read_bytes()
    # the same settings again: nothing to do, said as such, exit 0, nothing rewritten
    again = mirai("tokenize", "fit", *args, "--quiet")
    assert_ok(again)
    said = (again.stdout + again.stderr).replace("\n", "")  # rich may wrap the line
    assert "already fitted, nothing to do" in said and str(root / "tok") in said
    assert tok.read_bytes() == before
    # a changed setting still refuses, naming the folder
    line = assert_one_line_error(mirai("tokenize", "fit", *args, "--set", "tokenizer.fit_steps=5", "--quiet"),
                                 "already holds a finished tokenizer", "--out", "--force", code=2)
    assert str(root / "tok") in line and tok.read_bytes() == before
    # --force with the same settings: the file's bytes change (it records the run time), the tokenizer does not
    assert_ok(mirai("tokenize", "fit", *args, "--quiet", "--force"))
    assert tok.read_bytes() != before
    assert_ok(mirai("tokenize", "decode", root / "store", "--out", tmp_path / "g.png", "--count", "2"))
    assert_ok(mirai("tokenize", "encode", *args, "--quiet"))  # the store is still this tokenizer's: complete


@pytest.mark.slow
def test_a_second_job_stops_naming_the_holder_and_stale_locks_are_taken_over(fitted, tmp_path):
    root, args = fitted
    store = tmp_path / "store2"
    holder = hold_lock(store)
    try:
        line = assert_one_line_error(mirai("tokenize", "encode", *args, "--set", f"data.store={store}", "--quiet"),
                                     "in use by another mirai job", f"pid {holder.pid}", "-c ", code=2)
        assert str(store) in line and not (store / "manifest.json").exists()
        line = assert_one_line_error(mirai("tokenize", "fit", *args, "--out", store, "--quiet"), f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert (store / LOCK_FILE).is_file()  # the killed holder left its lock behind: stale, taken over
    assert_ok(mirai("tokenize", "encode", *args, "--set", f"data.store={store}", "--quiet"))
    assert not (store / LOCK_FILE).exists()  # released at the end


@pytest.mark.slow
def test_run_and_sample_folders_are_locked(tiny_store, tmp_path):
    from mirai_testdata import tiny_overrides

    run = tmp_path / "run"
    sets = [x for item in tiny_overrides(tiny_store, run, **{"train.duration": 2}) for x in ("--set", item)]
    holder = hold_lock(run)
    try:
        assert_one_line_error(mirai("train", "--preset", "tiny", *sets, "--quiet"), "in use by another mirai job",
                              f"pid {holder.pid}", code=2)
        assert not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    assert_ok(mirai("train", "--preset", "tiny", *sets, "--quiet"))
    out = tmp_path / "samples"
    holder = hold_lock(out)
    try:
        assert_one_line_error(mirai("sample", run, "--preset", "tiny", *sets, "--per-class", "1", "--out", out,
                                    "--quiet"), "in use by another mirai job", code=2)
    finally:
        holder.kill()
        holder.wait()
    # a killed sampler's scratch (the npz being assembled) is cleaned by the next run in that folder
    scratch = out / ".arr_0.tmp99999.npy"
    scratch.write_bytes(b"\0" * 1000)
    assert_ok(mirai("sample", run, "--preset", "tiny", *sets, "--per-class", "1", "--out", out, "--quiet"))
    assert not scratch.exists() and (out / "samples.npz").is_file()
    assert json.loads((out / "sample_manifest.json").read_text())["identity"]["count"] == 4


def _small_files():
    """In the child: files may not grow past 64 KiB (a full disk, as Python sees it: EFBIG, SIGXFSZ ignored)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow
def test_full_disk_is_one_line_and_earlier_outputs_stay(fitted, tmp_path):
    root, args = fitted
    out = tmp_path / "tok"
    result = mirai("tokenize", "fit", *args, "--out", out, "--quiet", preexec_fn=_small_files)
    assert_one_line_error(result, "no space left to write", "intact", code=1)
    assert not (out / "tokenizer.pt").exists()
    assert not [p for p in out.rglob(".*.tmp*")]  # no half-written file left behind
    assert_ok(mirai("tokenize", "fit", *args, "--out", out, "--quiet"))  # with space again: finishes
    assert os.path.getsize(out / "tokenizer.pt") > 64 * 1024
