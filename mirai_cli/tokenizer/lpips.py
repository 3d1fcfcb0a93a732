"""LPIPS perceptual distance (VGG16 features, as LlamaGen's VQ training uses). Frozen; inputs in [-1, 1].

VGG16 weights come from a local file (a torchvision `vgg16` state dict) or torchvision's normal download
(cached under $TORCH_HOME/hub/checkpoints/). The learned per-channel weights ("lin" layers, a 7 kB file
`vgg.pth` from the LPIPS project) come from a local file or the `lpips` pip package when installed;
without them every channel weighs the same."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mirai_cli.errors import MiraiError

CHANNELS = (64, 128, 256, 512, 512)
SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG_FILE = "vgg16-397923af.pth"


def vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 convolutional part alone (building the whole net spends seconds on its 100M-weight
    classifier, which LPIPS never uses)."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D"], batch_norm=False)


def _vgg_features(vgg_weights: str | Path | None) -> nn.Sequential:
    import torchvision

    if vgg_weights is not None:
        path = Path(vgg_weights).expanduser()
        if not path.is_file():
            raise MiraiError(f"LPIPS VGG16 weights not found at {path}: give a torchvision vgg16 state dict "
                             f"({VGG_FILE}) or turn LPIPS off")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise MiraiError(f"cannot read VGG16 weights {path}: {type(e).__name__}: {e}") from e
        features = vgg16_features()
        feats = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
        try:
            features.load_state_dict(feats, strict=True)
        except RuntimeError as e:
            raise MiraiError(f"{path} is not a torchvision vgg16 state dict: {str(e).splitlines()[0]}") from e
        return features
    try:
        net = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    except Exception as e:  # noqa: BLE001 - URLError, SSL, OSError...: no network and no cached copy
        hub = Path(torch.hub.get_dir()) / "checkpoints" / VGG_FILE
        raise MiraiError(f"LPIPS needs VGG16 weights: none at {hub} and the download failed ({type(e).__name__}); "
                         f"put {VGG_FILE} there, give a local file (lpips VGG weights option), or turn LPIPS off") from e
    return net.features


def _lin_weights(lin_weights: str | Path | None) -> dict[str, torch.Tensor] | None:
    path: Path | None = Path(lin_weights).expanduser() if lin_weights else None
    if path is None:
        try:
            import lpips  # optional: the pip package ships the learned weights

            path = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
        except ImportError:
            return None
    if not path.is_file():
        raise MiraiError(f"LPIPS linear-layer weights not found at {path}")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    # LPIPS files name them lin0.model.1.weight (with dropout) or lin0.model.0.weight
    out = {}
    for i in range(5):
        key = next((k for k in sd if k.startswith(f"lin{i}.") and k.endswith("weight")), None)
        if key is None:
            raise MiraiError(f"{path} is not an LPIPS vgg.pth: no lin{i} weight")
        out[f"lin{i}"] = sd[key].reshape(1, -1, 1, 1).float()
    return out


class LPIPS(nn.Module):
    def __init__(self, vgg_weights: str | Path | None = None, lin_weights: str | Path | None = None) -> None:
        super().__init__()
        feats = _vgg_features(vgg_weights)
        self.slices = nn.ModuleList(nn.Sequential(*[feats[j] for j in range(a, b)]) for a, b in SLICES)
        for m in self.slices.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        lins = _lin_weights(lin_weights)
        self.learned = lins is not None
        for i, c in enumerate(CHANNELS):
            w = lins[f"lin{i}"] if lins else torch.full((1, c, 1, 1), 1.0 / c)
            self.register_buffer(f"lin{i}", w)
        # LPIPS's input scaling (the ImageNet statistics expressed for inputs in [-1, 1])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # always frozen

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-image distance (B,)."""
        h = torch.cat([x, y]).sub(self.shift).div(self.scale)
        total = torch.zeros(x.shape[0], device=x.device)
        for i, block in enumerate(self.slices):
            h = block(h)
            f = h.float()
            f = f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            fx, fy = f.chunk(2)
            total = total + ((fx - fy) ** 2 * getattr(self, f"lin{i}")).sum(dim=1).mean(dim=(1, 2))
        return total
