"""Keeping the codebook alive: k-means initialisation from encoder outputs and dead-code restarts.
Both work on L2-normalised vectors, the space where the quantiser compares them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirai_cli.tokenizer.quantizer import VectorQuantizer


def _kmeans_pp(z: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding with cosine distance: each next centre is drawn with probability ~ distance^2."""
    n = z.shape[0]
    picks = [int(torch.randint(n, (1,), generator=generator))]
    dist = (1 - z @ z[picks[0]]).clamp_min(0)
    for _ in range(1, k):
        w = dist ** 2
        i = int(torch.multinomial(w, 1, generator=generator)) if w.sum() > 0 else int(torch.randint(n, (1,), generator=generator))
        picks.append(i)
        dist = torch.minimum(dist, (1 - z @ z[i]).clamp_min(0))
    return torch.tensor(picks)


@torch.no_grad()
def spherical_kmeans(z: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """k unit centroids of the unit vectors z (N, D); clusters that empty out take a random point."""
    z = F.normalize(z.float(), dim=-1)
    n = z.shape[0]
    if n >= k:
        c = z[_kmeans_pp(z, k, generator)].clone()
    else:  # too few points: spread duplicates a little
        c = z[torch.randint(n, (k,), generator=generator)]
        c = F.normalize(c + 0.01 * torch.randn(c.shape, generator=generator), dim=-1)
    for _ in range(iters):
        assign = (z @ c.t()).argmax(dim=1)
        sums = torch.zeros_like(c).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        c = torch.where(empty[:, None], c, F.normalize(sums, dim=-1))
        if empty.any():
            c[empty] = z[torch.randint(n, (int(empty.sum()),), generator=generator)]
    return c


@torch.no_grad()
def init_codebook(quantizer: VectorQuantizer, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
    quantizer.embedding.weight.copy_(spherical_kmeans(z, quantizer.codebook_size, generator=generator))


class DeadCodeRestarter:
    """Counts code use; every `every` steps, codes unused since the last check are moved onto randomly chosen
    encoder outputs of the latest batch (and their optimizer moments are cleared). Only the latest batch is
    kept, so a resumed run restarts exactly as an uninterrupted one. Counts and the latest batch stay on the
    codebook's device: observing a step reads nothing back to the host; only a restart check does."""

    def __init__(self, quantizer: VectorQuantizer, every: int) -> None:
        self.q, self.every = quantizer, every
        self.counts = torch.zeros(quantizer.codebook_size, dtype=torch.long, device=quantizer.embedding.weight.device)
        self.recent: torch.Tensor | None = None

    @torch.no_grad()
    def observe(self, codes: torch.Tensor, z: torch.Tensor) -> None:
        self.counts += torch.bincount(codes.reshape(-1).to(self.counts.device), minlength=self.counts.numel())
        self.recent = z.detach().reshape(-1, z.shape[-1]).float()

    @torch.no_grad()
    def maybe_restart(self, step: int, optimizer: torch.optim.Optimizer | None,
                      generator: torch.Generator | None = None) -> int:
        """-> number of codes restarted at this step."""
        if self.every <= 0 or step % self.every or self.recent is None:
            return 0
        dead = (self.counts == 0).nonzero().flatten().cpu()
        self.counts.zero_()
        if len(dead) == 0:
            return 0
        src = self.recent.cpu()[torch.randint(len(self.recent), (len(dead),), generator=generator)]
        src = F.normalize(src + 0.01 * torch.randn(src.shape, generator=generator), dim=-1)
        w = self.q.embedding.weight
        w[dead.to(w.device)] = src.to(w.device, w.dtype)
        if optimizer is not None:
            st = optimizer.state.get(w, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    st[key][dead.to(w.device)] = 0
        return len(dead)

    def state_dict(self) -> dict:
        return {"counts": self.counts.cpu().clone()}

    def load_state_dict(self, sd: dict) -> None:
        self.counts.copy_(sd["counts"])
