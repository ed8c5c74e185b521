r"""Monte Carlo gradient estimators of :math:`\nabla_{\mu,\log\sigma}\ \mathbb E_{z\sim\mathcal N(\mu,\sigma^2)} f(z)`.

* **pathwise** (reparameterization, eq. 25 of the basics notes): :math:`z=\mu+\sigma\epsilon`,
  gradient :math:`\nabla f(\mu+\sigma\epsilon)`;
* **score function** (REINFORCE, Williams 1992): :math:`f(z)\,\nabla\log q(z)`.

Both return *per-sample* gradients, so that their mean and variance can be compared.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import distributions as D

__all__ = ["per_sample_gradients"]


def per_sample_gradients(f: Callable[[torch.Tensor], torch.Tensor], mu: torch.Tensor, log_sigma: torch.Tensor,
                         n: int, method: str, seed: int = 0) -> torch.Tensor:
    """Per-sample gradient estimates, shape ``(n, 2*d)``: ``[d/dmu, d/dlog_sigma]``.

    Parameters
    ----------
    f : callable
        Maps codes ``(n, d)`` to values ``(n,)``.
    mu, log_sigma : tensor (d,)
    n : number of samples
    method : {"pathwise", "score"}
    """
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, mu.shape[-1], generator=g, dtype=mu.dtype).to(mu.device)
    # one copy of the parameters per sample: the gradient of the sum is then per sample
    m = mu.detach().expand(n, -1).clone().requires_grad_(True)
    s = log_sigma.detach().expand(n, -1).clone().requires_grad_(True)
    if method == "pathwise":
        surrogate = f(m + s.exp() * eps)
    elif method == "score":
        z = (m + s.exp() * eps).detach()
        surrogate = f(z).detach() * D.Normal(m, s.exp()).log_prob(z).sum(-1)
    else:
        raise ValueError(f"method must be 'pathwise' or 'score', got {method!r}")
    gm, gs = torch.autograd.grad(surrogate.sum(), (m, s))
    return torch.cat([gm, gs], dim=-1)
