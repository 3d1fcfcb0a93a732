"""The sampling job end to end with a tiny real GPT and a tiny real VQ tokenizer: files, resume, sharding,
and every bad input."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mirai_cli.errors import MiraiError
from mirai_cli.files.hashing import sha256_file
from mirai_cli.gpt import GPT, GPTConfig
from mirai_cli.gpt.checkpoint import save_gpt_weights
from mirai_cli.gpt.generate import SampleOptions
from mirai_cli.runtime.distributed import DistEnv
from mirai_cli.sampling import SampleJob, class_plan, run_sample_job
from mirai_cli.sampling.job import shards_of_rank
from mirai_cli.tokenizer.checkpoint import save_tokenizer
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel

CPU = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def tiny_vq(codebook: int) -> VQConfig:
    """4x downsampling (16 px images from a 4x4 grid), 16 channels."""
    return VQConfig(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, decoder_num_res_blocks=1, z_channels=16,
                    codebook_size=codebook, codebook_dim=4, norm_groups=8)


def make_tokenizer(path: Path, codebook: int = 64) -> Path:
    torch.manual_seed(0)
    cfg = tiny_vq(codebook)
    return save_tokenizer(path, VQModel(cfg), cfg, {"image_size": 16})


def make_run(root: Path, tok: Path, *, num_classes: int = 3, vocab: int = 64, grid=(4, 4), record_sha=True) -> Path:
    """A run folder as the trainer writes it: checkpoints/step_*/ with model/ema safetensors + meta.json."""
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=vocab, num_classes=num_classes, layers=2, dim=32, heads=2, grid=grid))
    with torch.no_grad():
        model.output.weight.normal_(0, 0.5)  # a non-uniform distribution over codes
    ck = root / "checkpoints" / "step_00000010"
    ck.mkdir(parents=True)
    save_gpt_weights(ck / "model.safetensors", model)
    save_gpt_weights(ck / "ema.safetensors", model)
    tok_info = {"checkpoint": str(tok), "grid": list(grid), "codebook_size": vocab}
    if record_sha:
        tok_info["sha256"] = sha256_file(tok)
    (ck / "meta.json").write_text(json.dumps({"gpt_config": model.cfg.to_dict(), "step": 10, "tokenizer": tok_info}))
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling")
    tok = make_tokenizer(root / "vq.pt")
    run = make_run(root / "run", tok)
    return root, tok, run


def job_for(run, out, **kw) -> SampleJob:
    base = {"checkpoint": str(run), "out_dir": str(out), "per_class": 2, "batch_size": 4, "shard_size": 4,
            "options": SampleOptions(cfg_scale=2.0, top_k=20), "device": "cpu", "seed": 3}
    base.update(kw)
    return SampleJob(**base)


def pngs(out: Path) -> dict[str, bytes]:
    return {p.name: np.asarray(Image.open(p)).tobytes() for p in sorted((out / "images").glob("*.png"))}


def test_class_plans():
    assert class_plan(3, per_class=2).tolist() == [0, 0, 1, 1, 2, 2]
    assert class_plan(5, classes=[4, 0, 4]).tolist() == [4, 0, 4]
    r = class_plan(10, random_count=50, seed=1)
    assert r.min() >= 0 and r.max() <= 9 and len(set(r.tolist())) > 3
    assert np.array_equal(r, class_plan(10, random_count=50, seed=1))
    assert not np.array_equal(r, class_plan(10, random_count=50, seed=2))
    with pytest.raises(MiraiError, match=r"class 7 is outside the model's range 0\.\.4"):
        class_plan(5, classes=[1, 7])
    with pytest.raises(MiraiError, match="not both"):
        class_plan(5, classes=[1], random_count=3)


def test_shards_split_by_rank():
    assert [list(r) for r in shards_of_rank(10, 3, 0, 2)] == [[0, 1, 2], [6, 7, 8]]
    assert [list(r) for r in shards_of_rank(10, 3, 1, 2)] == [[3, 4, 5], [9]]


def test_job_writes_pngs_npz_grid_and_manifest(setup, tmp_path):
    _, tok, run = setup
    out = tmp_path / "out"
    res = run_sample_job(job_for(run, out), env=CPU)
    assert (res.total, res.generated, res.skipped, res.resumed) == (6, 6, 0, False)
    names = sorted(p.name for p in (out / "images").glob("*.png"))
    assert names == ["000000_c0000.png", "000001_c0000.png", "000002_c0001.png", "000003_c0001.png",
                     "000004_c0002.png", "000005_c0002.png"]
    with np.load(out / "samples.npz") as z:
        arr, labels = z["arr_0"], z["labels"]
    assert arr.shape == (6, 16, 16, 3) and arr.dtype == np.uint8  # ADM layout: N, H, W, 3
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    for i, name in enumerate(names):
        assert np.array_equal(arr[i], np.asarray(Image.open(out / "images" / name)))
    assert arr.std() > 0  # decoded images, not blanks
    assert Image.open(out / "grid.png").size[0] > 16
    manifest = json.loads((out / "sample_manifest.json").read_text())
    assert manifest["identity"]["cfg_scale"] == 2.0 and manifest["identity"]["count"] == 6
    assert manifest["step"] == 10 and manifest["tokenizer"] == str(tok)
    assert not [p for p in out.rglob(".*")]  # no temp files left


def test_resume_redoes_only_missing_and_reproduces(setup, tmp_path):
    _, _, run = setup
    out = tmp_path / "out"
    run_sample_job(job_for(run, out), env=CPU)
    before = pngs(out)
    (out / "images" / "000001_c0000.png").unlink()
    (out / "images" / "000005_c0002.png").unlink()
    res = run_sample_job(job_for(run, out), env=CPU)
    assert (res.generated, res.skipped, res.resumed) == (2, 4, True)
    assert pngs(out) == before  # same seed, same batch: the same images come back
    with np.load(out / "samples.npz") as z:
        assert z["arr_0"].shape[0] == 6
    res = run_sample_job(job_for(run, out), env=CPU)
    assert res.generated == 0 and res.skipped == 6


def test_two_ranks_make_the_same_images_as_one(setup, tmp_path):
    _, _, run = setup
    single, split = tmp_path / "single", tmp_path / "split"
    run_sample_job(job_for(run, single, shard_size=2, batch_size=2), env=CPU)
    ranks = [DistEnv(rank=r, world_size=2, local_rank=0, device=torch.device("cpu")) for r in (0, 1)]
    # Played one after the other in this process: rank 0 finds rank 1's half missing, rank 1 fills it in,
    # then rank 0 resumes and assembles.
    with pytest.raises(MiraiError, match="2 samples are still missing"):
        run_sample_job(job_for(run, split, shard_size=2, batch_size=2), env=ranks[0])
    res1 = run_sample_job(job_for(run, split, shard_size=2, batch_size=2), env=ranks[1])
    assert res1.generated == 2 and res1.npz is None  # shard 1 of shards 0, 1, 2
    res0 = run_sample_job(job_for(run, split, shard_size=2, batch_size=2), env=ranks[0])
    assert res0.generated == 0 and res0.npz is not None
    assert pngs(split) == pngs(single)


def test_other_runs_folder_is_refused_untouched(setup, tmp_path):
    _, _, run = setup
    out = tmp_path / "out"
    run_sample_job(job_for(run, out), env=CPU)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(MiraiError, match=r"another run \(cfg_scale: 2\.0 there, 1\.5 now\)"):
        run_sample_job(job_for(run, out, options=SampleOptions(cfg_scale=1.5, top_k=20)), env=CPU)
    with pytest.raises(MiraiError, match="another run"):
        run_sample_job(job_for(run, out, per_class=3), env=CPU)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamp

    foreign = tmp_path / "foreign"
    (foreign / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(foreign / "images" / "000000_c0000.png")
    with pytest.raises(MiraiError, match="no sample_manifest.json"):
        run_sample_job(job_for(run, foreign), env=CPU)
    assert not (foreign / "sample_manifest.json").exists()


def test_bad_inputs(setup, tmp_path):
    _, tok, run = setup
    with pytest.raises(MiraiError, match=r"class 3 is outside the model's range 0\.\.2"):
        run_sample_job(job_for(run, tmp_path / "a", classes=[0, 3]), env=CPU)
    other_tok = make_tokenizer(tmp_path / "vq128.pt", codebook=128)
    with pytest.raises(MiraiError, match="has 128 codes but the GPT .* predicts 64"):
        run_sample_job(job_for(run, tmp_path / "b", tokenizer=str(other_tok)), env=CPU)
    with pytest.raises(MiraiError, match="image size 32 does not fit"):
        run_sample_job(job_for(run, tmp_path / "c", image_size=32), env=CPU)
    torch.manual_seed(5)
    cfg = tiny_vq(64)
    twin = save_tokenizer(tmp_path / "twin.pt", VQModel(cfg), cfg, {})  # same shape, other weights
    with pytest.raises(MiraiError, match="trained on codes of another tokenizer"):
        run_sample_job(job_for(run, tmp_path / "d", tokenizer=str(twin)), env=CPU)
    run2 = make_run(tmp_path / "run_grid", tok, grid=(2, 8), record_sha=False)
    meta_path = next((run2 / "checkpoints").glob("step_*")) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["tokenizer"]["grid"] = [4, 4]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MiraiError, match="inconsistent"):
        run_sample_job(job_for(run2, tmp_path / "e"), env=CPU)
    with pytest.raises(MiraiError, match="EMA"):
        os.remove(next((run2 / "checkpoints").glob("step_*")) / "ema.safetensors")
        run_sample_job(job_for(run2, tmp_path / "f"), env=CPU)
    assert not any((tmp_path / n).exists() for n in "abcdef")  # nothing written for a refused job


TORCHRUN_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
from mirai_cli.gpt.generate import SampleOptions
from mirai_cli.sampling import SampleJob, run_sample_job
job = SampleJob(checkpoint=sys.argv[1], out_dir=sys.argv[2], per_class=2, batch_size=2, shard_size=2,
                options=SampleOptions(cfg_scale=2.0, top_k=20), device="cpu", seed=3)
res = run_sample_job(job)
rank = int(os.environ["RANK"])  # the job has left the process group by now
open(f"{sys.argv[3]}/rank{rank}.txt", "w").write(f"{rank} {res.generated} {res.npz is not None}")
"""


