"""Generation: KV-cached logits equal a full forward at every step, CFG, seeds, filtering, schedules."""

import pytest
import torch

from mirai_cli.gpt import GPT, GPTConfig
from mirai_cli.gpt.generate import SampleOptions, _generate, generate
from mirai_cli.gpt.logits import combine_cfg, filter_logits, guidance_scales


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=40, num_classes=6, layers=2, dim=32, heads=2, grid=(3, 4)))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    return m.eval()


def gen(seed):
    return torch.Generator().manual_seed(seed)


LABELS = torch.tensor([0, 5, 2])


def test_cached_logits_equal_full_forward_every_step(model):
    tokens, seen = generate(model, LABELS, SampleOptions(cfg_scale=1.0, temperature=1.3), generator=gen(0), return_logits=True)
    assert tokens.shape == (3, 12) and seen.shape == (3, 12, 40)
    full = model(tokens, LABELS).logits  # position i predicts cell i, having seen cells < i
    torch.testing.assert_close(seen, full, atol=1e-4, rtol=1e-4)
    assert model.layers[0].attention.kv_cache is None  # freed after the call


def test_cfg_logits_combine_cond_and_null(model):
    opts = SampleOptions(cfg_scale=2.5, top_k=10)
    tokens, seen = generate(model, LABELS, opts, generator=gen(1), return_logits=True)
    cond = model(tokens, LABELS).logits
    uncond = model(tokens, torch.full_like(LABELS, 6)).logits
    torch.testing.assert_close(seen, uncond + 2.5 * (cond - uncond), atol=2e-4, rtol=2e-4)


def test_uncached_path_matches_cached(model):
    opts = SampleOptions(cfg_scale=1.7, cfg_schedule="linear", temperature=0.9, top_p=0.9)
    a, la = generate(model, LABELS, opts, generator=gen(3), return_logits=True)
    b, lb = generate(model, LABELS, SampleOptions(**{**opts.__dict__, "use_cache": False}), generator=gen(3),
                     return_logits=True)
    assert torch.equal(a, b)
    torch.testing.assert_close(la, lb, atol=1e-4, rtol=1e-4)


def test_seeds_reproduce(model):
    opts = SampleOptions(cfg_scale=2.0)
    a = generate(model, LABELS, opts, generator=gen(7))
    b = generate(model, LABELS, opts, generator=gen(7))
    c = generate(model, LABELS, opts, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cfg_scale_one_is_the_conditional_model(model):
    scales = [1.0] * 12
    opts = SampleOptions()
    with_null, l1 = _generate(model, LABELS, scales, True, opts, gen(4), True, False)  # null half computed
    plain, l2 = _generate(model, LABELS, scales, False, opts, gen(4), True, False)
    torch.testing.assert_close(l1, l2, atol=1e-4, rtol=1e-4)
    assert torch.equal(with_null, plain)


def test_top_k_one_is_greedy(model):
    tokens = generate(model, LABELS, SampleOptions(cfg_scale=1.0, top_k=1, temperature=5.0), generator=gen(5))
    greedy = torch.zeros_like(tokens)
    for i in range(12):  # greedy decoding with full forward passes
        greedy[:, i] = model(greedy[:, : i + 1], LABELS).logits[:, i].argmax(-1)
    assert torch.equal(tokens, greedy)


def test_training_mode_is_restored_and_bad_labels_refused(model):
    model.train()
    generate(model, LABELS[:1], generator=gen(0))
    assert model.training
    model.eval()
    with pytest.raises(ValueError, match="0..5"):
        generate(model, torch.tensor([6]))


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    keep = lambda x: torch.isfinite(x)[0].tolist()
    assert keep(filter_logits(logits, top_k=2)) == [False, True, False, True]
    assert keep(filter_logits(logits, top_p=0.7)) == [False, True, False, True]  # 0.5 < 0.7: keep the 0.3 too
    assert keep(filter_logits(logits, top_p=0.85)) == [False, True, True, True]
    assert keep(filter_logits(logits, top_p=0.4)) == [False, True, False, False]  # the top token always stays
    assert keep(filter_logits(logits, top_k=3, top_p=0.7)) == [False, True, False, True]
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2.0)
    # Temperature first: a hot temperature flattens the distribution, so top-p keeps more.
    assert keep(filter_logits(logits, temperature=10.0, top_p=0.7)) == [False, True, True, True]


def test_guidance_schedules_and_combine():
    assert guidance_scales(2.0, "constant", 4) == [2.0] * 4
    assert guidance_scales(3.0, "linear", 5) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert guidance_scales(2.0, "interval", 8, 0.5) == [2.0] * 4 + [1.0] * 4
    assert guidance_scales(2.0, "interval", 8, 0.0) == [1.0] * 8
    with pytest.raises(ValueError):
        guidance_scales(2.0, "cosine", 4)
    both = torch.tensor([[1.0, 2.0], [0.0, 4.0]])  # cond row, then null row
    torch.testing.assert_close(combine_cfg(both, 3.0), torch.tensor([[3.0, -2.0]]))


