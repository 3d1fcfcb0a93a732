"""LlamaGen-compatible class-conditional GPT: the model, its checkpoints, and guided sampling."""

from mirai_cli.gpt.config import NAMED_SIZES, GPTConfig
from mirai_cli.gpt.model import GPT, GPTOutput

__all__ = ["GPT", "NAMED_SIZES", "GPTConfig", "GPTOutput"]
