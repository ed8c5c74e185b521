r"""Objectives that add a variational bound on mutual information to the ELBO: the thesis's
:class:`VariationalMILoss` (with the auxiliary network :class:`AuxiliaryQ`, Algorithm 1) and Ducau &
Trénous's :class:`InfoVAELoss`, with their building blocks (:class:`MITarget`, :func:`make_x_tilde`,
:func:`generate_and_reencode`).

For a code :math:`c` with prior :math:`p(c)` and any conditional :math:`q(c\mid x)` (Lemma 1 of InfoGAN),

.. math::
    I(c; x) \;\ge\; \mathbb E_{c,\,x\sim p(x\mid c)}\big[\log q(c\mid x)\big] + H(c),

with equality iff :math:`q(c\mid x)` is the true posterior. Ducau & Trénous recycle the encoder as
:math:`q`; the thesis passes a separate network :math:`Q` (one implementation, parameterized). The same bound
evaluated on a trained model lives in :mod:`vaemi.measures.mi`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from vaemi.losses.base import BaseLoss, register_loss
from vaemi.losses.elbo import ELBOLoss
from vaemi.maths.distributions import categorical_marginal_entropy
from vaemi.models import VAE, BernoulliLikelihood, GaussianPart, LatentSpace, MLPEncoder, model_device, part_names

__all__ = ["make_x_tilde", "generate_and_reencode", "MITarget", "AuxiliaryQ", "VariationalMILoss", "InfoVAELoss"]


def make_x_tilde(model: VAE, out: torch.Tensor, x_tilde: str = "mean", temperature: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    r"""An image :math:`\tilde x` from the decoder output ``out``.

    Parameters
    ----------
    model : VAE
        Its likelihood turns ``out`` into images.
    out : tensor
        Decoder output (logits or means).
    x_tilde : {"mean", "relaxed", "straight_through", "sample"}
        The decoder mean; a relaxed Bernoulli (Concrete) sample at ``temperature`` (differentiable, Bernoulli
        decoders only); an exact Bernoulli sample whose gradient is that of the mean (straight-through,
        Bengio et al. 2013; Bernoulli decoders only); or an exact sample drawn from ``generator`` (for
        evaluation, no gradient).
    temperature : float
        Temperature of the relaxed sample.
    generator : torch.Generator, optional
        Source of the exact sample.

    Returns
    -------
    tensor
        Images of the shape of ``out``.
    """
    if x_tilde == "mean":
        return model.likelihood.mean(out)
    if x_tilde == "relaxed":
        if not isinstance(model.likelihood, BernoulliLikelihood):
            raise ValueError("x_tilde='relaxed' needs a Bernoulli decoder")
        t = torch.tensor(temperature, device=out.device, dtype=out.dtype)
        return torch.distributions.RelaxedBernoulli(t, logits=out).rsample()
    if x_tilde == "straight_through":
        if not isinstance(model.likelihood, BernoulliLikelihood):
            raise ValueError("x_tilde='straight_through' needs a Bernoulli decoder")
        mean = model.likelihood.mean(out)
        return torch.bernoulli(mean.detach(), generator=generator) + (mean - mean.detach())  # values exactly 0/1
    if x_tilde == "sample":
        if isinstance(model.likelihood, BernoulliLikelihood):  # draw from the given generator, not the global RNG
            return torch.bernoulli(model.likelihood.mean(out), generator=generator)
        mean = model.likelihood.mean(out)
        return mean + model.likelihood.variance.sqrt() * torch.randn(mean.shape, device=mean.device, generator=generator)
    raise ValueError(f"x_tilde must be 'mean', 'relaxed', 'straight_through' or 'sample', got {x_tilde!r}")


def generate_and_reencode(model: VAE, n: int, part: str | list[str], *, x_tilde: str = "mean", temperature: float = 0.5,
                          q: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Steps 4-6 of the infoVAE algorithm: draw the whole code from the prior, decode, make
    :math:`\tilde x`, re-encode, and return :math:`\log q(\tilde c\mid\tilde x)` per sample.

    Parameters
    ----------
    model : VAE
    n : int
        Number of prior draws.
    part : str or list of str
        The latent part(s) :math:`c` whose information is measured; for a list, :math:`\log q` is summed over
        the parts (the encoder's posterior factorizes over parts).
    x_tilde : {"mean", "relaxed", "straight_through", "sample"}
        How :math:`\tilde x\sim p(x\mid\tilde z,\tilde c)` is made: the decoder mean (deterministic, so
        gradients reach the decoder), a relaxed Bernoulli sample (``temperature``; differentiable), or an
        exact sample (no gradient through :math:`\tilde x`; for evaluation).
    temperature : float
        Temperature of the relaxed sample.
    q : callable, optional
        Maps :math:`\tilde x` to the parameters of :math:`q(c\mid\tilde x)` for that part; default the
        encoder itself (recycled, as in Ducau & Trénous).
    generator : torch.Generator, optional
        Source of the prior draws and of exact samples (on the model's device); default the global RNG.

    Returns
    -------
    tensor (n,)
        :math:`\log q(\tilde c\mid\tilde x)`, differentiable unless ``x_tilde="sample"``.
    """
    code = model.latent.sample_prior(n, device=model_device(model), generator=generator)
    x = make_x_tilde(model, model.decode(code), x_tilde, temperature, generator)
    codes = model.latent.split_code(code)
    if q is not None:
        if not isinstance(part, str):
            raise ValueError("an auxiliary q serves a single latent part")
        return model.latent[part].log_prob(q(x), codes[part])
    params = model.encode(x)
    return sum(model.latent[p].log_prob(params[p], codes[p]) for p in part_names(part))