def test_interval_schedule_stops_guidance(model):
    opts = SampleOptions(cfg_scale=3.0, cfg_schedule="interval", cfg_interval=0.5)
    tokens, seen = generate(model, LABELS, opts, generator=gen(2), return_logits=True)
    cond = model(tokens, LABELS).logits
    uncond = model(tokens, torch.full_like(LABELS, 6)).logits
    torch.testing.assert_close(seen[:, :6], (uncond + 3.0 * (cond - uncond))[:, :6], atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(seen[:, 6:], cond[:, 6:], atol=1e-4, rtol=1e-4)


def test_kept_cache_is_reused_and_still_exact(model):
    opts = SampleOptions(cfg_scale=1.5)
    generate(model, LABELS, opts, generator=gen(0), keep_cache=True)
    cache = model.layers[0].attention.kv_cache
    tokens, seen = generate(model, LABELS, opts, generator=gen(9), return_logits=True, keep_cache=True)
    assert model.layers[0].attention.kv_cache is cache  # same buffers, no reallocation
    cond = model(tokens, LABELS).logits
    uncond = model(tokens, torch.full_like(LABELS, 6)).logits
    torch.testing.assert_close(seen, uncond + 1.5 * (cond - uncond), atol=2e-4, rtol=2e-4)
    model.free_cache()
    assert "kv_cache" not in "".join(model.state_dict())


def test_compiled_decode_step_captures_one_graph_and_matches(model, monkeypatch):
    import mirai_cli.gpt.model as G

    # aot_eager traces exactly what inductor would (fullgraph=True: a graph break is an error) without a
    # minute-long C++ build; `mirai sample --compile` uses inductor.
    monkeypatch.setattr(G, "COMPILE_BACKEND", "aot_eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    opts = SampleOptions(cfg_scale=2.0, top_k=10)
    ref, lref = generate(model, LABELS, opts, generator=gen(6), return_logits=True)
    for _ in range(2):  # the second call reuses the compiled step
        out, lout = generate(model, LABELS, SampleOptions(**{**opts.__dict__, "compile": True}), generator=gen(6),
                             return_logits=True)
        assert torch.equal(out, ref)
        torch.testing.assert_close(lout, lref, atol=1e-5, rtol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # no recompilation for the new cache
    del model._compiled_decode_step
    torch._dynamo.reset()


def test_attending_only_filled_slots_gives_the_full_cache_tokens(model, monkeypatch):
    """Eager decoding reads only the written cache slots; the static full-cache path (masked, as LlamaGen and
    the compiled step do) must give the very same tokens in fp32, and logits equal to rounding."""
    opts = SampleOptions(cfg_scale=2.0, temperature=1.1, top_k=30)
    a, la = generate(model, LABELS, opts, generator=gen(11), return_logits=True)
    full = model.decode_step
    calls = []

    def whole_cache(tokens, pos, filled=None):
        calls.append(filled)
        return full(tokens, pos)  # filled=None: attend the whole cache under the mask

    monkeypatch.setattr(model, "decode_step", whole_cache)
    b, lb = generate(model, LABELS, opts, generator=gen(11), return_logits=True)
    assert calls == list(range(2, 13))  # step i fills slots 0..i
    assert torch.equal(a, b)
    torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-5)


def test_bf16_weights_sample_close_to_fp32(model):
    bf16 = GPT(model.cfg).eval()
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    tokens, seen = generate(bf16, LABELS, SampleOptions(cfg_scale=1.0), generator=gen(2), return_logits=True)
    ref = model(tokens, LABELS).logits
    assert seen.dtype == torch.float32 and (seen - ref).abs().max() < 0.1 * ref.abs().max()


def test_stacked_ffn_weights_follow_in_place_updates():
    """Decoding stacks w1 and w3 once; a kept cache must never decode with stale weights after an update."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=40, num_classes=6, layers=2, dim=32, heads=2, grid=(3, 4))).eval()
    with torch.no_grad():
        m.output.weight.normal_(0, 0.5)
    generate(m, LABELS, SampleOptions(cfg_scale=1.0), generator=gen(0), keep_cache=True)
    with torch.no_grad():
        m.layers[1].feed_forward.w3.weight.mul_(3.0)  # as an optimizer step would
    tokens, seen = generate(m, LABELS, SampleOptions(cfg_scale=1.0), generator=gen(0), return_logits=True)
    torch.testing.assert_close(seen, m(tokens, LABELS).logits, atol=1e-4, rtol=1e-4)
    assert m.layers[1].feed_forward._w13 is None  # freed with the cache
