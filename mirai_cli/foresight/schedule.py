"""lambda per head over training. A pure function of the step, so a resumed run gets the same weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mirai_cli.errors import MiraiError

ScheduleKind = Literal["constant", "step", "cosine"]


@dataclass(frozen=True)
class LambdaSchedule:
    """lambdas: base weight per head. kind:
    - constant: lambda;
    - step: lambda until `at_step`, lambda * factor from `at_step` on (Mirai-E: 2 -> 1 at epoch 80);
    - cosine: lambda at the end of warm-up down to lambda * factor at `total_steps` (half cosine).
    During warm-up (step < warmup_steps) every weight is 0: the foresight loss is off.
    Steps count optimizer updates from 0; epochs are converted to steps by the caller."""

    lambdas: tuple[float, ...]
    kind: ScheduleKind = "constant"
    factor: float = 0.5
    at_step: int = 0
    warmup_steps: int = 0
    total_steps: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "cosine"):
            raise MiraiError(f"foresight.lambda_schedule must be constant, step or cosine, got {self.kind!r}")
        if any(lam < 0 for lam in self.lambdas) or self.factor < 0:
            raise MiraiError("foresight.lambda and foresight.lambda_factor must be >= 0")
        if self.kind == "cosine" and self.total_steps <= 0:
            raise MiraiError("foresight.lambda_schedule = cosine needs the run length (train.duration) in steps")

    @classmethod
    def build(
        cls,
        lambda_: float | Sequence[float],
        num_heads: int,
        kind: ScheduleKind = "constant",
        factor: float = 0.5,
        at_step: int = 0,
        warmup_steps: int = 0,
        total_steps: int = 0,
    ) -> LambdaSchedule:
        """Expand one lambda to every head, or check that a list has one value per head."""
        if isinstance(lambda_, (int, float)):
            lambdas = (float(lambda_),) * num_heads
        else:
            lambdas = tuple(float(v) for v in lambda_)
            if len(lambdas) != num_heads:
                raise MiraiError(
                    f"foresight.lambda has {len(lambdas)} values but there are {num_heads} heads; "
                    "give one number or one per head"
                )
        return cls(lambdas, kind, float(factor), int(at_step), int(warmup_steps), int(total_steps))

    def multiplier(self, step: int) -> float:
        """The factor applied to every base lambda at `step` (0 during warm-up)."""
        if step < self.warmup_steps:
            return 0.0
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.factor if step >= self.at_step else 1.0
        span = self.total_steps - self.warmup_steps
        progress = 1.0 if span <= 0 else min(max((step - self.warmup_steps) / span, 0.0), 1.0)
        return self.factor + (1.0 - self.factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def weights(self, step: int) -> list[float]:
        """lambda_k at `step`, one per head."""
        m = self.multiplier(step)
        return [lam * m for lam in self.lambdas]

    def active(self, step: int) -> bool:
        """False when every weight is 0: the trainer can skip the teacher and the projectors."""
        return any(w > 0 for w in self.weights(step))
