"""Process group and device: one process on a CPU, or one per GPU (or CPU worker) under torchrun."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from mirai_cli.runtime.device import choose_device, visible_gpus


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(prefer_device: Optional[str] = None) -> DistEnv:
    """Join the torchrun process group if there is one (NCCL on CUDA, gloo on CPU); else a single process.
    prefer_device: "auto"/None, "cpu", "cuda" or (one process) "cuda:N" (runtime.device.choose_device)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(prefer_device, local_rank=local_rank, world_size=world_size, gpus=visible_gpus())
    if device.type == "cuda":
        torch.cuda.set_device(device)  # "cuda" without an index (and NCCL) means this GPU from here on
    if world_size > 1 and not dist.is_initialized():
        _join_group("nccl" if device.type == "cuda" else "gloo", rank, world_size)
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


_groups_joined = [0]  # per process; every rank runs the same jobs in the same order, so the counts agree


def _join_group(backend: str, rank: int, world_size: int) -> None:
    """torchrun's group, under a key prefix of its own: a second job in the same process (train, then sample)
    joins a new group, and under the default prefix its peers would read the previous group's addresses
    (gloo: 'Connection refused' or a hang)."""
    timeout = timedelta(minutes=30)
    store, _, _ = next(dist.rendezvous("env://", timeout=timeout))
    _groups_joined[0] += 1
    store = dist.PrefixStore(f"mirai-job-{_groups_joined[0]}/", store)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


@contextlib.contextmanager
def job_env(env: Optional[DistEnv] = None, prefer_device: Optional[str] = None) -> Iterator[DistEnv]:
    """The processes of one job (train, sample, encode): `env` when the caller has one (it then owns the process
    group), else torchrun's group joined here and destroyed when the job ends, also on an error (an NCCL
    process that exits without destroy_process_group warns and can hang)."""
    if env is not None:
        yield env
        return
    owned = not dist.is_initialized()
    env = init_distributed(prefer_device)
    clean = False
    try:
        yield env
        clean = True
    finally:
        if owned:
            shutdown(env, clean=clean)


def barrier(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def broadcast_object(obj: object, env: DistEnv) -> object:
    """Rank 0's value on every rank (used for decisions every rank must share, e.g. 'stop now')."""
    if not (env.distributed and dist.is_initialized()):
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shutdown(env: DistEnv, clean: bool = True) -> None:
    """Leave the process group. After a clean end every rank meets at a barrier first: a rank that destroys
    the group while a peer still receives its last broadcast aborts the process (gloo: "terminate called
    without an active exception"). After an error there is no barrier (the peers may never arrive); the
    failing rank exits and torchrun stops the others. The collection frees now a group that a reference cycle
    still holds: freed at interpreter exit instead, its threads abort the process (1 run in 3 here)."""
    if env.distributed and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()
