"""Encode throughput of the tokenizers and the size of a token store.

    python bench/tokenize_bench.py [--batch 8] [--vq16-batches 3] [--store-images 2048]

Prints, as JSON lines:
  - images/s of encode_to_codes for the `tiny` tokenizer (32 px) and for VQ-16 (256 px), random weights
    (speed does not depend on the weights), one crop per image;
  - images/s of a full `encode_store` run (tiny, Fashion-MNIST, flip crops: data loading and crops included)
    and the store's bytes per token and per image;
  - the cost of fp32 extraction (the default) against bf16 autocast (forced, even where `resolve_precision`
    would fall back): time per batch measured A B A B, and the fraction of codes bf16 changes (trained tiny
    tokenizer of the tests on its golden image, and VQ-16 with random weights);
  - with --ranks-workers N: images/s of `encode_store` on a folder of N JPEGs (96 px, ten-crop at 64 px, the
    tiny tokenizer), then of the teacher-feature cache of that store, against DataLoader workers and torchrun
    ranks (gloo), each setting run as its own process, settings interleaved A B C D A B C D."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from mirai_cli.data.store import store_info
from mirai_cli.runtime.device import autocast, resolve_device, resolve_precision
from mirai_cli.tokenizer.checkpoint import save_tokenizer
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.vq_model import VQModel


@torch.no_grad()
def encode_speed(cfg: VQConfig, size: int, batch: int, batches: int, precision: str) -> dict:
    dev = resolve_device("auto")
    prec = resolve_precision(precision, dev)
    model = VQModel(cfg).to(dev).eval()
    x = torch.rand(batch, 3, size, size, device=dev) * 2 - 1
    with autocast(dev, prec):
        model.encode_to_codes(x)  # warm-up
        t = time.perf_counter()
        for _ in range(batches):
            model.encode_to_codes(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    return {"bench": "encode_to_codes", "tokenizer": cfg.name, "image_size": size, "batch": batch,
            "device": str(dev), "precision": prec, "threads": torch.get_num_threads(),
            "images_per_s": round(batch * batches / dt, 2)}


@torch.no_grad()
def precision_cost(model: VQModel, x: torch.Tensor, name: str, rounds: int) -> dict:
    """fp32 against bf16 autocast on the same batch, alternating (A B A B) so that load on a shared machine
    hits both alike; and how many codes bf16 flips."""
    dev = x.device
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    codes = {}
    for _ in range(rounds + 1):  # the first round warms up
        for prec in ("fp32", "bf16"):
            t = time.perf_counter()
            with autocast(dev, prec):
                codes[prec] = model.encode_to_codes(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[prec].append(time.perf_counter() - t)
    fp32, bf16 = (sorted(times[p][1:])[len(times[p][1:]) // 2] for p in ("fp32", "bf16"))
    return {"bench": "encode_precision", "tokenizer": name, "image_size": x.shape[-1], "batch": x.shape[0],
            "device": str(dev), "fp32_s": round(fp32, 4), "bf16_s": round(bf16, 4),
            "fp32_over_bf16": round(fp32 / bf16, 3),
            "codes_changed_by_bf16": round(float((codes["fp32"] != codes["bf16"]).float().mean()), 5)}


def golden_tiny(dev: torch.device) -> tuple[VQModel, torch.Tensor]:
    """The trained tiny tokenizer of the tests and its image (tests/tokenizer/golden/tiny_vq.pt)."""
    from mirai_cli.data.crops import to_model_input

    gold = torch.load(Path(__file__).resolve().parents[1] / "tests" / "tokenizer" / "golden" / "tiny_vq.pt",
                      weights_only=True)
    model = VQModel(VQConfig.from_dict(gold["config"]))
    model.load_state_dict(gold["model"])
    x = to_model_input(gold["image"].numpy())  # uint8 [2, 16, 16, 3]
    return model.to(dev).eval(), x.to(dev)


def store_bench(images: int, batch: int, precision: str) -> dict:
    from mirai_cli.tokenizer.encode import encode_store

    with tempfile.TemporaryDirectory() as tmp:
        cfg = VQConfig.tiny()
        tok = save_tokenizer(Path(tmp) / "tiny.pt", VQModel(cfg), cfg, {"image_size": 32})
        t = time.perf_counter()
        encode_store(tok, "fashion-mnist", Path(tmp) / "store", crop_mode="flip", limit=images, batch_size=batch,
                     precision=precision, show_progress=False)
        dt = time.perf_counter() - t
        info = store_info(Path(tmp) / "store")
    return {"bench": "encode_store", "tokenizer": "tiny", "source": "fashion-mnist", "images": images,
            "crops": info["num_crops"], "grid": info["grid"], "images_per_s": round(images / dt, 1),
            "dtype": info["dtype"], "bytes_per_token": round(info["bytes_per_token"], 4),
            "bytes_per_image": round(info["bytes_per_image"], 1),
            "llamagen_bytes_per_image": 8 * info["grid"][0] * info["grid"][1] * info["num_crops"]}


def _jpeg_folder(root: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        (root / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"c{i % 4}" / f"{i:05d}.jpg", quality=90)
    return root


CACHE_SCRIPT = """
import sys
from mirai_cli.data.store import TokenStore
from mirai_cli.runtime.distributed import init_distributed
from mirai_cli.foresight.feature_cache import build_feature_cache
from mirai_cli.foresight.teachers import build_encoder
from mirai_cli.tokenizer.checkpoint import load_tokenizer
store = TokenStore.open(sys.argv[2])
enc = build_encoder("tokenizer", store.grid, tokenizer=load_tokenizer(sys.argv[1])[0].eval())
build_feature_cache(store, enc, shard_entries=int(sys.argv[4]), env=init_distributed("cpu"), num_workers=int(sys.argv[3]))
"""


def ranks_workers_bench(images: int, rounds: int = 1) -> list[dict]:
    """encode_store, then the teacher-feature cache of that store (the tokenizer's encoder as the teacher:
    decoding and crops dominate), each setting its own process, settings interleaved per round."""
    import os
    import shutil
    import subprocess
    import sys

    settings = [(1, 0), (1, 2), (2, 0), (2, 1)]  # (ranks, workers per rank)
    shard = max(1, images // 4)  # 4 shards: 2 per rank
    times: dict[tuple[str, int, int], list[float]] = {(j, *s): [] for j in ("encode", "teacher_cache") for s in settings}
    with tempfile.TemporaryDirectory() as tmp:
        folder = _jpeg_folder(Path(tmp) / "jpegs", images)
        cfg = VQConfig.tiny()
        tok = save_tokenizer(Path(tmp) / "tiny.pt", VQModel(cfg), cfg, {"image_size": 64})
        env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        code = ("import sys; from mirai_cli.tokenizer.encode import encode_store; encode_store(sys.argv[1], "
                "sys.argv[2], sys.argv[3], image_size=64, crop_mode='tencrop', batch_size=32, shard_size=int(sys.argv[5]), "
                "precision='fp32', device='cpu', show_progress=False, num_workers=int(sys.argv[4]))")
        (Path(tmp) / "enc.py").write_text(code)
        (Path(tmp) / "cache.py").write_text(CACHE_SCRIPT)

        def timed(job: str, ranks: int, args: list[str]) -> None:
            launcher = [sys.executable] if ranks == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port", "29561"]
            t = time.perf_counter()
            subprocess.run(launcher + args, env=env, check=True, capture_output=True)
            times[(job, ranks, int(args[-2]))].append(time.perf_counter() - t)

        for r in range(rounds):
            for ranks, workers in settings:
                out = Path(tmp) / f"store_{ranks}_{workers}_{r}"
                timed("encode", ranks, [str(Path(tmp) / "enc.py"), str(tok), str(folder), str(out), str(workers), str(shard)])
            for ranks, workers in settings:
                out = Path(tmp) / f"cache_{ranks}_{workers}_{r}"
                shutil.copytree(Path(tmp) / f"store_1_0_{r}", out)
                timed("teacher_cache", ranks, [str(Path(tmp) / "cache.py"), str(tok), str(out), str(workers), str(shard)])
    rows = []
    for (job, ranks, workers), t in times.items():
        base = min(times[(job, 1, 0)])
        rows.append({"bench": f"{job}_ranks_workers", "images": images, "ranks": ranks, "workers_per_rank": workers,
                     "seconds": round(min(t), 2), "images_per_s": round(images / min(t), 1),
                     "speedup_vs_1x0": round(base / min(t), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny-batch", type=int, default=64)
    ap.add_argument("--tiny-batches", type=int, default=10)
    ap.add_argument("--vq16-batch", type=int, default=4)
    ap.add_argument("--vq16-batches", type=int, default=2)
    ap.add_argument("--store-images", type=int, default=2048)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--ranks-workers", type=int, default=0, help="only the ranks/workers bench on this many JPEGs")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the ranks/workers bench (best of)")
    args = ap.parse_args()
    if args.ranks_workers:
        for line in ranks_workers_bench(args.ranks_workers, args.rounds):
            print(json.dumps(line))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(encode_speed(VQConfig.tiny(), 32, args.tiny_batch, args.tiny_batches, args.precision)))
    print(json.dumps(encode_speed(VQConfig.vq16(), 256, args.vq16_batch, args.vq16_batches, args.precision)))
    print(json.dumps(store_bench(args.store_images, 256, args.precision)))
    dev = resolve_device("auto")
    model, x = golden_tiny(dev)
    print(json.dumps(precision_cost(model, x.repeat(args.tiny_batch, 1, 1, 1), "tiny (golden, trained)", 5)))
    torch.manual_seed(0)
    vq16 = VQModel(VQConfig.vq16()).to(dev).eval()
    print(json.dumps(precision_cost(vq16, torch.rand(args.vq16_batch, 3, 256, 256, device=dev) * 2 - 1, "VQ-16 (random)", 3)))


if __name__ == "__main__":
    main()
