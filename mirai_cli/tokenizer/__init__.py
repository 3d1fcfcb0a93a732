"""The LlamaGen-compatible VQ tokenizer: model, checkpoints, training (fit), encode to / decode from a store."""

from mirai_cli.tokenizer.checkpoint import load_tokenizer, load_tokenizer_with_extra, save_tokenizer
from mirai_cli.tokenizer.config import VQConfig
from mirai_cli.tokenizer.decode import decode_store_entries
from mirai_cli.tokenizer.encode import encode_store
from mirai_cli.tokenizer.fit import FitConfig, FitResult, fit_tokenizer
from mirai_cli.tokenizer.vq_model import VQModel

__all__ = ["FitConfig", "FitResult", "VQConfig", "VQModel", "decode_store_entries", "encode_store",
           "fit_tokenizer", "load_tokenizer", "load_tokenizer_with_extra", "save_tokenizer"]
