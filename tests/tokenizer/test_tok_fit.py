"""tokenize fit on tiny data: outputs, exact resume, codebook care, LPIPS/PatchGAN options, bad input."""

import json

import numpy as np
import pytest
import torch
from tok_helpers import shapes_images, tiny_config

from mirai_cli.errors import MiraiError
from mirai_cli.tokenizer.checkpoint import load_tokenizer_with_extra
from mirai_cli.tokenizer.codebook import DeadCodeRestarter, spherical_kmeans
from mirai_cli.tokenizer.fit import FitConfig, fit_tokenizer
from mirai_cli.tokenizer.vq_model import VQModel


@pytest.fixture
def npz(tmp_path):
    imgs, labels = shapes_images(48, size=16)
    np.savez(tmp_path / "d.npz", images=imgs, labels=labels)
    return str(tmp_path / "d.npz")


def _cfg(npz, out, **over):
    base = {"source": npz, "out_dir": str(out), "vq": tiny_config(), "image_size": 16, "steps": 6, "batch_size": 4, "lr": 1e-3,
                "precision": "fp32", "device": "cpu", "eval_images": 8, "checkpoint_every": 3, "log_every": 2,
                "restart_dead_every": 2, "kmeans_batches": 2, "show_progress": False}
    return FitConfig(**{**base, **over})


@pytest.mark.slow
def test_fit_writes_everything_and_resume_is_exact(npz, tmp_path):
    r = fit_tokenizer(_cfg(npz, tmp_path / "full"), log=lambda m: None)
    assert r.steps == 6 and r.psnr > 5 and 0 < r.codebook_usage <= 1
    out = tmp_path / "full"
    for name in ("tokenizer.pt", "checkpoints/last.pt", "fit_log.jsonl", "reconstructions.png", "fit_summary.json"):
        assert (out / name).is_file(), name
    lines = [json.loads(s) for s in (out / "fit_log.jsonl").read_text().splitlines()]
    assert [d["step"] for d in lines if not d.get("final")] == [2, 4, 6]
    assert lines[-1]["final"] and lines[-1]["psnr"] == pytest.approx(r.psnr)
    model, cfg, extra = load_tokenizer_with_extra(r.tokenizer_path)
    assert cfg == tiny_config() and extra["image_size"] == 16 and extra["fit"]["steps"] == 6

    # interrupted at step 3 (the checkpoint), then resumed: the same weights as the uninterrupted run
    logs = []
    fit_tokenizer(_cfg(npz, tmp_path / "part", steps=3), log=logs.append)
    fit_tokenizer(_cfg(npz, tmp_path / "part", force=True), log=logs.append)  # more steps: --force
    assert any("resuming" in m and "step 3" in m for m in logs)
    resumed, _, _ = load_tokenizer_with_extra(tmp_path / "part" / "tokenizer.pt")
    for k, v in model.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k], v, atol=1e-6), k


def test_resume_with_other_tokenizer_config_is_refused(npz, tmp_path):
    fit_tokenizer(_cfg(npz, tmp_path / "o", steps=3), log=lambda m: None)
    with pytest.raises(MiraiError, match="another tokenizer config"):
        fit_tokenizer(_cfg(npz, tmp_path / "o", vq=tiny_config(codebook_size=32), force=True), log=lambda m: None)


@pytest.mark.slow
def test_lpips_and_patchgan_options(npz, tmp_path):
    from mirai_cli.tokenizer.lpips import vgg16_features

    vgg = vgg16_features()  # random weights: we test the wiring, not the metric
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg.pth")
    r = fit_tokenizer(_cfg(npz, tmp_path / "gan", steps=3, perceptual_weight=1.0, lpips_vgg_weights=str(tmp_path / "vgg.pth"),
                           disc_weight=0.5, disc_start=1, disc_adaptive_weight=True, log_every=1), log=lambda m: None)
    lines = [json.loads(s) for s in (tmp_path / "gan" / "fit_log.jsonl").read_text().splitlines()]
    assert "lpips" in lines[0] and "disc" not in lines[0]  # the discriminator starts after step 1
    assert "disc" in lines[1] and "gen_adv" in lines[1]
    assert r.steps == 3
    ckpt = torch.load(tmp_path / "gan" / "checkpoints" / "last.pt", weights_only=True)
    assert "disc" in ckpt and "disc_optimizer" in ckpt


