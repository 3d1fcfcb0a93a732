"""Bad input through the real command line (a subprocess): exit non-zero, one `error:` line naming the file or
flag and the fix, no traceback, nothing written half."""

import json
import shutil

import numpy as np
import pytest
import torch
from clirun import assert_one_line_error, mirai, tiny_vq_args
from mirai_testdata import make_class_images
from PIL import Image

from mirai_cli.data.store import TokenStore


def _image_folder(root, n, readable):
    """root/<class>/NN.png for n images; those not in `readable` are garbage bytes with a .png name."""
    images, labels = make_class_images(n, size=16)
    files = []
    for i in range(n):
        folder = root / f"c{labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        files.append(folder / f"{i:03d}.png")
    files.sort()  # the order the folder source reads them in
    for i, path in enumerate(files):
        if i in readable:
            Image.fromarray(images[i]).save(path)
        else:
            path.write_bytes(b"not an image")
    return root


@pytest.mark.slow
def test_tokenize_fit_bad_state_files_and_unreadable_images(tmp_path):
    images, labels = make_class_images(24, size=16)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    args = tiny_vq_args(tmp_path, tmp_path / "d.npz")
    out = tmp_path / "tok"
    (out / "checkpoints").mkdir(parents=True)
    state = out / "checkpoints" / "last.pt"
    state.write_bytes(b"\x80\x04 truncated")
    assert_one_line_error(mirai("tokenize", "fit", *args, "--out", out, "--quiet"), "cannot read the fit state",
                          str(state), "delete it", code=2)

    class Evil:  # a state file whose unpickling would run code
        def __reduce__(self):
            return (shutil.copy, (str(tmp_path / "d.npz"), str(tmp_path / "pwned")))

    torch.save({"model": Evil()}, state)
    assert_one_line_error(mirai("tokenize", "fit", *args, "--out", out, "--quiet"), "cannot read the fit state")
    assert not (tmp_path / "pwned").exists()

    broken = _image_folder(tmp_path / "broken", 12, readable=set())
    result = mirai("tokenize", "fit", *args, "--set", f"data.source={broken}", "--out", tmp_path / "t2", "--quiet")
    assert_one_line_error(result, "none of the", "can be read", code=2)

    from mirai_cli.tokenizer.fit import split_indices

    _, held_out = split_indices(20, 256, 0)
    only_held_out = _image_folder(tmp_path / "held", 20, readable=set(held_out.tolist()))
    result = mirai("tokenize", "fit", *args, "--set", f"data.source={only_held_out}", "--out", tmp_path / "t3",
                   "--quiet", timeout=120)
    assert_one_line_error(result, "training images", "can be read")
    assert not (tmp_path / "t3" / "tokenizer.pt").exists()


def test_encode_of_unreadable_images_fails_and_never_looks_finished(tiny_store, tmp_path):
    broken = _image_folder(tmp_path / "broken", 6, readable=set())
    store = tmp_path / "store"
    args = ["--preset", "tiny", "--set", f"data.source={broken}", "--set", f"data.store={store}", "--set",
            f"tokenizer.checkpoint={tiny_store['tokenizer']}", "--set", "data.image_size=16", "--set", "data.val_images=0", "--quiet"]
    for _ in range(2):  # the rerun fails the same way: the failed store never became "complete"
        assert_one_line_error(mirai("tokenize", "encode", *args), "could be read", "encode again", code=2)
        assert json.loads((store / "manifest.json").read_text())["status"] == "incomplete"


