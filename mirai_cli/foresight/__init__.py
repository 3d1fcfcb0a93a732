"""The Mirai part: grid layouts and aligned pairs, projector heads, the loss and its lambda schedule,
teachers (EMA of the generator, frozen encoders) and the teacher-feature cache. Importable without the trainer."""

from mirai_cli.foresight.layouts import OFFSETS_2D, HeadPairs, aligned_pairs, default_offsets
from mirai_cli.foresight.loss import TOTAL_KEY, foresight_losses, head_key, negative_cosine
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.projector import FusedProjectors, Projector
from mirai_cli.foresight.schedule import LambdaSchedule

__all__ = [
    "OFFSETS_2D",
    "TOTAL_KEY",
    "ForesightObjective",
    "FusedProjectors",
    "HeadPairs",
    "LambdaSchedule",
    "Projector",
    "aligned_pairs",
    "default_offsets",
    "foresight_losses",
    "head_key",
    "negative_cosine",
]
