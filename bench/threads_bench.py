"""CPU threads under load: two training jobs at once (what `mirai ablate --jobs 2` runs), with torch's default
threads and OpenMP waiting vs. the choice `main()` makes for them (runtime/threads.py). Rounds alternate
A B A B ... so both see the same machine; the figure is the ratio of step times.

    python bench/threads_bench.py                      # 3 rounds, 8 layers x 256 wide, 16x16 grid, batch 4
    python bench/threads_bench.py --rounds 2 --steps 6 --layers 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def worker(layers: int, dim: int, batch: int, steps: int) -> None:
    import torch
    import torch.nn.functional as F

    from mirai_cli.engine.optim import build_adamw
    from mirai_cli.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=1024, num_classes=10, layers=layers, dim=dim, heads=dim // 64, grid=(16, 16)))
    optimizer = build_adamw(gpt.named_parameters(), 1e-4, (0.9, 0.95), 0.05, torch.device("cpu"))
    tokens, labels = torch.randint(0, 1024, (batch, 256)), torch.randint(0, 10, (batch,))
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        logits = gpt(tokens, labels).logits
        F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"median": statistics.median(times[2:]), "threads": torch.get_num_threads()}))


def two_jobs(env: dict[str, str], args: argparse.Namespace) -> tuple[float, int]:
    cmd = [sys.executable, __file__, "--worker", "--layers", str(args.layers), "--dim", str(args.dim),
           "--batch", str(args.batch), "--steps", str(args.steps)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return statistics.mean(r["median"] for r in results), results[0]["threads"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    if args.worker:
        return worker(args.layers, args.dim, args.batch, args.steps)
    from mirai_cli.runtime.threads import apply_threads, choose_threads

    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    chosen = dict(base)
    choice = choose_threads(["ablate", "--jobs", "2"], base, os.cpu_count() or 1)
    apply_threads(choice, chosen)
    modes = {"torch default": base, f"chosen: {choice.describe()}": chosen}
    seen: dict[str, list[float]] = {name: [] for name in modes}
    for r in range(args.rounds):
        for name, env in modes.items():
            seconds, threads = two_jobs(env, args)
            seen[name].append(seconds)
            print(f"round {r + 1} {name}: {seconds:.3f} s/step per job ({threads} threads each)", flush=True)
    a, b = (statistics.median(v) for v in seen.values())
    print(f"\n2 jobs at once, {args.layers} layers x {args.dim}, batch {args.batch}, 16x16 grid, {os.cpu_count()} cores")
    print(f"torch default {a:.3f} s/step, chosen {b:.3f} s/step: default / chosen = {a / b:.2f}x "
          f"(per-round ratios {', '.join(f'{x / y:.2f}' for x, y in zip(*seen.values()))})")


if __name__ == "__main__":
    main()