def _tamper(store, part, change, fix_checksum=True):
    """Change shard 0's `part` array; with fix_checksum, record the new sha256 as if the store were made so."""
    from mirai_cli.files.atomic import save_npy
    from mirai_cli.files.hashing import sha256_file

    f = store / "shards" / f"00000.{part}.npy"
    arr = np.load(f)
    save_npy(f, change(arr))
    if fix_checksum:
        manifest = json.loads((store / "manifest.json").read_text())
        manifest["shards"][0]["sha256"][part] = sha256_file(f)
        (store / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("part,change,fix,message", [
    ("labels", lambda a: a + 99, True, "holds labels"),
    ("codes", lambda a: np.full_like(a, 64), True, "holds code 64"),
    ("codes", lambda a: a[::-1].copy(), False, "does not match its checksum"),
])
def test_damaged_store_stops_at_open(tiny_store, tmp_path, part, change, fix, message):
    store = tmp_path / "store"
    shutil.copytree(tiny_store["store"], store)
    TokenStore.open(store)  # checked once and remembered ...
    _tamper(store, part, change, fix)  # ... a changed shard is checked again
    assert_one_line_error(mirai("tokenize", "info", store), "is corrupt", message, "encode", code=2)


@pytest.mark.slow
def test_damaged_store_never_reaches_training(tiny_store, tmp_path):
    from mirai_testdata import tiny_overrides

    store = tmp_path / "store"
    shutil.copytree(tiny_store["store"], store)
    _tamper(store, "labels", lambda a: a + 99)
    sets = [x for item in tiny_overrides({**tiny_store, "store": store}, tmp_path / "run") for x in ("--set", item)]
    assert_one_line_error(mirai("train", "--preset", "tiny", *sets, "--quiet"), "holds labels", code=2)


@pytest.mark.parametrize("extra,fragments", [
    (["--classes", "a"], ["--classes", "0,3,7"]),
    (["--cfg-scale", "nan"], ["--cfg-scale", "finite"]),
    (["--cfg-scale", "inf"], ["--cfg-scale", "finite"]),
    (["--device", "cuda"], ["no CUDA GPU", "--device cpu"]),
    (["--out", "FILE"], ["--out", "is a file"]),
])
def test_sample_flags(tmp_path, extra, fragments):
    (tmp_path / "FILE").write_text("x")
    extra = [str(tmp_path / "FILE") if e == "FILE" else e for e in extra]
    result = mirai("sample", tmp_path / "no-run", *extra, "--quiet", cwd=tmp_path)
    assert_one_line_error(result, *fragments, code=2)


def test_eval_out_pointing_at_a_folder(tmp_path):
    assert_one_line_error(mirai("eval", "stats", "fashion-mnist", "--out", tmp_path), "--out", "is a folder", code=2)
    assert_one_line_error(mirai("eval", "--fid", tmp_path, "--ref", tmp_path, "--out", tmp_path), "is a folder")


def test_encode_strict_refuses_an_image_mode_it_cannot_convert_with_one_line(tiny_store, tmp_path):
    folder = _image_folder(tmp_path / "imgs", 4, readable={0, 1, 2, 3})
    Image.fromarray(np.full((16, 16), 1000.0, np.float32), "F").save(folder / "c0" / "zz.tif")
    args = ["--preset", "tiny", "--set", f"data.source={folder}", "--set", f"data.store={tmp_path / 'store'}", "--set",
            f"tokenizer.checkpoint={tiny_store['tokenizer']}", "--set", "data.image_size=16", "--set", "data.val_images=0", "--quiet", "--strict"]
    assert_one_line_error(mirai("tokenize", "encode", *args), "zz.tif", "32-bit float", "--strict", code=2)


@pytest.mark.parametrize("args,fragments", [
    (["sample", "no-run", "--seed", "-1"], ["--seed -1", "from 0 to 9223372036854775807"]),
    (["eval", "stats", "fashion-mnist", "--seed", str(2**32)], ["--seed", "from 0 to 4294967295"]),
    (["train", "--set", f"train.seed={2**63}"], ["train.seed", "less than or equal to 9223372036854775807"]),
    (["ablate", "--axis", "k", "--seeds", f"0,{2**63}", "--dry-run"], ["ablate.seeds", "9223372036854775807"]),
    (["ablate", "--axis", "k", "--jobs", "0", "--dry-run"], ["--jobs 0", ">= 1"]),
    (["ablate", "--axis", "k", "-j", "-1", "--dry-run"], ["--jobs -1", ">= 1"]),
])
def test_integer_options_out_of_range(tmp_path, args, fragments):
    """Seeds lie in 0..2^63-1 and --jobs >= 1 wherever they are given (schema and shared options)."""
    assert_one_line_error(mirai(*args, cwd=tmp_path), *fragments, code=2)
    assert list(tmp_path.iterdir()) == []


def _files(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_output_folder_is_never_an_input_nor_inside_one(tiny_store, tmp_path):
    """One rule for every job's output folder (train, tokenize, ablate): refused in one line before anything is
    written, so the input (here a token store, an image folder) is left byte for byte as it was."""
    from mirai_testdata import tiny_overrides

    store = tmp_path / "store"
    shutil.copytree(tiny_store["store"], store)
    TokenStore.open(store)  # its checksums checked once and remembered (verified.json), as every job does first
    before = _files(store)
    for run_dir, where in ((store, "is data.store"), (store / "run", "is inside data.store")):
        sets = [x for item in tiny_overrides({**tiny_store, "store": store}, run_dir) for x in ("--set", item)]
        assert_one_line_error(mirai("train", "--preset", "tiny", *sets, "--quiet"), str(run_dir), where,
                              "choose another output folder", code=2)
    study = ["--set", f"data.store={store}", "--set", f"tokenizer.checkpoint={tiny_store['tokenizer']}",
             "--set", "data.val_images=0", "--set", "eval.resize=16"]
    assert_one_line_error(mirai("ablate", "--axis", "k", *study, "--out", store, "--quiet"), "is data.store", code=2)
    assert _files(store) == before

    folder = _image_folder(tmp_path / "imgs", 4, readable={0, 1, 2, 3})
    images = _files(folder)
    args = ["--preset", "tiny", "--set", f"data.source={folder}", "--set", f"data.store={folder / 'store'}", "--set",
            f"tokenizer.checkpoint={tiny_store['tokenizer']}", "--set", "data.image_size=16", "--set",
            "data.val_images=0", "--quiet"]
    assert_one_line_error(mirai("tokenize", "encode", *args), "is inside data.source", code=2)
    assert_one_line_error(mirai("tokenize", "fit", *args, "--out", folder / "tok"), "is inside data.source", code=2)
    assert _files(folder) == images and not (folder / "store").exists() and not (folder / "tok").exists()

    run = tmp_path / "run"
    sets = [x for item in tiny_overrides({**tiny_store, "store": store}, run, **{"train.duration": 3})
            for x in ("--set", item)]
    assert mirai("train", "--preset", "tiny", *sets, "--quiet").returncode == 0
    checkpoint = run / "checkpoints" / "step_00000003"
    weights = _files(checkpoint)
    assert_one_line_error(mirai("sample", run, *sets, "--out", checkpoint / "s", "--per-class", "1", "--quiet"),
                          "is inside checkpoint", code=2)
    assert _files(checkpoint) == weights


def _mirai_bytes(*args, stdin: bytes):
    """`mirai ARGS` fed raw bytes on standard input (clirun's `mirai` sends text)."""
    import os
    import subprocess
    import sys

    from clirun import REPO
    return subprocess.run([sys.executable, "-m", "mirai_cli", *map(str, args)], input=stdin, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "CUDA_VISIBLE_DEVICES": ""},
                          timeout=300)


def _as_text(done):
    import subprocess
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def test_text_inputs_are_utf8_or_one_line_naming_the_file_and_offset(tmp_path):
    """Presets (file or stdin) and metrics logs go through one decoder: UTF-8 only, the bad byte's offset named,
    an empty stdin refused; a log's torn last line is skipped with a warning, a bad line before it is refused."""
    utf16 = tmp_path / "u16.toml"
    utf16.write_text('[model]\nlayers = 2\n', encoding="utf-16")
    assert_one_line_error(mirai("presets", "validate", utf16), str(utf16), "UTF-16", "UTF-8", code=2)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'extends = "tiny"\n# caf\xe9\n')
    assert_one_line_error(mirai("presets", "show", latin), str(latin), "not UTF-8", "offset 22", code=2)
    assert_one_line_error(_as_text(_mirai_bytes("presets", "validate", "-", stdin=b'extends = "tiny" # \xff\n')),
                          "<stdin>", "offset 19", code=2)
    assert_one_line_error(mirai("presets", "validate", "-", input=""), "<stdin>", "empty", code=2)
    bom = b"\xef\xbb\xbf" + mirai("presets", "show", "tiny").stdout.encode()
    shown = _mirai_bytes("presets", "show", "-", stdin=bom)
    assert shown.returncode == 0 and b"CPU scale" in shown.stdout, shown.stderr

    run = tmp_path / "run"
    run.mkdir()
    good = b"".join(json.dumps({"step": s, "loss": 1.0 / s, "lr": 1e-3, "grad_norm": 1.0}).encode() + b"\n"
                    for s in range(1, 6))
    for tail in (b'{"step": 6, "lo\xff\xfe', b"[1, 2]\n"):  # a torn write, garbage: skipped with a warning
        (run / "metrics.jsonl").write_bytes(good + tail)
        done = mirai("plot", run, "--out", tmp_path / "c.png")
        assert done.returncode == 0 and "warning" in done.stdout + done.stderr and "Traceback" not in done.stderr
    for middle, fragment in ((b"\xff\xfe\n", "offset"), (b"[1, 2]\n", "metrics.jsonl:6")):
        (run / "metrics.jsonl").write_bytes(good + middle + good)
        assert_one_line_error(mirai("plot", run, "--out", tmp_path / "c.png"), str(run / "metrics.jsonl"),
                              fragment, code=2)
