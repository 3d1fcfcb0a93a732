"""LlamaGen-compatible class-conditional GPT: the model, its checkpoints, and guided sampling."""

from mirai_cli.gpt.checkpoint import load_gpt_checkpoint, save_gpt_weights
from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
from mirai_cli.gpt.generate import SampleOptions
from mirai_cli.gpt.model import GPT, GPTOutput

# `generate` (the function) stays in mirai_cli.gpt.generate: re-exported here it would shadow that module.

__all__ = [
    "GPT",
    "NAMED_SIZES",
    "GPTConfig",
    "GPTOutput",
    "SampleOptions",
    "load_gpt_checkpoint",
    "save_gpt_weights",
]
