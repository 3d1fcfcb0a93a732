"""One process of `torchrun --nproc_per_node 2` (gloo, CPU), started by test_fsdp.py: the same bf16 Mirai-E steps
with train.parallel = ddp and then fsdp (build_run + train_step, the real engine), noting what dtypes reach the
GPT blocks (RoPE table), the step module (teacher targets) and the EMA teacher's blocks (its weights), after
FSDP's own forward hooks. Rank 0 writes the record as JSON.

usage: fsdp_bf16_worker.py STORE_INFO.json OUT_DIR STEPS
"""

import json
import sys
from pathlib import Path

from mirai_testdata import read_store_info, tiny_overrides

from mirai_cli.config import load_config
from mirai_cli.engine.parallel import full_state
from mirai_cli.engine.run import build_run
from mirai_cli.engine.step import train_step
from mirai_cli.runtime.distributed import job_env

NO_DROPOUT = {"model.class_dropout": 0.0, "model.token_dropout": 0.0, "model.resid_dropout": 0.0,
              "model.ffn_dropout": 0.0}


def dtype_hooks(run, seen: dict) -> list:
    """Forward pre-hooks registered after fully_shard's: they see what FSDP hands on (and change nothing)."""
    def note(key, value):
        return lambda module, args: seen.setdefault(key, value(module, args)) and None

    return [
        run.gpt.layers[0].register_forward_pre_hook(note("rope", lambda m, a: str(a[1].dtype))),
        run.step_module.register_forward_pre_hook(note("targets", lambda m, a: str(a[2].dtype))),
        run.teacher_module.layers[0].register_forward_pre_hook(
            note("teacher_weights", lambda m, a: sorted({str(p.dtype) for p in m.parameters()}))),
    ]


def one_run(store: dict, out: Path, parallel: str, steps: int, env) -> dict:
    sets = {**NO_DROPOUT, "train.precision": "bf16", "train.parallel": parallel, "train.duration": steps,
            "train.ckpt_every": steps}
    run = build_run(load_config(["mirai-e", "tiny"], tiny_overrides(store, out / parallel, **sets)), env,
                    progress=False)
    seen: dict = {}
    hooks = dtype_hooks(run, seen)
    losses = []
    for step in range(steps):
        result = train_step(run, step, [run.reader.to_device(b) for b in run.reader.read(step)])
        losses.append(dict(zip(result.keys, result.losses.tolist()), grad_norm=float(result.grad_norm)))
    for hook in hooks:
        hook.remove()
    weights = {k: v.float().tolist() for k, v in full_state(run.step_module).items()}
    return {"precision": run.precision, "dtypes": seen, "losses": losses, "weights": weights}


def main() -> None:
    store = read_store_info(sys.argv[1])
    out, steps = Path(sys.argv[2]), int(sys.argv[3])
    with job_env() as env:
        record = {"world_size": env.world_size, **{p: one_run(store, out, p, steps, env) for p in ("ddp", "fsdp")}}
    if env.is_main:
        (out / "record.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()
