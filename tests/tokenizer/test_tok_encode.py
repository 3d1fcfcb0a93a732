"""encode -> token store -> decode: contents, resume after an interruption, bad input."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from tok_helpers import shapes_images, tiny_config

from mirai_cli.data.crops import make_crops, to_model_input, to_uint8
from mirai_cli.data.sources import open_source
from mirai_cli.data.store import TokenStore, store_info
from mirai_cli.errors import MiraiError
from mirai_cli.tokenizer.checkpoint import save_tokenizer
from mirai_cli.tokenizer.decode import decode_store_entries
from mirai_cli.tokenizer.encode import encode_store
from mirai_cli.tokenizer.vq_model import VQModel

ARGS = {"image_size": 16, "batch_size": 3, "precision": "fp32", "device": "cpu", "show_progress": False}


class Interrupt(Exception):
    pass


def _files(store):
    """Every file's bytes; a manifest's creation time and commit (provenance, not content: a commit made while
    the two encodes run changes it) are left out."""
    def content(p):
        if p.name == "manifest.json":
            data = json.loads(p.read_text())
            data.pop("created", None)
            data.pop("git_commit", None)
            return json.dumps(data, sort_keys=True).encode()
        return p.read_bytes()

    return {p.relative_to(store): content(p) for p in sorted(store.rglob("*")) if p.is_file()}


def test_store_contents_match_the_model_and_decode_round_trips(tiny_tokenizer, image_folder, tmp_path):
    tok, model, _cfg = tiny_tokenizer
    out = tmp_path / "store"
    manifest = encode_store(tok, str(image_folder), out, crop_mode="tencrop", shard_size=4, extra={"preset": "t"}, **ARGS)
    assert manifest["status"] == "complete" and manifest["count"] == 11 and manifest["num_shards"] == 3
    store = TokenStore.open(out, verify=True)
    assert store.codes.shape == (11, 10, 64) and store.codes.dtype == np.uint16
    assert store.manifest["grid"] == [8, 8] and store.manifest["extra"] == {"preset": "t"}
    assert store.manifest["class_names"] == ["class0", "class1", "class2"]
    src = open_source(str(image_folder))
    assert store.labels.tolist() == [src.label(i) for i in range(11)]
    assert store.source_index.tolist() == list(range(11))
    for i in (0, 5, 10):  # crosses shards
        crops = make_crops(src.read(i)[0], 16, "tencrop")
        assert np.array_equal(store.crop_pixels([i], [3])[0], crops[3])
        expect = model.encode_to_codes(to_model_input(crops)).numpy()
        assert np.array_equal(store.codes[i], expect)
    assert np.array_equal(store.codes.get([1, 9], [0, 7]), np.stack([store.codes[1][0], store.codes[9][7]]))
    # decode: the PNG holds the decoder's output for the stored codes
    png = decode_store_entries(out, tok, [2, 7], tmp_path / "check.png", crop=4, nrow=2, device="cpu")
    grid = np.asarray(Image.open(png))
    want = to_uint8(model.decode_codes(torch.from_numpy(store.codes.get([2, 7], [4, 4]).astype(np.int64)), (8, 8)))
    assert np.array_equal(grid[2:18, 2:18], want[0]) and np.array_equal(grid[2:18, 20:36], want[1])
    info = store_info(out)
    assert info["count"] == 11 and info["num_crops"] == 10 and info["status"] == "complete"
    assert info["dtype"] == "uint16" and 2.0 <= info["bytes_per_token"] < 2.2  # 2 bytes + small npy headers


def test_resume_after_interruption_is_byte_identical(tiny_tokenizer, tmp_path):
    tok, _, _ = tiny_tokenizer
    imgs, labels = shapes_images(10)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    full, part = tmp_path / "full", tmp_path / "part"
    encode_store(tok, str(tmp_path / "d.npz"), full, crop_mode="flip", shard_size=3, **ARGS)

    def stop_after_two(k):
        if k == 1:
            raise Interrupt()

    with pytest.raises(Interrupt):
        encode_store(tok, str(tmp_path / "d.npz"), part, crop_mode="flip", shard_size=3, on_shard_done=stop_after_two,
                     **ARGS)
    with pytest.raises(MiraiError, match="incomplete"):
        TokenStore.open(part)
    (part / "shards" / ".00002.codes.npy.tmp999").write_bytes(b"half a file")  # a write cut short by a kill
    done = []
    encode_store(tok, str(tmp_path / "d.npz"), part, crop_mode="flip", shard_size=3, on_shard_done=done.append, **ARGS)
    assert done == [2, 3]  # only the unfinished shards ran
    assert _files(part) == _files(full)
    logs = []
    encode_store(tok, str(tmp_path / "d.npz"), part, crop_mode="flip", shard_size=3, on_shard_done=done.append,
                 log=logs.append, **ARGS)
    assert done == [2, 3] and "already complete" in logs[0]  # a finished store is not redone


def test_unreadable_images_skipped_with_count_or_fatal_when_strict(tiny_tokenizer, image_folder, tmp_path):
    tok, _, _ = tiny_tokenizer
    good = (image_folder / "class1" / "001.png").read_bytes()
    (image_folder / "class1" / "002_truncated.png").write_bytes(good[: len(good) // 2])
    (image_folder / "class2" / "zz_garbage.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    logs = []
    m = encode_store(tok, str(image_folder), tmp_path / "s", crop_mode="none", shard_size=5, log=logs.append, **ARGS)
    assert m["skipped_count"] == 2 and m["count"] == 11
    assert {s["path"].split("/")[-1] for s in m["skipped"]} == {"002_truncated.png", "zz_garbage.jpg"}
    assert any("002_truncated.png" in line for line in logs) and any("2 unreadable" in line for line in logs)
    store = TokenStore.open(tmp_path / "s")
    src = open_source(str(image_folder))
    assert [src.label(int(i)) for i in store.source_index] == store.labels.tolist()
    # strict: the first bad file stops the run with its path; shards finished before it are kept
    with pytest.raises(MiraiError, match="002_truncated.png"):
        encode_store(tok, str(image_folder), tmp_path / "strict", crop_mode="none", shard_size=3, strict=True, **ARGS)
    assert (tmp_path / "strict" / "shards" / "00000.done.json").is_file()


def test_store_made_by_another_tokenizer_or_settings(tiny_tokenizer, tmp_path):
    tok, _, cfg = tiny_tokenizer
    imgs, labels = shapes_images(4)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    out = tmp_path / "store"
    encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="none", **ARGS)
    torch.manual_seed(5)
    other = tmp_path / "other.pt"
    save_tokenizer(other, VQModel(cfg), cfg, {"image_size": 16})
    with pytest.raises(MiraiError, match="another tokenizer"):
        encode_store(other, str(tmp_path / "d.npz"), out, crop_mode="none", **ARGS)
    with pytest.raises(MiraiError, match="crop_mode"):
        encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="flip", **ARGS)
    from mirai_cli.files.hashing import sha256_file

    with pytest.raises(MiraiError, match="another tokenizer"):
        TokenStore.open(out, expect_tokenizer_sha256=sha256_file(other))
    with pytest.raises(MiraiError, match="another tokenizer"):
        decode_store_entries(out, other, [0], tmp_path / "x.png", device="cpu")
    assert TokenStore.open(out).codes.shape == (4, 1, 64)  # the store itself is untouched


def test_corrupt_and_foreign_stores(tiny_tokenizer, tmp_path):
    tok, _, _ = tiny_tokenizer
    imgs, labels = shapes_images(4)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    out = tmp_path / "store"
    encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="none", **ARGS)
    codes = out / "shards" / "00000.codes.npy"
    codes.write_bytes(codes.read_bytes()[:-40])
    with pytest.raises(MiraiError, match="corrupt"):
        TokenStore.open(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(MiraiError, match="corrupt"):
        TokenStore.open(out)
    with pytest.raises(MiraiError, match="not a token store"):
        TokenStore.open(tmp_path)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    with pytest.raises(MiraiError, match="not a token store"):
        encode_store(tok, str(tmp_path / "d.npz"), tmp_path / "occupied", **ARGS)
    assert (tmp_path / "occupied" / "notes.txt").read_text() == "mine"


def test_resume_redoes_a_damaged_finished_shard(tiny_tokenizer, tmp_path):
    tok, _, _ = tiny_tokenizer
    imgs, labels = shapes_images(6)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    out = tmp_path / "s"
    with pytest.raises(Interrupt):
        encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="none", shard_size=2,
                     on_shard_done=lambda k: (_ for _ in ()).throw(Interrupt()) if k == 1 else None, **ARGS)
    good = (out / "shards" / "00000.codes.npy").read_bytes()
    (out / "shards" / "00000.codes.npy").write_bytes(good[:-2] + b"\x00\x00")
    done = []
    encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="none", shard_size=2, on_shard_done=done.append, **ARGS)
    assert done == [0, 2]
    assert (out / "shards" / "00000.codes.npy").read_bytes() == good
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_large_codebook_uses_int32(tmp_path):
    cfg = tiny_config(codebook_size=65537, codebook_dim=2)
    save_tokenizer(tmp_path / "big.pt", VQModel(cfg), cfg, {"image_size": 16})
    imgs, labels = shapes_images(2)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    encode_store(tmp_path / "big.pt", str(tmp_path / "d.npz"), tmp_path / "s", crop_mode="none", **ARGS)
    store = TokenStore.open(tmp_path / "s")
    assert store.codes.dtype == np.int32 and store.manifest["dtype"] == "int32"


def test_empty_source_message(tiny_tokenizer, tmp_path):
    tok, _, _ = tiny_tokenizer
    (tmp_path / "empty").mkdir()
    with pytest.raises(MiraiError, match="no images found"):
        encode_store(tok, str(tmp_path / "empty"), tmp_path / "s", **ARGS)
    assert not (tmp_path / "s").exists()


RANK_SCRIPT = """
import sys
import torch
from mirai_cli.tokenizer.encode import encode_store
torch.set_num_threads(1)
tok, src, out, workers = sys.argv[1:5]
encode_store(tok, src, out, image_size=16, batch_size=3, precision="fp32", device="cpu", show_progress=False,
             crop_mode="flip", shard_size=3, num_workers=int(workers))
