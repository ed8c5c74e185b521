r"""Mutual information between a part of the code and the data: the variational lower bound of
Agakov & Barber (the InfoGAN bound), an upper bound by the rate, and the infoVAE objective.

For a latent part :math:`c` with prior :math:`p(c)` and any conditional :math:`q(c\mid x)`,

.. math::
    I(c; x) = H(c) - H(c\mid x) \;\ge\; \mathbb E_{c\sim p(c),\,x\sim p(x\mid c)}\big[\log q(c\mid x)\big] + H(c),

with equality iff :math:`q(c\mid x)` is the true posterior (the gap is
:math:`\mathbb E_x\mathrm{KL}(p(c\mid x)\,\|\,q(c\mid x))`). Ducau & Trénous recycle the encoder as
:math:`q`; the thesis chapter passes a separate network :math:`Q` (one implementation, parameterized).

For the encoder's own joint :math:`q(c\mid x)p_\text{data}(x)`, the rate is an upper bound:
:math:`I_q(c;x) = \mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c)) - \mathrm{KL}(q(c)\,\|\,p(c)) \le
\mathbb E_x\mathrm{KL}(q(c\mid x)\,\|\,p(c))`.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from .data import ImageData
from .losses import BaseLoss, elbo_terms, register_loss
from .models import VAE, BernoulliLikelihood, GaussianPart, LatentSpace, MLPEncoder

__all__ = ["generate_and_reencode", "mi_lower_bound", "mi_upper_bound", "InfoVAELoss", "lemma1_sides",
           "make_x_tilde", "MITarget", "AuxiliaryQ", "VariationalMILoss", "posterior_mi_lower_bound",
           "reconstruction_probability"]


def _parts(part: str | list[str]) -> list[str]:
    return [part] if isinstance(part, str) else list(part)


def make_x_tilde(model: VAE, out: torch.Tensor, x_tilde: str = "mean", temperature: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    r"""An image :math:`\tilde x` from the decoder output ``out``: its mean (``"mean"``), a relaxed
    Bernoulli (Concrete) sample at ``temperature`` (``"relaxed"``, differentiable), or an exact sample
    from ``generator`` (``"sample"``, for evaluation)."""
    if x_tilde == "mean":
        return model.likelihood.mean(out)
    if x_tilde == "relaxed":
        if not isinstance(model.likelihood, BernoulliLikelihood):
            raise ValueError("x_tilde='relaxed' needs a Bernoulli decoder")
        t = torch.tensor(temperature, device=out.device, dtype=out.dtype)
        return torch.distributions.RelaxedBernoulli(t, logits=out).rsample()
    if x_tilde == "sample":
        if isinstance(model.likelihood, BernoulliLikelihood):  # draw from the given generator, not the global RNG
            return torch.bernoulli(model.likelihood.mean(out), generator=generator)
        mean = model.likelihood.mean(out)
        return mean + model.likelihood.variance.sqrt() * torch.randn(mean.shape, device=mean.device, generator=generator)
    raise ValueError(f"x_tilde must be 'mean', 'relaxed' or 'sample', got {x_tilde!r}")


def generate_and_reencode(model: VAE, n: int, part: str | list[str], *, x_tilde: str = "mean", temperature: float = 0.5,
                          q: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Steps 4-6 of the infoVAE algorithm: draw the whole code from the prior, decode, make
    :math:`\tilde x`, re-encode, and return :math:`\log q(\tilde c\mid\tilde x)` per sample, shape ``(n,)``.

    Parameters
    ----------
    part : name (or list of names) of the latent part(s) :math:`c` whose information is measured; for a
        list, :math:`\log q` is summed over the parts (the encoder's posterior factorizes over parts).
    x_tilde : {"mean", "relaxed", "sample"}
        How :math:`\tilde x\sim p(x\mid\tilde z,\tilde c)` is made: the decoder mean (deterministic, so
        gradients reach the decoder), a relaxed Bernoulli sample (``temperature``; differentiable), or an
        exact sample (no gradient through :math:`\tilde x`; for evaluation).
    q : callable, optional
        Maps :math:`\tilde x` to the parameters of :math:`q(c\mid\tilde x)` for that part; default the
        encoder itself (recycled, as in Ducau & Trénous).
    """
    device = next(model.parameters()).device
    code = model.latent.sample_prior(n, device=device, generator=generator)
    x = make_x_tilde(model, model.decode(code), x_tilde, temperature, generator)
    codes = model.latent.split_code(code)
    if q is not None:
        if not isinstance(part, str):
            raise ValueError("an auxiliary q serves a single latent part")
        return model.latent[part].log_prob(q(x), codes[part])
    params = model.encode(x)
    return sum(model.latent[p].log_prob(params[p], codes[p]) for p in _parts(part))