def test_lpips_is_zero_for_identical_images(tmp_path):
    from mirai_cli.tokenizer.lpips import LPIPS, vgg16_features

    torch.manual_seed(0)
    vgg = vgg16_features()
    torch.save({f"features.{k}": v for k, v in list(vgg.state_dict().items())[:-2]}, tmp_path / "part.pth")
    with pytest.raises(MiraiError, match="not a torchvision vgg16"):
        LPIPS(tmp_path / "part.pth")
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, tmp_path / "vgg.pth")
    lp = LPIPS(tmp_path / "vgg.pth")
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert lp(x, x).abs().max() < 1e-6 and (lp(x, y) > 0).all()
    with pytest.raises(MiraiError, match="VGG16 weights not found"):
        LPIPS(tmp_path / "missing.pth")


def test_lpips_without_weights_says_what_to_do(monkeypatch, tmp_path):
    import torchvision

    from mirai_cli.tokenizer import lpips

    def offline(*a, **k):  # what torchvision does without a network and without a cached copy
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models, "vgg16", offline)
    with pytest.raises(MiraiError, match="LPIPS needs VGG16 weights"):
        lpips.LPIPS()


def test_kmeans_and_dead_code_restarts():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=-1)
    z = (centres[torch.arange(400) % 4] + 0.01 * torch.randn(400, 3, generator=g))
    c = spherical_kmeans(z, 4, generator=g)
    assert (c @ centres.t()).max(dim=0).values.min() > 0.99  # every true centre found
    model = VQModel(tiny_config(codebook_size=16, codebook_dim=3))
    r = DeadCodeRestarter(model.quantize, every=5)
    codes = torch.tensor([[0, 1, 1, 2]])
    r.observe(codes, z[:4].view(1, 4, 3))
    before = model.quantize.embedding.weight.detach().clone()
    assert r.maybe_restart(4, None, g) == 0  # not a check step
    assert r.maybe_restart(5, None, g) == 13  # 16 codes, 3 used
    after = model.quantize.embedding.weight.detach()
    assert torch.equal(after[:3], before[:3]) and not torch.equal(after[3:], before[3:])
    # restarted codes sit next to recent encoder outputs
    sims = torch.nn.functional.normalize(after[3:], dim=-1) @ torch.nn.functional.normalize(z[:4], dim=-1).t()
    assert sims.max(dim=1).values.min() > 0.99


def test_fit_bad_inputs(tmp_path):
    np.savez(tmp_path / "one.npz", images=np.zeros((1, 16, 16, 3), np.uint8), labels=np.zeros(1, np.int64))
    with pytest.raises(MiraiError, match="needs more"):
        fit_tokenizer(_cfg(str(tmp_path / "one.npz"), tmp_path / "o"))
    with pytest.raises(MiraiError, match="multiple of"):
        fit_tokenizer(_cfg(str(tmp_path / "one.npz"), tmp_path / "o", image_size=15))


def test_a_diverged_fit_stops_at_the_next_read_naming_the_first_bad_step(npz, tmp_path):
    """The NaN guard keeps its flag on the device (no host read per step): the fit stops at the next log step,
    names the first non-finite step, and writes no checkpoint or tokenizer from the poisoned weights."""
    from mirai_cli.errors import TrainingDiverged

    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="non-finite at step 2; no checkpoint was written yet"):
        fit_tokenizer(_cfg(npz, out, steps=8, lr=1e20, grad_clip=0.0, log_every=4, checkpoint_every=4),
                      log=lambda m: None)
    assert not (out / "checkpoints" / "last.pt").exists() and not (out / "tokenizer.pt").exists()
    assert not (out / "fit_log.jsonl").exists()  # no log line of the poisoned steps either