@pytest.mark.slow
def test_torchrun_two_processes(setup, tmp_path):
    import subprocess
    import sys

    _, _, run = setup
    single, split = tmp_path / "single", tmp_path / "split"
    run_sample_job(job_for(run, single, shard_size=2, batch_size=2), env=CPU)
    script = tmp_path / "sample.py"
    script.write_text(TORCHRUN_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(run), str(split), str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=240, env=env,
    )
    # the head holds the failing rank's own traceback, the tail torchrun's summary
    assert proc.returncode == 0, proc.stderr[:3000] + "\n...\n" + proc.stderr[-1500:]
    results = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    assert results == ["0 4 True", "1 2 False"]  # 3 shards of 2: rank 0 takes shards 0 and 2, rank 1 shard 1
    assert pngs(split) == pngs(single)
    assert (split / "samples.npz").is_file()


def test_job_from_preset_and_tokenizer_fallback(setup, tmp_path):
    from mirai_cli.config import MiraiConfig
    from mirai_cli.sampling.from_config import sample_job_from_config

    _, tok, run = setup
    config = MiraiConfig()
    config.sample.cfg_scale, config.sample.top_k, config.tokenizer.checkpoint = 1.5, 7, str(tok)
    job = sample_job_from_config(config, str(run), seed=4, classes=[2, 1])
    assert job.out_dir == str(run / "samples" / "step_00000010-ema-cfg1.5-seed4")
    assert (job.options.cfg_scale, job.options.top_k, job.classes, job.seed) == (1.5, 7, [2, 1], 4)
    assert job.default_tokenizer == str(tok)
    job = sample_job_from_config(config, str(tmp_path / "c2i_B_256.pt"), weights="raw", cfg_scale=2.0)
    assert job.out_dir == str(Path("samples") / "c2i_B_256-raw-cfg2-seed0") and job.per_class == 50

    # A checkpoint that does not record its tokenizer falls back to the preset's tokenizer.
    bare = make_run(tmp_path / "bare", tok)
    meta_path = bare / "checkpoints" / "step_00000010" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["tokenizer"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MiraiError, match="does not record its tokenizer"):
        run_sample_job(job_for(bare, tmp_path / "o1", classes=[0]), env=CPU)
    res = run_sample_job(job_for(bare, tmp_path / "o2", classes=[0], default_tokenizer=str(tok)), env=CPU)
    assert res.generated == 1