def mi_lower_bound(model: VAE, part: str | list[str], n: int = 10_000, *, x_tilde: str = "mean", batch_size: int = 1000,
                   q: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0) -> tuple[float, float]:
    r"""Monte Carlo estimate of :math:`\mathbb E[\log q(c\mid x)] + H(c)` and its standard error (nats)."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    vals = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            vals.append(generate_and_reencode(model, min(batch_size, n - start), part, x_tilde=x_tilde, q=q,
                                              generator=g).double().cpu())
    v = torch.cat(vals)
    h = sum(model.latent[p].prior_entropy() for p in _parts(part))
    return float(v.mean()) + h, float(v.std() / math.sqrt(len(v)))


def mi_upper_bound(model: VAE, data: ImageData | torch.Tensor, part: str | list[str], batch_size: int = 1000) -> float:
    r""":math:`\mathbb E_x\,\mathrm{KL}(q(c\mid x)\,\|\,p(c))`, the rate of the part (nats)."""
    model.eval()
    device = next(model.parameters()).device
    x = (data.x if isinstance(data, ImageData) else data).to(device)
    total = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            params = model.encode(x[start:start + batch_size])
            total += sum(float(model.latent[p].kl(params[p]).sum()) for p in _parts(part))
    return total / x.shape[0]


class MITarget:
    r"""The code :math:`\hat z` whose information about :math:`x` is maximized: a whole latent part (e.g. the
    categorical :math:`c`), or some dimensions of a Gaussian part (the thesis's :math:`\hat z=(z_1,z_2)`).

    Parameters
    ----------
    latent : the model's latent space
    part : name of the part
    dims : indices within a Gaussian part (``None``: the whole part)
    """

    def __init__(self, latent: LatentSpace, part: str, dims: Sequence[int] | None = None):
        p = latent[part]
        self.latent, self.part = latent, part
        if dims is None:
            self.dims, self.dist = None, p
        else:
            dims = [int(d) for d in dims]
            if p.kind != "gaussian":
                raise ValueError(f"dims select Gaussian dimensions; part {part!r} is {p.kind}")
            if not dims or len(set(dims)) != len(dims) or min(dims) < 0 or max(dims) >= p.size:
                raise ValueError(f"dims must be distinct indices in [0, {p.size}), got {dims}")
            self.dims, self.dist = dims, GaussianPart(len(dims), name=f"{part}{dims}")
        self.kind, self.n_params = self.dist.kind, self.dist.n_params

    def select(self, code: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat z` from a full code ``(batch, latent.size)``."""
        c = self.latent.split_code(code)[self.part]
        return c if self.dims is None else c[:, self.dims]

    def select_params(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        r"""The encoder's parameters of :math:`q(\hat z\mid x)`."""
        p = params[self.part]
        if self.dims is None:
            return p
        mu, logvar = self.latent[self.part].split(p)
        return torch.cat([mu[:, self.dims], logvar[:, self.dims]], -1)

    def log_prob(self, q_params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r""":math:`\log Q(\hat z\mid\tilde x)` per sample (for a relaxed one-hot target: the soft cross-entropy)."""
        return self.dist.log_prob(q_params, target)

    def prior_entropy(self) -> float:
        r""":math:`H(\hat z)` under the prior: :math:`\log K`, or :math:`\tfrac d2\log(2\pi e)`."""
        return self.dist.prior_entropy()

    def __repr__(self) -> str:
        return f"MITarget({self.part!r}, dims={self.dims})"


class AuxiliaryQ(nn.Module):
    r"""The thesis's auxiliary network :math:`Q(\hat z\mid x)` (Fig. 4.1): an MLP that reads an image (the
    decoder's output) and returns the parameters of a distribution over :math:`\hat z` of the same family as
    the posterior (Gaussian: mean and log-variance; categorical: logits).

    Parameters
    ----------
    image_shape : (C, H, W)
    target : MITarget
    hidden, activation : the MLP
    """

    def __init__(self, image_shape: Sequence[int], target: MITarget, hidden: Sequence[int] = (500, 500),
                 activation: str = "softplus"):
        super().__init__()
        self.target = target
        self.net = MLPEncoder(image_shape, target.n_params, hidden, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def log_prob(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.target.log_prob(self(x), target)


@register_loss("vmi")
class VariationalMILoss(BaseLoss):
    r"""ELBO plus :math:`\lambda` times a variational lower bound on the information a code carries about
    the data, negated for minimization. One implementation serves both MI chapters:

    * the thesis (eq. 4.11/4.22), ``q=AuxiliaryQ(...)``, ``code_source="posterior"``:

      .. math:: \mathrm{MI}(\theta,\phi,Q)=\mathbb E_{z\sim q_\phi(z\mid x),\,\tilde x\sim p_\theta(x\mid z)}
                \big[\log Q(\hat z\mid\tilde x)\big] + H(\hat z)\quad\text{(eq. 4.9, 4.13, 4.21)},

      where :math:`z` is the ELBO's own reparameterized posterior sample (relaxed for a categorical part) and
      :math:`\tilde x` is made from the same decoder output, so the term costs one pass of :math:`Q`. The
      auxiliary network is stepped first in each minibatch (Algorithm 1) by :meth:`auxiliary_loss`; with
      ``lam=0`` the VAE is trained by the ELBO alone while :math:`Q` still learns, so the bound can be tracked
      for a plain VAE too;
    * Ducau & Trénous's infoVAE (:class:`InfoVAELoss`), ``q=None`` (the encoder is recycled as :math:`q`) and
      ``code_source="prior"`` (the code is drawn from the prior, as in InfoGAN).

    Parameters
    ----------
    q : AuxiliaryQ, optional
        The auxiliary network; its ``target`` says which code :math:`\hat z` the term acts on. ``None``: the
        VAE's own encoder scores :math:`\tilde x`, and ``part``/``dims`` name the code.
    lam : float
        :math:`\lambda\ge0`.
    part, dims : the code :math:`\hat z` (see :class:`MITarget`) when ``q`` is ``None``.
    x_tilde : {"relaxed", "mean"}
        How :math:`\tilde x` is made differentiable (see :func:`make_x_tilde`).
    temperature : float
        Temperature of the relaxed Bernoulli :math:`\tilde x`.
    beta : float
        Weight of the KL term (1 = the ELBO).
    code_source : {"posterior", "prior"}
        Where the code comes from: :math:`q_\phi(z\mid x)` on the minibatch (eq. 4.9) or :math:`p(z)`.
    entropy : {"prior", "marginal"}
        :math:`H(\hat z)` as the prior's entropy (eq. 4.9; a constant), or, for a categorical code drawn from the
        posterior, the entropy of the minibatch estimate of its marginal :math:`q(c)`, which makes the term a bound
        on the information of the code actually sampled (and penalizes a code that never varies).
    """

    def __init__(self, q: AuxiliaryQ | None = None, lam: float = 1.0, part: str = "c", dims: Sequence[int] | None = None,
                 x_tilde: str = "relaxed", temperature: float = 0.5, beta: float = 1.0, code_source: str = "posterior",
                 entropy: str = "prior"):
        if lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if x_tilde not in ("mean", "relaxed"):
            raise ValueError(f"x_tilde must be 'mean' or 'relaxed' for training, got {x_tilde!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if code_source not in ("posterior", "prior"):
            raise ValueError(f"code_source must be 'posterior' (eq. 4.9) or 'prior' (InfoGAN), got {code_source!r}")
        if entropy not in ("prior", "marginal"):
            raise ValueError(f"entropy must be 'prior' (eq. 4.9) or 'marginal', got {entropy!r}")
        if entropy == "marginal" and (code_source != "posterior" or (q is not None and q.target.kind != "categorical")):
            raise ValueError("entropy='marginal' needs a categorical code drawn from the posterior")
        self.q = q
        self.part, self.dims = (q.target.part, q.target.dims) if q is not None else (part, dims)
        self.lam, self.x_tilde, self.temperature, self.beta = lam, x_tilde, temperature, beta
        self.code_source, self.entropy = code_source, entropy
        self._target = q.target if q is not None else None

    def auxiliary(self) -> nn.Module | None:
        return self.q

    def target(self, model: VAE) -> MITarget:
        if self._target is None:
            self._target = MITarget(model.latent, self.part, self.dims)
            if self.entropy == "marginal" and self._target.kind != "categorical":
                raise ValueError("entropy='marginal' needs a categorical code")
        return self._target

    def _code_and_output(self, model: VAE, n: int, out) -> tuple[torch.Tensor, torch.Tensor]:
        """The code :math:`z` the term is evaluated at and the decoder output there."""
        if self.code_source == "posterior":
            return out.z, out.out
        code = model.latent.sample_prior(n, device=out.out.device)
        return code, model.decode(code)

    def _log_q(self, model: VAE, out, n: int) -> torch.Tensor:
        code, dec = self._code_and_output(model, n, out)
        xt = make_x_tilde(model, dec, self.x_tilde, self.temperature)
        target = self.target(model)
        q_params = self.q(xt) if self.q is not None else target.select_params(model.encode(xt))
        return target.log_prob(q_params, target.select(code))

    def _entropy(self, model: VAE, out) -> torch.Tensor | float:
        target = self.target(model)
        if self.entropy == "prior":
            return target.prior_entropy()
        marg = torch.softmax(target.select_params(out.params), -1).mean(0)  # minibatch estimate of q(c)
        return -(marg * marg.clamp_min(1e-12).log()).sum()

    def auxiliary_loss(self, model: VAE, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        r"""Line 4 of Algorithm 1: :math:`-\mathbb E\log Q(\hat z\mid\tilde x)` with the VAE held fixed."""
        if self.q is None:
            raise ValueError("this loss has no auxiliary network")
        with torch.no_grad():
            code, dec = self._code_and_output(model, x.shape[0], model(x))
            xt = make_x_tilde(model, dec, self.x_tilde, self.temperature)
            zt = self.target(model).select(code)
        return -self.q.log_prob(xt, zt).mean()

    def __call__(self, model, x, step=0):
        out = model(x)
        rec, kl, _ = elbo_terms(model, x, out)
        loss = (rec + self.beta * sum(k.sum(-1) for k in kl.values())).mean()
        logs = self._logs(rec, kl, loss)
        for p in model.latent.parts:
            if p.kind == "categorical":
                logs[f"temperature_{p.name}"] = torch.tensor(p.temperature)
        if self.lam == 0 and self.q is None:  # nothing to track: exactly the ELBO, same random draws
            return loss, logs
        if self.lam > 0:
            mi = self._log_q(model, out, x.shape[0]).mean() + self._entropy(model, out)
            loss = loss - self.lam * mi
        else:
            with torch.no_grad():
                mi = self._log_q(model, out, x.shape[0]).mean() + self._entropy(model, out)
        logs["loss"], logs["mi_lb"] = loss.detach(), torch.as_tensor(mi).detach()
        return loss, logs


@register_loss("infovae")
class InfoVAELoss(VariationalMILoss):
    r"""The infoVAE objective of Ducau & Trénous: negative ELBO :math:`-\lambda\,\hat I(c; x)`.

    Per minibatch (their section 2.1.2): steps 1-3 are the ELBO on the data; steps 4-6 draw
    :math:`(\tilde z,\tilde c)` from the prior (as many as the batch), decode, re-encode the generated
    :math:`\tilde x` with the same encoder and add :math:`-\lambda\,(\mathbb E\log q(\tilde c\mid\tilde x) + H(c))`.
    It is :class:`VariationalMILoss` with ``q=None`` and ``code_source="prior"``.

    Parameters
    ----------
    lam : float
        :math:`\lambda \ge 0` (0 gives the plain VAE; the seed never states its value).
    part : str
        Latent part :math:`c` carrying the MI term.
    x_tilde : {"mean", "relaxed"}
        How :math:`\tilde x` is made differentiable (see :func:`make_x_tilde`).
    beta : float
        Weight of the KL term.
    """

    def __init__(self, lam: float = 1.0, part: str = "c", x_tilde: str = "mean", temperature: float = 0.5,
                 beta: float = 1.0):
        super().__init__(q=None, lam=lam, part=part, x_tilde=x_tilde, temperature=temperature, beta=beta,
                         code_source="prior")


@torch.no_grad()
def posterior_mi_lower_bound(model: VAE, q: AuxiliaryQ, data: ImageData | torch.Tensor, *, seed: int = 0,
                             batch_size: int = 1000, repeats: int = 1) -> dict[str, float]:
    r"""Eq. 4.8 for a fixed VAE: :math:`\hat z` drawn exactly from :math:`q_\phi(\hat z\mid x)` on ``data``,
    :math:`\tilde x` an exact (seeded) sample of :math:`p_\theta(x\mid z)`, scored by :math:`Q`.

    Returns (nats)

    * ``mi_lb``: :math:`\mathbb E\log Q(\hat z\mid\tilde x)+H_{p}(\hat z)` with the prior's entropy, as the thesis
      reports it, and its standard error ``se``;
    * ``mean_log_q``, ``h_prior``;
    * for a categorical target also ``h_marginal``, the entropy of the code's actual marginal
      :math:`q(c)=\frac1N\sum_n q(c\mid x_n)`, and ``mi_lb_marginal`` :math:`=\mathbb E\log Q+H(q(c))`, the bound
      that is valid for the joint :math:`q(c)\,p_\theta(\tilde x\mid c,\dots)` actually sampled. The two agree
      only when :math:`q(c)` is uniform.
    """
    model.eval()
    q.eval()
    device = next(model.parameters()).device
    x = (data.x if isinstance(data, ImageData) else data).to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    vals, probs = [], []
    target = q.target
    for _ in range(repeats):
        for start in range(0, x.shape[0], batch_size):
            params = model.encode(x[start:start + batch_size])
            code = model.latent.sample(params, generator=g)
            xt = make_x_tilde(model, model.decode(code), "sample", generator=g)
            vals.append(q.log_prob(xt, target.select(code)).double().cpu())
            if target.kind == "categorical":
                probs.append(torch.softmax(target.select_params(params).double(), -1).cpu())
    v = torch.cat(vals)
    h = target.prior_entropy()
    res = {"mi_lb": float(v.mean()) + h, "se": float(v.std() / math.sqrt(len(v))), "mean_log_q": float(v.mean()),
           "h_prior": h}
    if probs:
        marg = torch.cat(probs).mean(0)
        h_marg = float(-(marg * marg.clamp_min(1e-300).log()).sum())
        res.update(h_marginal=h_marg, mi_lb_marginal=float(v.mean()) + h_marg)
    return res


def lemma1_sides(p_z: np.ndarray, p_x_given_z: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    r"""Both sides of Lemma 1 (InfoGAN), computed exactly on finite spaces:
    :math:`\mathbb E_{z, x\mid z}[f(x,z)]` and :math:`\mathbb E_{z, x\mid z, z'\sim p(z\mid x)}[f(x,z')]`.

    Parameters
    ----------
    p_z : (Z,) prior
    p_x_given_z : (Z, X) conditional, rows sum to one
    f : (X, Z) any function of (x, z)
    """
    p_z, pxz, f = np.asarray(p_z, float), np.asarray(p_x_given_z, float), np.asarray(f, float)
    joint = p_z[:, None] * pxz                     # p(z, x), shape (Z, X)
    lhs = float((joint * f.T).sum())
    p_x = joint.sum(0)                             # (X,)
    post = joint / p_x                             # p(z | x), columns sum to one, shape (Z, X)
    inner = (post * f.T).sum(0)                    # E_{z' ~ p(z'|x)} f(x, z'), shape (X,)
    rhs = float((p_x * inner).sum())
    return lhs, rhs


@torch.no_grad()
def reconstruction_probability(model: VAE, x: torch.Tensor, k: int = 100, seed: int = 0) -> dict[str, float]:
    r"""Section 4 of Ducau & Trénous on a trained model, by importance sampling with :math:`q(z\mid x)`.

    Returns per-image averages (nats) of

    * ``log_px``: :math:`\log p(x)` (the IWAE estimate with ``k`` samples),
    * ``elbo``: :math:`\mathbb E_q\log\frac{p(x,z)}{q(z|x)}`,
    * ``rec_term``: :math:`\mathbb E_q\log p(x\mid z)`,
    * ``log_rec_prob``: :math:`\log\mathbb E_{p(z\mid x)}p(x\mid z)=\log\frac{\mathbb E_q[p(x|z)^2p(z)/q(z|x)]}{p(x)}`,
      the log-probability of reconstructing :math:`x` when :math:`z` is drawn from the true posterior,
    * ``rec_prob_bound``: the seed's lower bound :math:`-\mathrm{KL}(q\,\|\,p(z\mid x))+\mathbb E_q\log p(x\mid z)`
      :math:`=\text{elbo}-\log p(x)+\text{rec\_term}`.

    Gaussian latent parts only. Ratios of estimates are biased for small ``k``; the values are estimates.
    """
    if any(p.kind != "gaussian" for p in model.latent.parts):
        raise ValueError("reconstruction_probability supports Gaussian latent parts only")
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    params = model.encode(x)
    codes, logq, logp = {}, 0.0, 0.0
    for p in model.latent.parts:
        mu, logvar = p.split(params[p.name])
        eps = torch.randn((k, *mu.shape), generator=g, device=device)
        codes[p.name] = mu + (0.5 * logvar).exp() * eps
        logq = logq + (-0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2))).sum(-1)
        logp = logp + (-0.5 * (math.log(2 * math.pi) + codes[p.name].pow(2))).sum(-1)
    z = model.latent.join(codes)
    xr = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    loglik = model.likelihood.log_prob(xr, model.decode(z.flatten(0, 1))).view(k, -1)
    logw = loglik + logp - logq
    log_px = torch.logsumexp(logw, 0) - math.log(k)
    elbo, rec_term = logw.mean(0), loglik.mean(0)
    log_rec_prob = torch.logsumexp(logw + loglik, 0) - math.log(k) - log_px
    out = {"log_px": log_px, "elbo": elbo, "rec_term": rec_term, "log_rec_prob": log_rec_prob,
           "rec_prob_bound": elbo - log_px + rec_term}
    return {key: float(v.mean()) for key, v in out.items()}
