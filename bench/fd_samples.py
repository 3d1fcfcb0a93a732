"""FD's bias and spread against the number of samples (and reference images), on this data: how many samples
an evaluation round needs before the metric is stable enough to compare training runs.

    python bench/fd_samples.py runs/sweep/screen/runs/base-s100 --preset tiny --total 2000 --sizes 100 200 500 1000 2000 \
        --ref-sizes 1000 5000 --repeats 8

Samples `--total` class-balanced images from the checkpoint once (resumable), extracts features once per side,
then computes FD on random subsets of each size (`--repeats` draws, no replacement within a draw) against the
first R reference images. Prints, per (n, R): mean FD, sd over draws, and the bias relative to the largest n.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from mirai_cli.config import load_config
from mirai_cli.evaluation.extractors import get_extractor, load_extractor
from mirai_cli.evaluation.features import extract_features, stats_of
from mirai_cli.evaluation.images import open_images
from mirai_cli.evaluation.reference import open_reference
from mirai_cli.sampling import run_sample_job
from mirai_cli.sampling.from_config import sample_job_from_config


def fd(a: np.ndarray, b: np.ndarray) -> float:
    return float(fid_statistics_to_metric(stats_of(a).as_fidelity(), stats_of(b).as_fidelity(),
                                          verbose=False)[KEY_METRIC_FID])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder or checkpoint")
    parser.add_argument("--preset", action="append", default=None)
    parser.add_argument("--total", type=int, default=2000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 1000, 2000])
    parser.add_argument("--ref-sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--out", default=None, help="sample folder (default: <run>/fd_samples)")
    args = parser.parse_args()
    config = load_config(args.preset or ["tiny"], [])
    classes = config.model.num_classes
    out = args.out or f"{args.run.rstrip('/')}/fd_samples"
    t0 = time.perf_counter()
    sampled = run_sample_job(sample_job_from_config(config, args.run, out_dir=out, per_class=args.total // classes))
    sample_s = time.perf_counter() - t0
    resize = config.eval.resize
    info = get_extractor(config.eval.extractor)
    layer = info.layer("fid")
    ext = load_extractor(info.name, [layer], device=torch.device("cpu"))
    samples = extract_features(open_images(sampled.npz, resize=resize), ext, device=torch.device("cpu"),
                               batch_size=100)[layer]
    ref = open_reference(config.eval.reference or config.data.source, resize=resize, limit=max(args.ref_sizes))
    reference = extract_features(ref.images, ext, device=torch.device("cpu"), batch_size=100)[layer]
    print(f"{len(samples)} samples in {sample_s:.0f} s ({len(samples) / sample_s:.1f} img/s); extractor {info.name}, "
          f"reference {len(reference)} images; {args.repeats} draws per size\n")
    rng = np.random.default_rng(0)
    print("| samples n | reference R | FD mean | sd over draws | bias vs largest n |")
    print("|---|---|---|---|---|")
    for r in args.ref_sizes:
        ref_feats = reference[:r]
        rows = {}
        for n in sorted(args.sizes):
            draws = 1 if n >= len(samples) else args.repeats
            rows[n] = [fd(samples[rng.choice(len(samples), n, replace=False)], ref_feats) for _ in range(draws)]
        best = statistics.fmean(rows[max(rows)])
        for n, values in rows.items():
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(f"| {n} | {r} | {statistics.fmean(values):.2f} | {sd:.2f} | {statistics.fmean(values) - best:+.2f} |")


if __name__ == "__main__":
    main()
