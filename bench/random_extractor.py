"""A random-weight evaluation extractor for the GPU check: timm's EfficientNet-Lite0 (timm is on the bare GPU
image; the PyPI weight packages are not) with seeded random weights saved to a file, registered with
torch-fidelity and `evaluate` as "gpu-check-random". It exercises the evaluation path on the device; its FID is
not comparable to any published one."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from mirai_cli.evaluation import ExtractorInfo, register_extractor

NAME = "gpu-check-random"
_SETTINGS: dict = {"size": 224}  # input size (smaller in the CPU mode)


def _net() -> torch.nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


class RandomExtractor(FeatureExtractorBase):
    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = _net()
        self.net.load_state_dict(torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        x = F.interpolate(x.float(), size=(_SETTINGS["size"],) * 2, mode="bilinear", align_corners=False)
        pooled = self.net.forward_head(self.net.forward_features((x - 127.5) / 127.5), pre_logits=True)
        out = {"pool": pooled, "logits": self.net.classifier(pooled)}
        return tuple(out[k].float() for k in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "pool", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None


def register(path: Path, seed: int = 0, size: int = 224) -> Path:
    """Save seeded random weights at `path` and register the extractor (once per process) at input `size`."""
    torch.manual_seed(seed)
    torch.save(_net().state_dict(), path)
    _SETTINGS.update(path=Path(path), size=size)
    if not getattr(register, "done", False):
        register_extractor(ExtractorInfo(NAME, "random", False, lambda explicit, allow: (_SETTINGS["path"], "random")),
                           RandomExtractor)
        register.done = True  # type: ignore[attr-defined]
    return Path(path)
