"""mirai: class-conditional autoregressive image generation with foresight (Mirai, arXiv 2601.14671)."""

__version__ = "0.1.0"
