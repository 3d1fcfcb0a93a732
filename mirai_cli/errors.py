"""User-facing errors: the CLI turns these into one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations


class MiraiError(Exception):
    """A problem with the user's input (files, presets, checkpoints). The message is the whole story:
    what is wrong, where, and how to fix it."""

    exit_code = 2


class ConfigError(MiraiError):
    """A preset or override that does not validate."""


class TrainingDiverged(MiraiError):
    """A NaN/inf loss stopped training; the last good checkpoint is kept."""

    exit_code = 1
