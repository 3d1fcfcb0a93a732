"""The GPT: LlamaGen names/shapes/sizes, LlamaGen's math (checked against a slow float64 re-derivation),
features, dropouts and init."""

import json
import math
from pathlib import Path

import pytest
import torch

from mirai_cli.errors import MiraiError
from mirai_cli.gpt import GPT, GPTConfig

COMPAT = Path(__file__).resolve().parents[1] / "compat" / "llamagen_state_dict_shapes.json"


def tiny_cfg(**kw) -> GPTConfig:
    base = {"vocab_size": 37, "num_classes": 5, "layers": 2, "dim": 32, "heads": 2, "grid": (4, 4)}
    base.update(kw)
    return GPTConfig(**base)


def randomised(model: GPT, seed: int = 0) -> GPT:
    """Give every weight (the zero-initialised output and the norms included) random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.dim() == 1 else 0.0))
    return model


@pytest.mark.parametrize("name", ["GPT-B", "GPT-L", "GPT-XL"])
def test_names_shapes_and_sizes_match_llamagen(name):
    ref = json.loads(COMPAT.read_text())
    with torch.device("meta"):
        model = GPT(GPTConfig.named(name, vocab_size=16384, num_classes=1000))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == ref[name]
    assert sum(p.numel() for p in model.parameters()) == ref["params"][name]


def test_named_sizes_and_ffn_rounding():
    expect = {"GPT-B": (768, 2048), "GPT-L": (1024, 2816), "GPT-XL": (1280, 3584), "GPT-XXL": (1536, 4096)}
    for name, (dim, hidden) in expect.items():
        cfg = GPTConfig.named(name, vocab_size=16384, num_classes=1000)
        assert (cfg.dim, cfg.ffn_hidden, cfg.head_dim) == (dim, hidden, 64)
    with pytest.raises(MiraiError, match="GPT-Q"):
        GPTConfig.named("GPT-Q", vocab_size=8, num_classes=2)
    with pytest.raises(MiraiError, match="multiple of 4"):
        tiny_cfg(dim=24, heads=4)  # head dim 6


LLAMAGEN_ROPE_BASE = 10000.0  # LlamaGen's rope_base: a literal here, never read from our config


def reference_logits(sd: dict, tokens: torch.Tensor, labels: torch.Tensor, *, heads: int, grid: tuple[int, int],
                     base: float = LLAMAGEN_ROPE_BASE, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """LlamaGen's forward, re-derived slowly in float64 from its description and from nothing of ours but the
    weights: class embedding then token embeddings; pre-norm blocks; RoPE on interleaved pairs, the first half
    of the pairs turning with the row, the second half with the column, frequency base^(-2j / (head_dim/2));
    the class position's rotary row is all zeros (cos = sin = 0), so its query and key are zero.
    Returns (logits [B, T, V], the largest attention probability of every query, averaged)."""
    sd = {k: v.double() for k, v in sd.items()}
    dim = sd["tok_embeddings.weight"].shape[1]
    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    w_ = grid[1]
    dh = dim // heads

    def rms(x, weight):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight

    def rotate(vec, pos):  # vec [dh] of one head at sequence position pos
        out = torch.zeros_like(vec)
        if pos == 0:
            return out
        row, col = divmod(pos - 1, w_)
        for j in range(dh // 2):
            quarter = dh // 4
            freq = 1.0 / base ** (2 * (j % quarter) / (dh / 2))
            angle = (row if j < quarter else col) * freq
            c, s = math.cos(angle), math.sin(angle)
            a, b = vec[2 * j], vec[2 * j + 1]
            out[2 * j], out[2 * j + 1] = a * c - b * s, b * c + a * s
        return out

    outs, peaks = [], []
    for bi in range(tokens.shape[0]):
        x = [sd["cls_embedding.embedding_table.weight"][labels[bi]]]
        x += [sd["tok_embeddings.weight"][t] for t in tokens[bi, :-1]]
        x = torch.stack(x)  # [T, D]
        t_len = x.shape[0]
        for li in range(layers):
            p = f"layers.{li}."
            hn = rms(x, sd[p + "attention_norm.weight"])
            qkv = hn @ sd[p + "attention.wqkv.weight"].T
            q, k, v = qkv[:, :dim], qkv[:, dim : 2 * dim], qkv[:, 2 * dim :]
            heads_out = []
            for hd in range(heads):
                sl = slice(hd * dh, (hd + 1) * dh)
                qh = torch.stack([rotate(q[i, sl], i) for i in range(t_len)])
                kh = torch.stack([rotate(k[i, sl], i) for i in range(t_len)])
                scores = qh @ kh.T / math.sqrt(dh)
                scores = scores.masked_fill(torch.triu(torch.ones(t_len, t_len, dtype=torch.bool), 1), -math.inf)
                probs = scores.softmax(-1)
                peaks.append(probs[2:].max(-1).values)  # rows 0, 1 attend to at most 2 slots
                heads_out.append(probs @ v[:, sl])
            x = x + torch.cat(heads_out, dim=1) @ sd[p + "attention.wo.weight"].T
            hn = rms(x, sd[p + "ffn_norm.weight"])
            a = hn @ sd[p + "feed_forward.w1.weight"].T
            gate = a * torch.sigmoid(a)
            x = x + (gate * (hn @ sd[p + "feed_forward.w3.weight"].T)) @ sd[p + "feed_forward.w2.weight"].T
        outs.append(rms(x, sd["norm.weight"]) @ sd["output.weight"].T)
    return torch.stack(outs), torch.cat(peaks).mean()


def test_logits_match_llamagen_math():
    torch.manual_seed(0)
    model = randomised(GPT(tiny_cfg(grid=(3, 4)))).eval()  # non-square grid: rows and columns differ
    tokens = torch.randint(0, 37, (2, 12))
    labels = torch.tensor([1, 5])  # 5 = the null class
    ours = model(tokens, labels).logits
    ref, _ = reference_logits(model.state_dict(), tokens, labels, heads=2, grid=(3, 4))
    assert ours.shape == (2, 12, 37)
    torch.testing.assert_close(ours.double(), ref, atol=2e-4, rtol=2e-4)


def sharp_llamagen_file(path: Path, heads: int, grid: tuple[int, int]) -> dict:
    """A LlamaGen-format checkpoint (state dict only, no config) of a non-named size whose weights are LlamaGen's
    init scaled x8, so that attention is far from uniform and a head count, a RoPE layout or a rope base that is
    wrong moves the logits by far more than the tolerance."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=37, num_classes=5, layers=2, dim=64, heads=heads, grid=grid))
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() == 2:
                w.copy_(torch.randn_like(w) * 0.02 * 8)  # every matrix x8 (the output's zero init too)
    sd = model.state_dict()
    torch.save({"model": sd}, path)
    return sd


