"""LlamaGen-compatible class-conditional GPT: the model, its checkpoints, and guided sampling."""

from mirai_cli.gpt.checkpoint import load_gpt_checkpoint, save_gpt_weights
from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
from mirai_cli.gpt.generate import SampleOptions, generate
from mirai_cli.gpt.model import GPT, GPTOutput

__all__ = [
    "GPT",
    "NAMED_SIZES",
    "GPTConfig",
    "GPTOutput",
    "SampleOptions",
    "generate",
    "load_gpt_checkpoint",
    "save_gpt_weights",
]