class MITarget:
    r"""The code :math:`\hat z` whose information about :math:`x` is maximized: a whole latent part (e.g. the
    categorical :math:`c`), or some dimensions of a Gaussian part (the thesis's :math:`\hat z=(z_1,z_2)`).

    Parameters
    ----------
    latent : LatentSpace
        The model's latent space.
    part : str
        Name of the part.
    dims : sequence of int, optional
        Indices within a Gaussian part (``None``: the whole part).

    Raises
    ------
    ValueError
        For ``dims`` of a categorical part, or repeated or out-of-range indices.
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
        r""":math:`\hat z` from a full code ``(batch, latent.size)``; returns ``(batch, size of the target)``."""
        c = self.latent.split_code(code)[self.part]
        return c if self.dims is None else c[:, self.dims]

    def select_params(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        r"""The encoder's parameters of :math:`q(\hat z\mid x)` from its per-part ``params`` (a tensor)."""
        p = params[self.part]
        if self.dims is None:
            return p
        mu, logvar = self.latent[self.part].split(p)
        return torch.cat([mu[:, self.dims], logvar[:, self.dims]], -1)

    def log_prob(self, q_params: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r""":math:`\log Q(\hat z\mid\tilde x)` per sample, shape ``(batch,)``, from the parameters ``q_params`` of
        :math:`Q` and the ``target`` code (for a relaxed one-hot target: the soft cross-entropy)."""
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
        The code :math:`\hat z` that :math:`Q` predicts.
    hidden : sequence of int
        Sizes of the MLP's hidden layers.
    activation : str
        Its nonlinearity.
    """

    def __init__(self, image_shape: Sequence[int], target: MITarget, hidden: Sequence[int] = (500, 500),
                 activation: str = "softplus"):
        super().__init__()
        self.target = target
        self.net = MLPEncoder(image_shape, target.n_params, hidden, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r"""Parameters of :math:`Q(\hat z\mid x)` for images ``x``, shape ``(batch, target.n_params)``."""
        return self.net(x)

    def log_prob(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r""":math:`\log Q(\hat z\mid x)` of codes ``target`` given images ``x``, shape ``(batch,)``."""
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
    part : str
        The latent part of the code :math:`\hat z` when ``q`` is ``None`` (see :class:`MITarget`).
    dims : sequence of int, optional
        Dimensions of a Gaussian ``part`` (``None``: the whole part) when ``q`` is ``None``.
    x_tilde : {"relaxed", "mean", "straight_through"}
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
        self._elbo = ELBOLoss(beta=beta)  # the ELBO part (checks beta)
        if x_tilde not in ("mean", "relaxed", "straight_through"):
            raise ValueError(f"x_tilde must be 'mean', 'relaxed' or 'straight_through' for training, got {x_tilde!r}")
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
        """The auxiliary network :math:`Q` (``None`` when the encoder is recycled)."""
        return self.q

    def target(self, model: VAE) -> MITarget:
        r"""The code :math:`\hat z` the term acts on (built from ``part``/``dims`` on first use without ``q``)."""
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
        # H of the minibatch estimate of q(c)
        return categorical_marginal_entropy(torch.softmax(target.select_params(out.params), -1))

    def auxiliary_loss(self, model: VAE, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        r"""Line 4 of Algorithm 1: :math:`-\mathbb E\log Q(\hat z\mid\tilde x)` with the VAE held fixed
        (parameters and return value as in :meth:`BaseLoss.auxiliary_loss`).

        Raises
        ------
        ValueError
            If the loss has no auxiliary network.
        """
        if self.q is None:
            raise ValueError("this loss has no auxiliary network")
        with torch.no_grad():
            code, dec = self._code_and_output(model, x.shape[0], model(x))
            xt = make_x_tilde(model, dec, self.x_tilde, self.temperature)
            zt = self.target(model).select(code)
        return -self.q.log_prob(xt, zt).mean()

    def __call__(self, model, x, step=0):
        r"""Negative ELBO minus :math:`\lambda` times the MI bound on one minibatch; the logs add ``mi_lb``
        (when the bound is computed) and the temperature of every categorical part. See
        :meth:`BaseLoss.__call__`."""
        loss, logs, out = self._elbo.loss_and_output(model, x, step)
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
    x_tilde : {"mean", "relaxed", "straight_through"}
        How :math:`\tilde x` is made differentiable (see :func:`make_x_tilde`).
    temperature : float
        Temperature of the relaxed Bernoulli :math:`\tilde x` (``x_tilde="relaxed"``).
    beta : float
        Weight of the KL term.
    """

    def __init__(self, lam: float = 1.0, part: str = "c", x_tilde: str = "mean", temperature: float = 0.5,
                 beta: float = 1.0):
        super().__init__(q=None, lam=lam, part=part, x_tilde=x_tilde, temperature=temperature, beta=beta,
                         code_source="prior")


