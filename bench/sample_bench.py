"""Sampling speed on this machine: KV-cached decoding vs recomputing the prefix every step.

Cases (random weights; speed does not depend on them):
- tiny:  the `tiny` preset's GPT (4 layers, dim 128, 8x8 tokens, vocab 512, 10 classes), CFG 2, batch 8
- GPT-B: LlamaGen GPT-B (12 layers, dim 768, 16x16 tokens, vocab 16384, 1000 classes), CFG 2, batch 8

Each case runs in its own subprocess so that its peak RSS (resource.getrusage) is its own. The uncached GPT-B
run would take tens of minutes on 2 cores, so by default its time is measured at a few prefix lengths and
integrated over all 256 steps (trapezoid rule; the per-step cost is close to linear in the prefix length);
--full-uncached runs it for real.

    python bench/sample_bench.py [--threads 2] [--batch 8] [--full-uncached]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time

# Threads that spin-wait make small CPU kernels crawl when other processes share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CASES = {
    "tiny": {"vocab_size": 512, "num_classes": 10, "layers": 4, "dim": 128, "heads": 4, "grid": (8, 8),
             "multiple_of": 64},
    "GPT-B": {"vocab_size": 16384, "num_classes": 1000, "layers": 12, "dim": 768, "heads": 12, "grid": (16, 16)},
}
PROBE_LENGTHS = (1, 32, 64, 128, 256)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_case(name: str, mode: str, batch: int, threads: int, cfg_scale: float, full_uncached: bool) -> dict:
    import torch

    from mirai_cli.gpt import GPT, GPTConfig
    from mirai_cli.gpt.generate import SampleOptions, generate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**CASES[name])).eval()
    with torch.no_grad():
        model.output.weight.normal_(0, 0.02)
    n = model.cfg.seq_len
    labels = torch.arange(batch) % model.cfg.num_classes
    rss_model = peak_rss_mib()
    out = {"case": name, "mode": mode, "batch": batch, "tokens_per_image": n, "threads": threads,
           "cfg_scale": cfg_scale, "rss_after_model_mib": round(rss_model, 1)}
    opts = SampleOptions(cfg_scale=cfg_scale, use_cache=(mode == "cached"))

    if mode == "cached" or full_uncached or name == "tiny":
        generate(model, labels[:2], SampleOptions(cfg_scale=cfg_scale, use_cache=opts.use_cache),
                 generator=torch.Generator().manual_seed(1))  # warm-up (allocator, kernels)
        t0 = time.perf_counter()
        generate(model, labels, opts, generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - t0
        out["measured"] = "full run"
    else:
        # Uncached GPT-B: one step = a full forward over the prefix (2B rows with CFG) + sampling.
        rows = 2 * batch if cfg_scale != 1.0 else batch
        tokens = torch.zeros(rows, n, dtype=torch.long)
        y = torch.cat([labels, labels])[:rows]
        step_s = {}
        with torch.no_grad():
            model(tokens[:, :8], y)  # warm-up
            for t in PROBE_LENGTHS:
                t0 = time.perf_counter()
                logits = model(tokens[:, :t], y).logits[:, t - 1]
                torch.multinomial(logits.softmax(-1), 1)
                step_s[t] = time.perf_counter() - t0
        seconds = 0.0
        pts = sorted(step_s.items())
        for (t_a, s_a), (t_b, s_b) in itertools.pairwise(pts):  # sum of per-step times over t = 1..256
            for t in range(t_a, t_b):
                seconds += s_a + (s_b - s_a) * (t - t_a) / (t_b - t_a)
        seconds += pts[-1][1]
        out["measured"] = "estimated: per-step time at prefix lengths " + ", ".join(
            f"{t}={s * 1000:.0f}ms" for t, s in pts)
    out.update(
        seconds=round(seconds, 2),
        image_tokens_per_s=round(batch * n / seconds, 1),
        images_per_s=round(batch / seconds, 3),
        peak_rss_mib=round(peak_rss_mib(), 1),
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cfg-scale", type=float, default=2.0)
    ap.add_argument("--full-uncached", action="store_true", help="really run the uncached GPT-B case (slow)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.case:  # child process: one case, one JSON line
        print(json.dumps(run_case(args.case, args.mode, args.batch, args.threads, args.cfg_scale, args.full_uncached)))
        return

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; threads {args.threads}; "
          f"batch {args.batch}; CFG {args.cfg_scale}; float32")
    results = []
    for case in CASES:
        for mode in ("cached", "uncached"):
            cmd = [sys.executable, __file__, "--case", case, "--mode", mode, "--batch", str(args.batch),
                   "--threads", str(args.threads), "--cfg-scale", str(args.cfg_scale)]
            if args.full_uncached:
                cmd.append("--full-uncached")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode:
                sys.exit(f"{case}/{mode} failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(f"{case:6s} {mode:8s} {r['seconds']:8.2f} s  {r['image_tokens_per_s']:9.1f} image tok/s  "
                  f"{r['images_per_s']:7.3f} img/s  peak RSS {r['peak_rss_mib']:7.1f} MiB "
                  f"(after import + model build {r['rss_after_model_mib']:.0f})  [{r['measured']}]")
    for case in CASES:
        c = next(r for r in results if r["case"] == case and r["mode"] == "cached")
        u = next(r for r in results if r["case"] == case and r["mode"] == "uncached")
        print(f"{case}: KV cache speed-up at {c['tokens_per_image']} tokens = {u['seconds'] / c['seconds']:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
