"""Projector heads: initialised as the paper's code (weights N(0, 0.02), biases zero); the fused layout
computes exactly the K per-head MLPs, and per-head checkpoints load into it."""

import pytest
import torch
from torch import nn

from mirai_cli.foresight.layouts import aligned_pairs
from mirai_cli.foresight.loss import negative_cosine
from mirai_cli.foresight.objective import ForesightObjective
from mirai_cli.foresight.projector import INIT_STD, FusedProjectors, Projector


def test_projector_init_as_papers_code():
    torch.manual_seed(0)
    for module, count in ((FusedProjectors(2, 96, 80, hidden_dim=256), 5), (Projector(96, 80, 256), 3)):
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        assert len(linears) == count
        for layer in linears:
            assert torch.count_nonzero(layer.bias) == 0
            w = layer.weight.detach()
            assert w.mean().item() == pytest.approx(0.0, abs=3e-3)
            # PyTorch's default (kaiming-uniform, std 1/sqrt(3 fan_in)) would give 0.059 at fan_in 96
            assert w.std().item() == pytest.approx(INIT_STD, rel=0.05)


def per_head_state(heads, key="projectors.{k}.net.{j}.{leaf}"):
    return {key.format(k=k, j=j, leaf=leaf): getattr(h.net[j], leaf).detach().clone()
            for k, h in enumerate(heads) for j in (0, 2, 4) for leaf in ("weight", "bias")}


@pytest.mark.parametrize("key", ["projectors.{k}.net.{j}.{leaf}", "projectors.{k}.{j}.{leaf}"])
def test_per_head_checkpoints_load_and_give_the_per_head_losses(key):
    torch.manual_seed(1)
    grid, d, dt, hidden = (4, 4), 24, 12, 32
    pairs = aligned_pairs(grid, "2d", 3, teacher_space="sequence")  # with the class pair
    heads = [Projector(d, dt, hidden) for _ in pairs]
    for h in heads:  # non-zero biases so that a bias mix-up shows
        for layer in h.net:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.bias, std=0.1)
    objective = ForesightObjective(pairs, d, dt, hidden)
    objective.load_state_dict(per_head_state(heads, key), strict=True)
    student, teacher = torch.randn(2, 16, d), torch.randn(2, 16, dt)
    losses = objective(student, teacher, [1.0, 1.0, 1.0])
    for k, (h, p) in enumerate(zip(heads, pairs)):  # the unfused reference, head by head
        want = negative_cosine(h(student.index_select(1, p.student_index)), teacher.index_select(1, p.teacher_index))
        assert torch.allclose(losses[f"foresight_h{k}"], want, atol=1e-6)
        assert torch.allclose(objective.projectors.head(k, student), h(student), atol=1e-6)
    assert set(objective.state_dict()) == {"projectors.first.weight", "projectors.first.bias"} | {
        f"projectors.rest.{k}.{j}.{leaf}" for k in range(3) for j in (0, 2) for leaf in ("weight", "bias")}


def test_only_used_positions_are_projected():
    pairs = aligned_pairs((4, 4), "2d", offsets=[[2, 2]], teacher_space="cells")  # cells 0, 1, 4, 5 only
    objective = ForesightObjective(pairs, 8, 4, 16)
    assert objective.student_used.tolist() == [1, 2, 5, 6]
    seen = []
    objective.projectors.rest[0][0].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    objective(torch.randn(3, 16, 8), torch.randn(3, 16, 4), [1.0])
    assert seen == [(3, 4, 16)]


def test_each_head_computes_only_its_own_hidden_units():
    """The matmuls of a step are exactly K per-head MLPs on their own pairs: no head's first layer runs on
    another head's positions (the fused layer on every used position cost 48 row-heads here, not 40)."""
    from torch.utils.flop_counter import FlopCounterMode

    b, d, dt, hidden = 2, 8, 4, 16
    pairs = aligned_pairs((4, 4), "2d", 3, teacher_space="sequence")  # 16, 12 and 12 pairs
    objective = ForesightObjective(pairs, d, dt, hidden)
    student = torch.randn(b, 16, d, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        losses = objective(student, torch.randn(b, 16, dt), [1.0, 1.0, 1.0])
    per_row = 2 * (d * hidden + hidden * hidden + hidden * dt)
    assert forward.get_total_flops() == b * sum(len(p) for p in pairs) * per_row
    with FlopCounterMode(display=False) as backward:
        losses["foresight"].backward()
    assert backward.get_total_flops() <= 2 * forward.get_total_flops()


def test_fused_heads_match_per_head_mlps_in_value_and_gradient():
    torch.manual_seed(2)
    grid, d, dt, hidden = (4, 4), 24, 12, 32
    pairs = aligned_pairs(grid, "2d", 3, teacher_space="sequence")
    heads = [Projector(d, dt, hidden) for _ in pairs]
    for h in heads:
        for layer in h.net:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.bias, std=0.1)
    objective = ForesightObjective(pairs, d, dt, hidden)
    objective.load_state_dict(per_head_state(heads), strict=True)
    student, teacher = torch.randn(2, 16, d), torch.randn(2, 16, dt)
    fused_in = student.clone().requires_grad_(True)
    fused = objective(fused_in, teacher, [2.0, 1.0, 0.5])
    fused["foresight"].backward()
    ref_in = student.clone().requires_grad_(True)
    ref = sum(lam * negative_cosine(h(ref_in.index_select(1, p.student_index)), teacher.index_select(1, p.teacher_index))
              for lam, h, p in zip([2.0, 1.0, 0.5], heads, pairs))
    ref.backward()
    assert torch.allclose(fused["foresight"], ref, atol=1e-6)
    assert torch.allclose(fused_in.grad, ref_in.grad, atol=1e-6)
    first = objective.projectors.first.weight.grad
    assert torch.allclose(first, torch.cat([h.net[0].weight.grad for h in heads]), atol=1e-6)
    for k, h in enumerate(heads):
        assert torch.allclose(objective.projectors.rest[k][0].weight.grad, h.net[2].weight.grad, atol=1e-6)