@pytest.mark.parametrize("heads", [2, 4])
def test_loaded_llamagen_checkpoint_equals_an_independent_float64_llamagen(tmp_path, heads):
    """Through the loader, as a user gets it: the head count and grid come from the user's stated shape (the
    file records none), everything else from the shapes; compared with a re-derivation that knows only the
    weights, the true head count, the grid and LlamaGen's base. A wrong head count (e.g. dim/64 = 1), a RoPE
    row/column swap or a wrong base each miss by orders of magnitude more than the tolerance."""
    from mirai_cli.gpt.checkpoint import ShapeHints, load_gpt_checkpoint

    grid = (3, 4)
    sd = sharp_llamagen_file(tmp_path / "g.pt", heads, grid)
    model, cfg, _ = load_gpt_checkpoint(tmp_path / "g.pt", hints=ShapeHints(model=(2, 64, heads), grid=grid))
    g = torch.Generator().manual_seed(1)
    tokens, labels = torch.randint(0, 37, (2, 12), generator=g), torch.tensor([1, 5])
    ref, peak = reference_logits(sd, tokens, labels, heads=heads, grid=grid)
    # Uniform attention would give 0.16 here (the mean of 1/(p+1) over rows p = 2..11).
    assert peak > 0.4, f"attention is too close to uniform for this test to mean anything (peak {peak:.2f})"
    assert ref.abs().max() > 1.0
    torch.testing.assert_close(model(tokens, labels).logits.double(), ref, atol=1e-4, rtol=1e-4)


