"""Exponential moving average of a model's parameters (LlamaGen's `update_ema`), kept as a plain model.

`EMA.module` is a deep copy of the (unwrapped) model with fp32 parameters, in eval mode and without
gradients: it is both the sampling weights and the Mirai-E teacher. Its state dict has the model's own
parameter names, so it saves as `ema.safetensors` and loads into a plain GPT.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


class EMA:
    """shadow <- decay * shadow + (1 - decay) * param after every optimizer step.

    The shadow starts as an exact copy of the model (LlamaGen starts its EMA the same way). Parameters and
    floating buffers are tracked by name; buffers (none that matter in the GPT) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        # float() makes the shadow fp32 even when the model trains in bf16; complex/int buffers are kept.
        self.module = copy.deepcopy(unwrap_model(model)).float().eval().requires_grad_(False)
        self._names = [name for name, _ in self.module.named_parameters()]

    def _pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        source = dict(unwrap_model(model).named_parameters())
        missing = [n for n in self._names if n not in source]
        if missing or len(source) != len(self._names):
            raise ValueError(f"EMA and model parameters differ (missing in model: {missing[:3]})")
        shadow = dict(self.module.named_parameters())
        return [shadow[n] for n in self._names], [source[n] for n in self._names]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the shadow towards the model's current parameters (call after optimizer.step())."""
        shadow, params = self._pairs(model)
        params = [p.detach().to(dtype=s.dtype, device=s.device) for s, p in zip(shadow, params)]
        # lerp: s + (1 - decay) * (p - s) == decay * s + (1 - decay) * p, one fused pass.
        torch._foreach_lerp_(shadow, params, 1.0 - self.decay)
        src_buffers = dict(unwrap_model(model).named_buffers())
        for name, buf in self.module.named_buffers():
            if name in src_buffers and buf.is_floating_point():
                buf.copy_(src_buffers[name].detach())
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the EMA weights into `model` (e.g. a plain GPT for sampling), casting to its dtype."""
        shadow, params = self._pairs(model)
        for s, p in zip(shadow, params):
            p.copy_(s)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """fp32 shadow tensors under the model's own names (what `ema.safetensors` holds)."""
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Exact resume: strict load, kept in fp32."""
        self.module.load_state_dict(state_dict, strict=True)
        self.module.float()

    def to(self, device: torch.device | str) -> EMA:
        self.module.to(device)
        return self
