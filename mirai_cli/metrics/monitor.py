"""What the loop learns from the device, read back only at log and checkpoint steps: the step's loss terms
(all-reduced once, stacked), the grad norm, whether any step since the start went non-finite (a flag kept on
the device, so the NaN guard costs no sync), and whether any process was asked to stop (Ctrl-C)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mirai_cli.runtime.distributed import DistEnv, all_reduce_sum


@dataclass
class Reading:
    losses: dict[str, float]
    grad_norm: float
    diverged: bool  # some process saw a non-finite loss or grad norm since the start
    first_bad_step: int | None  # this process's first such step (None: it saw none)
    stop: bool  # some process was interrupted


class Monitor:
    def __init__(self, device: torch.device) -> None:
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)

    def observe(self, step: int, losses: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Remember (on the device) the first step whose figures are not finite."""
        bad = ~(torch.isfinite(losses).all() & torch.isfinite(grad_norm))
        self.first_bad = torch.where(bad & (self.first_bad < 0), step, self.first_bad)

    def read(self, keys: list[str], losses: torch.Tensor, grad_norm: torch.Tensor, env: DistEnv,
             interrupted: bool) -> Reading:
        """One collective and one device-to-host copy for everything the loop needs to know."""
        flags = torch.stack([(self.first_bad >= 0).float(), torch.tensor(float(interrupted), device=losses.device)])
        summed = all_reduce_sum(torch.cat([losses.float(), grad_norm.float().reshape(1), flags]), env)
        values = torch.cat([summed, self.first_bad.float().reshape(1)]).tolist()
        n = len(keys)
        mean = [v / env.world_size for v in values[: n + 1]]
        any_bad, any_stop, first_bad = values[n + 1], values[n + 2], int(values[n + 3])
        return Reading(dict(zip(keys, mean[:n])), mean[n], any_bad > 0, first_bad if first_bad >= 0 else None,
                       any_stop > 0)
