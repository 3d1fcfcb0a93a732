"""The next-token loss with its own backward equals F.cross_entropy in value and gradient."""

import torch
import torch.nn.functional as F

from mirai_cli.gpt.loss import next_token_loss


def test_value_and_gradient_equal_cross_entropy():
    torch.manual_seed(0)
    logits = (torch.randn(3, 7, 50) * 6).requires_grad_()
    targets = torch.randint(0, 50, (3, 7))
    ours = next_token_loss(logits, targets)
    (g_ours,) = torch.autograd.grad(ours * 1.7, logits)
    ref = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    (g_ref,) = torch.autograd.grad(ref * 1.7, logits)
    assert ours.dtype == torch.float32 and ours.shape == ()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)


def test_bf16_logits_are_taken_in_fp32_and_the_gradient_flows_back_in_bf16():
    torch.manual_seed(1)
    h = torch.randn(10, 16)
    w = (torch.randn(40, 16) * 0.3).requires_grad_()
    targets = torch.randint(0, 40, (10,))
    grads = []
    for loss_fn in (next_token_loss, lambda lo, t: F.cross_entropy(lo.float(), t)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = F.linear(h, w)
        assert logits.dtype == torch.bfloat16
        grads.append(torch.autograd.grad(loss_fn(logits, targets), w)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-2, atol=1e-4)  # bf16 matmul of the same fp32 grads


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[1e4, -1e4, 0.0], [-50.0, -50.0, -50.0]], requires_grad=True)
    targets = torch.tensor([1, 2])
    loss = next_token_loss(logits, targets)
    loss.backward()
    ref = F.cross_entropy(logits.detach(), targets)
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss.detach(), ref)


def test_a_second_backward_is_refused_rather_than_wrong():
    import pytest

    logits = torch.randn(4, 9, requires_grad=True)
    loss = next_token_loss(logits, torch.tensor([1, 2, 3, 4]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="back-propagated once"):
        loss.backward()


def test_it_compiles_into_the_step_graph_without_a_break():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    head = torch.nn.Linear(8, 30)
    targets = torch.randint(0, 30, (2, 5))
    x = torch.randn(2, 5, 8)
    # aot_eager traces forward and backward as inductor would, without a C++ build.
    torch.compile(lambda h: next_token_loss(head(h), targets), backend="aot_eager")(x).backward()
    compiled = head.weight.grad.clone()
    head.weight.grad = None
    F.cross_entropy(head(x).flatten(0, 1), targets.flatten()).backward()
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    torch.testing.assert_close(compiled, head.weight.grad)
    torch._dynamo.reset()
