"""Reconstruction quality of a tokenizer on held-out images: PSNR and codebook usage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mirai_cli.data.crops import to_model_input, to_uint8
from mirai_cli.runtime.device import autocast
from mirai_cli.tokenizer.vq_model import VQModel


@dataclass
class ReconReport:
    psnr: float  # dB, mean over images, on uint8 pixels
    codebook_usage: float  # distinct codes used / codebook size
    codes_used: int
    reconstructions: np.ndarray  # uint8 [N, S, S, 3]


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR of uint8 [N, H, W, C] arrays (capped at 100 dB for identical images)."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    return np.where(mse == 0, 100.0, 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)))


@torch.no_grad()
def evaluate_reconstruction(model: VQModel, images: np.ndarray, device: torch.device, precision: str = "fp32",
                            batch_size: int = 64) -> ReconReport:
    was_training = model.training
    model.eval()
    recons, used = [], torch.zeros(model.cfg.codebook_size, dtype=torch.bool)
    for s in range(0, len(images), batch_size):
        x = to_model_input(images[s: s + batch_size], device)
        with autocast(device, precision):
            rec, q = model(x)
        used[q.codes.reshape(-1).cpu()] = True
        recons.append(to_uint8(rec))
    model.train(was_training)
    rec = np.concatenate(recons)
    n_used = int(used.sum())
    return ReconReport(float(psnr_uint8(images, rec).mean()), n_used / model.cfg.codebook_size, n_used, rec)
