"""Fit the `tiny` tokenizer on Fashion-MNIST (32 px) within a wall-clock budget and print PSNR and codebook usage.

    python bench/tokenize_fit.py [--minutes 9.5] [--out runs/bench/tokenizer-fmnist] [--steps 1500]

Prints the fit's PSNR and codebook usage (2 CPU cores: minutes); the `tiny` preset's fit settings are in
presets/tiny.toml."""

from __future__ import annotations

import argparse
import json

import torch

from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.fit import FitConfig, fit_tokenizer
from mirai_cli.tokenizer.vq_model import VQModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=9.5, help="wall-clock budget, including the final evaluation")
    ap.add_argument("--out", default="runs/bench/tokenizer-fmnist")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--codebook-size", type=int, default=512)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    vq = VQConfig.tiny(codebook_size=args.codebook_size)
    cfg = FitConfig(source="fashion-mnist", out_dir=args.out, vq=vq, image_size=32, steps=args.steps,
                    batch_size=args.batch_size, lr=args.lr, precision=args.precision,
                    time_limit_s=args.minutes * 60 - 20, eval_images=512, checkpoint_every=250, log_every=25,
                    resume=False)
    r = fit_tokenizer(cfg)
    params = sum(p.numel() for p in VQModel(vq).parameters())
    print(json.dumps({"tokenizer": "tiny", "params": params, "image_size": 32, "grid": list(vq.grid(32)),
                      "codebook_size": vq.codebook_size, "steps": r.steps, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "seconds": round(r.seconds, 1), "psnr_db": round(r.psnr, 2),
                      "codebook_usage": round(r.codebook_usage, 3), "codes_used": r.codes_used,
                      "checkpoint": str(r.tokenizer_path), "grid_png": str(r.grid_png)}, indent=1))


if __name__ == "__main__":
    main()
