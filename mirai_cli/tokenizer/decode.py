"""Token store entries -> pixels (a grid PNG), to check a store by eye."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mirai_cli.data.crops import to_uint8
from mirai_cli.data.images import image_grid, save_png
from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.runtime.device import autocast, resolve_device, resolve_precision
from mirai_cli.tokenizer.checkpoint import load_tokenizer, tokenizer_identity
from mirai_cli.tokenizer.vq_model import VQModel


@torch.no_grad()
def decode_codes_to_uint8(model: VQModel, codes: np.ndarray, grid: tuple[int, int], device: torch.device,
                          precision: str = "fp32", batch_size: int = 16) -> np.ndarray:
    """codes (n, h*w) -> uint8 [n, S, S, 3]."""
    out = []
    for s in range(0, len(codes), batch_size):
        c = torch.from_numpy(np.asarray(codes[s: s + batch_size]).astype(np.int64)).to(device)
        with autocast(device, precision):
            out.append(to_uint8(model.decode_codes(c, grid)))
    return np.concatenate(out)


def decode_store_entries(
    store: str | Path | TokenStore,
    tokenizer: str | Path,
    indices: Sequence[int],
    out_png: str | Path,
    *,
    crop: int = 0,
    nrow: int = 8,
    device: str = "auto",
    precision: str = "fp32",
    allow_other_tokenizer: bool = False,
) -> Path:
    """Decode entries `indices` (crop `crop`) of a store with its tokenizer into one grid PNG at `out_png`."""
    st = store if isinstance(store, TokenStore) else TokenStore.open(store)
    if not 0 <= crop < st.num_crops:
        raise MiraiError(f"crop {crop} does not exist: the store has crops 0..{st.num_crops - 1}")
    idx = np.asarray(list(indices), dtype=np.int64)
    if len(idx) == 0:
        raise MiraiError("no entries to decode: give at least one index")
    if idx.min() < 0 or idx.max() >= len(st):
        raise MiraiError(f"entry index out of range: the store has entries 0..{len(st) - 1}")
    dev = resolve_device(device)
    model, cfg = load_tokenizer(tokenizer, device=dev)
    if not allow_other_tokenizer:
        identity = tokenizer_identity(tokenizer, model, cfg)
        if not identity.matches(st.manifest["tokenizer_sha256"]):
            raise MiraiError(f"token store {st.path} was made by another tokenizer than {tokenizer} (sha256 "
                             f"{st.manifest['tokenizer_sha256'][:12]}... vs {identity.weights[:12]}...): give the "
                             "tokenizer it was made with")
    if cfg.codebook_size != st.codebook_size:
        raise MiraiError(f"tokenizer {tokenizer} has {cfg.codebook_size} codes but the store was made with "
                         f"{st.codebook_size}")
    codes = st.codes.get(idx, np.full(len(idx), crop))
    images = decode_codes_to_uint8(model, codes, st.grid, dev, resolve_precision(precision, dev))
    return save_png(image_grid(images, nrow=nrow), out_png)
