"""Presets: the pydantic schema, loading/layering/overrides, and the resolved TOML written next to outputs."""

from mirai_cli.config.loader import find_preset, load_config, shipped_preset_names, shipped_presets_dir
from mirai_cli.config.schema import MiraiConfig
from mirai_cli.config.toml_writer import resolved_toml

__all__ = ["MiraiConfig", "find_preset", "load_config", "resolved_toml", "shipped_preset_names", "shipped_presets_dir"]