def test_identity_class_rope_differs_only_through_the_class_position():
    torch.manual_seed(0)
    a = randomised(GPT(tiny_cfg())).eval()
    b = GPT(tiny_cfg(class_rope="identity")).eval()
    b.load_state_dict(a.state_dict())
    tokens, labels = torch.randint(0, 37, (1, 16)), torch.tensor([2])
    assert not torch.allclose(a(tokens, labels).logits, b(tokens, labels).logits)
    assert torch.equal(a._rope[1:], b._rope[1:])


def test_features_final_hidden_and_prefix_lengths():
    torch.manual_seed(0)
    model = randomised(GPT(tiny_cfg(layers=3))).eval()
    tokens, labels = torch.randint(0, 37, (2, 16)), torch.tensor([0, 3])
    out = model(tokens, labels, feature_depth=2)
    assert out.feature.shape == (2, 16, 32) and out.final_hidden.shape == (2, 16, 32)
    torch.testing.assert_close(model.forward_features(tokens, labels, 2), out.feature)
    assert model(tokens, labels).feature is None
    deep = model.forward_features(tokens, labels, 3)
    torch.testing.assert_close(model.norm(deep), out.final_hidden)
    # Causality: a prefix gives the same logits as the head of the full sequence.
    torch.testing.assert_close(model(tokens[:, :7], labels).logits, out.logits[:, :7], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        model(tokens, labels, feature_depth=4)
    with pytest.raises(ValueError):
        model(torch.zeros(1, 17, dtype=torch.long), labels[:1])


def test_label_dropout_only_in_training_or_when_asked():
    torch.manual_seed(0)
    cfg = tiny_cfg(class_dropout=1.0, token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0)
    model = randomised(GPT(cfg))
    tokens, labels = torch.randint(0, 37, (3, 16)), torch.tensor([0, 1, 2])
    null = torch.full_like(labels, 5)
    model.train()
    train_logits = model(tokens, labels).logits
    model.eval()
    torch.testing.assert_close(train_logits, model(tokens, null).logits)  # every label dropped
    assert not torch.allclose(model(tokens, labels).logits, train_logits)
    torch.testing.assert_close(model(tokens, labels, class_drop=True).logits, train_logits)
    model.train()
    # The rotary table does not depend on train/eval (LlamaGen's slice-by-self.training bug is not copied).
    torch.testing.assert_close(model(tokens, null, class_drop=False).logits, train_logits)


def test_dropouts_act_in_training_only():
    torch.manual_seed(0)
    model = randomised(GPT(tiny_cfg(class_dropout=0.0)))
    tokens, labels = torch.randint(0, 37, (2, 16)), torch.tensor([0, 1])
    model.train()
    a, b = model(tokens, labels).logits, model(tokens, labels).logits
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(model(tokens, labels).logits, model(tokens, labels).logits, rtol=0, atol=0)


def test_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, num_classes=10, layers=2, dim=128, heads=2, grid=(4, 4)))
    assert model.cls_embedding.embedding_table.weight.shape == (11, 128)
    assert torch.count_nonzero(model.output.weight) == 0
    for w in (model.tok_embeddings.weight, model.layers[0].attention.wqkv.weight, model.layers[1].feed_forward.w2.weight):
        assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    assert torch.equal(model.norm.weight, torch.ones(128))
    out = model.eval()(torch.zeros(1, 16, dtype=torch.long), torch.tensor([0]))
    assert torch.count_nonzero(out.logits) == 0


def test_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    model = randomised(GPT(tiny_cfg())).eval()
    for p in model.parameters():  # smaller weights keep bf16 rounding modest
        p.data.mul_(0.3)
    tokens, labels = torch.randint(0, 37, (2, 16)), torch.tensor([0, 1])
    ref = model(tokens, labels).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tokens, labels)
    assert out.logits.dtype == torch.float32
    assert (out.logits - ref).abs().max() < 0.05 * ref.abs().max()
