"""FD's floor on a token store: what FD would a perfect generator of these tokens get? FD against the evaluation
reference of (a) n real training images and (b) the same images encoded and decoded by the store's tokenizer.
A generator's samples are decoded tokens, so (b) bounds from below what any GPT on this store can reach, and
(a) is the finite-sample FD of real data at this n.

    python bench/fd_floor.py --preset small --n 1000
    python bench/fd_floor.py --set data.image_size=64 --set 'data.store="runs/sweep-g16/tokens"' \
        --set 'tokenizer.checkpoint="runs/sweep-g16/tokenizer"'          # the sweep's 16x16 grid

The n images are the store's first n entries (the reference is the evaluation's random subset of the training
split, as `mirai ablate` uses it; the overlap is the same for both rows).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from mirai_cli.config import load_config
from mirai_cli.data.store import TokenStore
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.extractors import get_extractor, load_extractor
from mirai_cli.evaluation.features import extract_features, stats_of
from mirai_cli.evaluation.reference import open_reference
from mirai_cli.tokenizer.checkpoint import load_tokenizer, resolve_tokenizer_path
from mirai_cli.tokenizer.decode import decode_codes_to_uint8
from mirai_cli.tokenizer.from_config import tokenizer_location


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a preset override")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    config = load_config(args.preset or ["tiny"], args.set)
    cpu = torch.device("cpu")
    store = TokenStore.open(config.data.store)
    idx = np.arange(min(args.n, len(store)))
    real = store.crop_pixels(idx, np.zeros_like(idx))
    model, _ = load_tokenizer(resolve_tokenizer_path(tokenizer_location(config)), device=cpu)
    decoded = decode_codes_to_uint8(model, store.codes.get(idx, np.zeros_like(idx)), store.grid, cpu)
    info = get_extractor(config.eval.extractor)
    layer = info.layer("fid")
    ext = load_extractor(info.name, [layer], device=cpu)
    resize = config.eval.resize

    def features(spec) -> np.ndarray:
        ref = open_reference(spec, resize=resize, limit=config.eval.ref_limit if isinstance(spec, str) else None)
        return extract_features(ref.images, ext, device=cpu, batch_size=100)[layer]

    reference = stats_of(features(config.eval.reference or config.data.source)).as_fidelity()
    print(f"FD-{info.name} against {config.eval.ref_limit} reference images, n = {len(idx)}\n")
    print("| images | FD |\n|---|---|")
    for name, images in (("real training images", real), ("the same, tokenizer-reconstructed", decoded)):
        fd = fid_statistics_to_metric(stats_of(features(images)).as_fidelity(), reference, verbose=False)[KEY_METRIC_FID]
        print(f"| {name} | {fd:.2f} |")


if __name__ == "__main__":
    try:
        main()
    except MiraiError as error:  # a missing store, tokenizer or extractor: one line, not a traceback
        raise SystemExit(f"error: {error}") from None