def test_llamagen_format_checkpoint_takes_heads_and_grid_from_the_user(setup, tmp_path):
    """A paper-code checkpoint (LlamaGen layout, `projectors.*` beside the GPT, no config): sampling stops with
    one line until the user states the shape, then drops the projectors and samples what the run samples."""
    _, tok, run = setup
    from safetensors.torch import load_file

    sd = load_file(str(run / "checkpoints" / "step_00000010" / "ema.safetensors"))
    sd.update({"projectors.0.net.0.weight": torch.zeros(8, 32), "projectors.0.net.0.bias": torch.zeros(8)})
    torch.save({"model": sd}, tmp_path / "paper.pt")
    with pytest.raises(MiraiError, match=r"head count is unknown.*--set model\.heads=") as e:
        run_sample_job(job_for(tmp_path / "paper.pt", tmp_path / "o1", classes=[0, 2], tokenizer=str(tok),
                               image_size=16), env=CPU)
    assert "\n" not in str(e.value)
    with pytest.raises(MiraiError, match=r"--set data\.image_size="):
        run_sample_job(job_for(tmp_path / "paper.pt", tmp_path / "o1", classes=[0, 2], tokenizer=str(tok),
                               model_shape=(2, 32, 2)), env=CPU)
    logs: list[str] = []
    run_sample_job(job_for(tmp_path / "paper.pt", tmp_path / "o2", classes=[0, 2], tokenizer=str(tok),
                           model_shape=(2, 32, 2), image_size=16), env=CPU, log=logs.append)
    assert any("dropped 2 training-only tensors (projectors)" in line for line in logs)
    run_sample_job(job_for(run, tmp_path / "o3", classes=[0, 2]), env=CPU)
    assert pngs(tmp_path / "o2") == pngs(tmp_path / "o3")


