"""How the model is spread over processes: one process, DDP (a full copy per process) or FSDP2 (`fully_shard`:
parameters, gradients and optimizer state sharded, for the sizes DDP cannot hold), plus optional activation
checkpointing and torch.compile. State dicts always go through full (consolidated) tensors, so a checkpoint
written by N processes resumes on M processes with either strategy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

from mirai_cli.runtime.distributed import DistEnv

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
FULL_LOAD = StateDictOptions(full_state_dict=True, strict=True)


def checkpoint_blocks(gpt: nn.Module) -> None:
    """Recompute each transformer block's activations in backward instead of storing them. The block keeps its
    class and parameter names (checkpoint names and the EMA stay the same); call it after the EMA copy."""
    from torch.utils.checkpoint import checkpoint

    for block in gpt.layers:  # type: ignore[union-attr]
        plain = block.forward
        block.forward = lambda *a, _f=plain, **k: checkpoint(_f, *a, use_reentrant=False, **k)


def mixed_precision(precision: str) -> Any:
    """FSDP2's policy for modules that compute in `precision`: bf16 all-gathers bf16 weights and reduces
    gradients in fp32. Forward inputs are never cast: the fp32 RoPE table handed to every block and the fp32
    teacher targets handed to the step must stay fp32 (the default cast would round them to bf16)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)
    return MixedPrecisionPolicy(cast_forward_inputs=False)


def fully_shard_models(step_module: nn.Module, others: Sequence[nn.Module], env: DistEnv, precision: str,
                       others_precision: str = "fp32") -> None:
    """FSDP2 over every process: each GPT block is one unit, the rest of the student (embeddings, head,
    foresight heads) the root. The EMA copies (`others`) are sharded the same way, so their update is shard by
    shard, with weights gathered in `others_precision` (the Mirai-E teacher's: fp32 unless it runs in bf16)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(env.device.type, (env.world_size,))
    policy, others_policy = mixed_precision(precision), mixed_precision(others_precision)
    for block in step_module.gpt.layers:  # type: ignore[union-attr]
        fully_shard(block, mesh=mesh, mp_policy=policy)
    for other in others:
        for block in other.layers:  # type: ignore[union-attr]
            fully_shard(block, mesh=mesh, mp_policy=others_policy)
        fully_shard(other, mesh=mesh, mp_policy=others_policy)
        other._get_fsdp_state()._lazy_init()  # type: ignore[operator]  # its own root: it never runs forward()
    fully_shard(step_module, mesh=mesh, mp_policy=policy)


def strategy(env: DistEnv, parallel: str) -> str:
    """What actually runs: 'single' (one process), 'ddp' or 'fsdp' (train.parallel, under torchrun)."""
    return parallel if env.distributed else "single"


def parallelize(step_module: nn.Module, others: Sequence[nn.Module], env: DistEnv, parallel: str,
                precision: str, compile: bool, activation_checkpointing: bool, others_precision: str = "fp32"
                ) -> nn.Module:
    """The module the step calls: `step_module` itself (one process, FSDP) or its DDP wrapper. `others` (the
    EMA copies) are sharded too under FSDP, in `others_precision`."""
    if activation_checkpointing:
        checkpoint_blocks(step_module.gpt)  # type: ignore[arg-type]
    if strategy(env, parallel) == "fsdp":
        if compile:
            for block in step_module.gpt.layers:  # type: ignore[union-attr]
                block.compile()
        fully_shard_models(step_module, others, env, precision, others_precision)
        return step_module
    model: nn.Module = torch.compile(step_module) if compile else step_module  # type: ignore[assignment]
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


@contextlib.contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Sync gradients over processes only when `enabled` (the last micro-batch of a step)."""
    if is_sharded(model):
        model.set_requires_gradient_sync(enabled)  # type: ignore[operator]
    if isinstance(model, nn.parallel.DistributedDataParallel) and not enabled:
        with model.no_sync():
            yield
    else:
        yield


@contextlib.contextmanager
def unsharded(module: Optional[nn.Module]) -> Iterator[None]:
    """Gather a sharded module's own (non-block) parameters for calls other than forward() (the EMA teacher's
    forward_features); a no-op for plain modules."""
    if module is None or not is_sharded(module):
        yield
        return
    module.unshard()  # type: ignore[operator]
    try:
        yield
    finally:
        module.reshard()  # type: ignore[operator]


def clip_grad_norm(module: nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the global grad norm (0 = only measure it); the norm stays on the device."""
    norm = torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm if max_norm > 0 else float("inf"))
    full = getattr(norm, "full_tensor", None)  # a DTensor under FSDP
    return full() if full is not None else norm


def full_state(module: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None) -> Any:
    """Full CPU tensors (on rank 0 when sharded) of the model's, and the optimizer's, state."""
    if optimizer is None:
        return get_model_state_dict(module, options=FULL)
    return get_state_dict(module, optimizer, options=FULL)


def load_full_state(module: nn.Module, model_state: dict[str, torch.Tensor],
                    optimizer: Optional[torch.optim.Optimizer] = None, optimizer_state: Any = None) -> None:
    """Load full tensors into a plain, DDP-wrapped or sharded module (each process shards what it holds)."""
    if optimizer is None:
        set_model_state_dict(module, model_state, options=FULL_LOAD)
    else:
        set_state_dict(module, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                       options=FULL_LOAD)
