"""EMA of a model's parameters: the update rule, fp32 shadow, exact resume, copy into a plain GPT."""

import torch

from mirai_cli.engine.ema import EMA, unwrap_model
from mirai_cli.gpt import GPT, GPTConfig


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=37, num_classes=5, layers=2, dim=32, heads=2, grid=(4, 4)))


def perturb(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_starts_as_a_copy_then_follows_the_update_rule():
    model = tiny_gpt()
    ema = EMA(model, decay=0.9)
    for (n, s), (_, p) in zip(ema.module.named_parameters(), model.named_parameters()):
        assert torch.equal(s, p) and not s.requires_grad, n
    old = {n: p.detach().clone() for n, p in ema.module.named_parameters()}
    perturb(model, 1)
    ema.update(model)
    for n, p in model.named_parameters():
        want = 0.9 * old[n] + 0.1 * p.detach()
        assert torch.allclose(dict(ema.module.named_parameters())[n], want, atol=1e-7), n
    assert ema.num_updates == 1 and not ema.module.training


def test_shadow_is_fp32_for_a_bf16_model_and_copy_to_casts():
    model = tiny_gpt().to(torch.bfloat16)
    ema = EMA(model, decay=0.99)
    assert all(p.dtype == torch.float32 for p in ema.module.parameters())
    perturb(model, 2)
    ema.update(model)
    assert all(p.dtype == torch.float32 for p in ema.module.parameters())
    target = tiny_gpt(seed=5).to(torch.bfloat16)
    ema.copy_to(target)
    for (n, s), (_, t) in zip(ema.module.named_parameters(), target.named_parameters()):
        assert torch.equal(s.to(torch.bfloat16), t), n


def test_state_dict_resume_is_exact_and_loads_into_a_plain_gpt():
    model = tiny_gpt()
    a = EMA(model, decay=0.95)
    for step in range(3):
        perturb(model, 10 + step)
        a.update(model)
    saved = a.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in saved.values())
    b = EMA(tiny_gpt(seed=9), decay=0.95)  # a fresh process: different starting weights
    b.load_state_dict(saved)
    for step in range(3, 6):
        perturb(model, 10 + step)
        a.update(model)
        b.update(model)
    for (n, x), (_, y) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert torch.equal(x, y), n
    plain = tiny_gpt(seed=3)
    plain.load_state_dict(a.state_dict(), strict=True)
    plain.eval()
    tokens, labels = torch.randint(0, 37, (2, 16)), torch.tensor([1, 4])
    with torch.no_grad():
        assert torch.equal(plain(tokens, labels).logits, a.module(tokens, labels).logits)


def test_unwraps_compiled_models_and_rejects_another_architecture():
    model = tiny_gpt()
    compiled = torch.compile(model)  # nothing is compiled until the first call
    assert unwrap_model(compiled) is model
    ema = EMA(compiled, decay=0.5)
    perturb(model, 4)
    ema.update(compiled)
    other = GPT(GPTConfig(vocab_size=37, num_classes=5, layers=3, dim=32, heads=2, grid=(4, 4)))
    try:
        ema.update(other)
    except ValueError:
        pass
    else:
        raise AssertionError("an EMA of a 2-layer GPT accepted a 3-layer one")