def test_auto_settings_resolve_for_the_device_and_the_manifest_records_what_ran(setup, tmp_path):
    from mirai_cli.sampling.job import resolved_job

    _, _, run = setup
    job = job_for(run, tmp_path / "auto", batch_size="auto", options=SampleOptions(cfg_scale=2.0, top_k=20))
    assert (job.batch_size, job.options.compile, job.options.weights_dtype) == ("auto", "auto", "auto")
    cpu = resolved_job(job, torch.device("cpu"))
    assert (cpu.batch_size, cpu.options.compile, cpu.options.weights_dtype) == (32, False, "fp32")
    cuda = resolved_job(job, torch.device("cuda"))  # a device type only: nothing runs on it
    assert (cuda.batch_size, cuda.options.compile, cuda.options.weights_dtype) == (128, True, "bf16")
    fp32 = resolved_job(job_for(run, tmp_path, options=SampleOptions(precision="fp32")), torch.device("cuda"))
    assert fp32.options.weights_dtype == "fp32"  # fp32 sampling keeps fp32 weights: its tokens stay exact
    run_sample_job(job, env=CPU)
    manifest = json.loads((tmp_path / "auto" / "sample_manifest.json").read_text())
    assert manifest["batch_size"] == 32 and manifest["options"]["weights_dtype"] == "fp32"
    assert "weights_dtype" not in manifest["identity"]  # fp32 weights: the identity of earlier samples
    with pytest.raises(MiraiError, match="batch size must be a number >= 1 or 'auto'"):
        run_sample_job(job_for(run, tmp_path / "bad", batch_size="wide"), env=CPU)


def test_the_writer_thread_writes_the_files_a_synchronous_loop_writes(setup, tmp_path):
    from mirai_cli.data.images import save_png
    from mirai_cli.gpt.checkpoint import load_gpt_checkpoint
    from mirai_cli.sampling import outputs
    from mirai_cli.sampling.job import _sample_batch, batch_seed
    from mirai_cli.tokenizer.checkpoint import load_tokenizer

    _, tok, run = setup
    job = job_for(run, tmp_path / "threaded", batch_size=4)
    run_sample_job(job, env=CPU)
    # Before the writer thread: each batch sampled, then its PNGs written one by one on the same thread.
    gpt, _, _ = load_gpt_checkpoint(run, "ema", device=torch.device("cpu"))
    vq, _ = load_tokenizer(tok, device=torch.device("cpu"))
    labels = class_plan(3, per_class=2)
    reference = tmp_path / "reference"
    for start in range(0, 6, 4):
        idx = np.arange(start, min(6, start + 4))
        for i, image in zip(idx, _sample_batch(gpt.eval(), vq, labels[idx], job, batch_seed(3, start),
                                               torch.device("cpu"))):
            save_png(image, reference / outputs.image_name(int(i), int(labels[i])))
    files = lambda d: {p.name: p.read_bytes() for p in sorted(d.glob("*.png"))}  # noqa: E731
    assert files(tmp_path / "threaded" / "images") == files(reference) and len(files(reference)) == 6


def test_a_failed_png_write_stops_the_job_with_one_line_and_a_rerun_finishes_it(setup, tmp_path, monkeypatch):
    import errno

    from mirai_cli.sampling import outputs

    _, _, run = setup
    clean = tmp_path / "clean"
    run_sample_job(job_for(run, clean, batch_size=2), env=CPU)
    real = outputs.save_png

    def disk_full_after_two(image, path):
        if int(path.name[:6]) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(image, path)

    out = tmp_path / "out"
    monkeypatch.setattr(outputs, "save_png", disk_full_after_two)
    with pytest.raises(MiraiError) as failed:
        run_sample_job(job_for(run, out, batch_size=2), env=CPU)
    message = str(failed.value)
    assert "cannot write sample images" in message and "No space left on device" in message
    assert "\n" not in message and "run the same job again" in message
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["000000_c0000.png", "000001_c0000.png"]
    assert not (out / "samples.npz").exists() and not (out / "grid.png").exists()  # it does not look finished
    monkeypatch.setattr(outputs, "save_png", real)
    res = run_sample_job(job_for(run, out, batch_size=2), env=CPU)
    assert (res.generated, res.skipped) == (4, 2) and res.npz is not None
    assert pngs(out) == pngs(clean)
