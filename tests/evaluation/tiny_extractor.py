"""A small real feature extractor for fast tests: two random convolutions (fixed seed, weights saved to a
file the test makes) registered with torch-fidelity and `mirai eval` as "tiny-test"."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from mirai_cli.evaluation import ExtractorInfo, register_extractor

NAME = "tiny-test"
WEIGHTS: dict[str, Path] = {}


def _net() -> torch.nn.Module:
    return torch.nn.ModuleDict({
        "c1": torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        "c2": torch.nn.Conv2d(16, 24, 3, stride=2, padding=1),
        "fc": torch.nn.Linear(24, 10),
    })


def make_weights(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save(_net().state_dict(), path)
    return path


class TinyExtractor(FeatureExtractorBase):
    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        self.net = _net()
        self.net.load_state_dict(torch.load(feature_extractor_weights_path, weights_only=True))
        self.eval()

    def forward(self, x):
        x = F.interpolate(x.float() / 127.5 - 1, size=(32, 32), mode="bilinear", align_corners=False)
        h = F.relu(self.net["c2"](F.relu(self.net["c1"](x))))
        feat = h.mean((2, 3))
        out = {"feat": feat, "logits": self.net["fc"](feat)}
        return tuple(out[k] for k in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "feat", "kid": "feat", "prc": "feat"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None


def _weights(explicit: str | None, allow_download: bool):
    return WEIGHTS["path"], "test file"


register_extractor(ExtractorInfo(NAME, "tiny", False, _weights), TinyExtractor)