"""


@pytest.mark.slow
def test_two_ranks_with_worker_processes_write_the_one_process_store(tiny_tokenizer, image_folder, tmp_path):
    """torchrun --nproc_per_node 2 (gloo), images decoded in 2 DataLoader workers per rank: the store (shards,
    markers, manifest) equals byte for byte the one a single process with no workers writes."""
    import os
    import subprocess
    import sys

    tok, _, _ = tiny_tokenizer
    (image_folder / "class1" / "zz_garbage.png").write_bytes(b"not an image")  # a skip record on some rank
    one = encode_store(tok, str(image_folder), tmp_path / "one", crop_mode="flip", shard_size=3, **ARGS)
    assert one["num_shards"] == 4 and one["skipped_count"] == 1
    script = tmp_path / "encode_rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tok), str(image_folder), str(tmp_path / "two"), "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert _files(tmp_path / "two") == _files(tmp_path / "one")


def test_opening_a_store_only_reads_it_and_remembers_checks_in_the_cache(tiny_tokenizer, tmp_path, monkeypatch):
    """A read never writes into the user's store: which shards were verified is kept in the user cache (the
    folder $MIRAI_CACHE names), keyed by the store's path and its files' sizes/mtimes; no writable cache: no memo."""
    import mirai_cli.data.store as store_mod

    tok, _, _ = tiny_tokenizer
    imgs, labels = shapes_images(4)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    out = tmp_path / "store"
    encode_store(tok, str(tmp_path / "d.npz"), out, crop_mode="none", **ARGS)
    listing = lambda: {p: p.stat().st_mtime_ns for p in out.rglob("*")}  # noqa: E731
    before = listing()
    monkeypatch.setenv("MIRAI_CACHE", str(tmp_path / "cache"))
    checks = []
    real_check = store_mod._check_shard
    monkeypatch.setattr(store_mod, "_check_shard", lambda *a: checks.append(a[2]["name"]) or real_check(*a))

    TokenStore.open(out)
    assert listing() == before  # no new or rewritten file in the store
    memos = list((tmp_path / "cache").rglob("*.json"))
    assert len(memos) == 1 and str(out.resolve()) in memos[0].read_text()
    TokenStore.open(out)
    assert checks == ["00000"]  # the second open trusts the memo
    codes = out / "shards" / "00000.codes.npy"
    os.utime(codes, ns=(codes.stat().st_atime_ns, codes.stat().st_mtime_ns + 10**9))
    TokenStore.open(out)
    assert checks == ["00000", "00000"]  # a touched shard is checked again

    (tmp_path / "not_a_folder").write_text("x")  # a cache that cannot be made (even as root): open still works
    monkeypatch.setenv("MIRAI_CACHE", str(tmp_path / "not_a_folder"))
    before = listing()
    assert len(TokenStore.open(out)) == 4 and listing() == before
