"""One process of `torchrun --nproc_per_node 2` (gloo, CPU), started by test_distributed.py: the three jobs that
join torchrun's process group (train, sample, encode), called as library functions one after the other. Notes,
inside each job, that the group is up, and after it, whether it is still up. Rank 0 writes the record as JSON.

usage: jobs_worker.py STORE_INFO.json OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from mirai_testdata import read_store_info, tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.engine.trainer import train
from mirai_cli.sampling import run_sample_job
from mirai_cli.sampling.from_config import sample_job_from_config
from mirai_cli.tokenizer.encode import encode_store


def main() -> None:
    store, out = read_store_info(sys.argv[1]), Path(sys.argv[2])
    inside: dict[str, bool] = {}
    after: dict[str, bool] = {}
    config = load_config(["tiny"], tiny_overrides(store, out / "run", **{"train.duration": 2, "train.ckpt_every": 2}))
    result = train(config, progress=False)
    inside["train"] = json.loads((result.run_dir / "manifest.json").read_text())["parallel"] == "ddp"
    after["train"] = dist.is_initialized()

    job = sample_job_from_config(config, str(result.run_dir), out_dir=str(out / "samples"), per_class=1, device="cpu")
    run_sample_job(job, progress=lambda done, total: inside.setdefault("sample", dist.is_initialized()))
    after["sample"] = dist.is_initialized()

    encode_store(store["tokenizer"], str(store["npz"]), out / "store", image_size=16, crop_mode="none",
                 shard_size=32, device="cpu", show_progress=False,
                 on_shard_done=lambda shard: inside.setdefault("encode", dist.is_initialized()))
    after["encode"] = dist.is_initialized()
    if os.environ["RANK"] == "0":
        (out / "record.json").write_text(json.dumps({"inside": inside, "after": after}))


if __name__ == "__main__":
    main()
