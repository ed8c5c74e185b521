import math

import pytest
import torch
from torch import distributions as D

from vaemi.models import (BernoulliLikelihood, CategoricalPart, GaussianLikelihood, GaussianPart, LatentSpace,
                          build_vae, model_device, part_names)


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 28, 28)), ("conv", (1, 28, 28)), ("conv", (3, 32, 32))])
@pytest.mark.parametrize("lik", ["bernoulli", "gaussian"])
def test_vae_shapes(arch, shape, lik):
    torch.manual_seed(0)
    m = build_vae(shape, 6, arch=arch, hidden=(32,), likelihood=lik)
    x = torch.rand(5, *shape)
    out = m(x)
    assert out.z.shape == (5, 6)
    assert out.out.shape == (5, *shape)
    assert set(out.params) == {"z"} and out.params["z"].shape == (5, 12)
    assert m.generate(3).shape == (3, *shape)
    rec = m.reconstruct(x)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1


def test_mixed_latent_space_gaussian_and_categorical():
    latent = LatentSpace([GaussianPart(4, "z"), CategoricalPart(10, 0.5, "c")])
    assert latent.n_params == 18 and latent.size == 14
    m = build_vae((1, 28, 28), latent, hidden=(32,))
    out = m(torch.rand(8, 1, 28, 28))
    codes = latent.split_code(out.z)
    assert codes["z"].shape == (8, 4) and codes["c"].shape == (8, 10)
    assert torch.allclose(codes["c"].sum(-1), torch.ones(8), atol=1e-5)  # relaxed one-hot on the simplex
    kl = latent.kl(out.params)
    assert kl["z"].shape == (8, 4) and kl["c"].shape == (8, 1)
    prior = latent.sample_prior(5)
    assert prior.shape == (5, 14) and (latent.split_code(prior)["c"].sum(-1) == 1).all()


def test_categorical_part_matches_torch():
    part = CategoricalPart(5)
    logits = torch.randn(3, 5)
    ref = D.kl_divergence(D.Categorical(logits=logits), D.Categorical(logits=torch.zeros(5)))
    assert torch.allclose(part.kl(logits).squeeze(-1), ref, atol=1e-6)
    hard = part.rsample(logits, hard=True)
    assert ((hard == 0) | (hard == 1)).all() and (hard.sum(-1) == 1).all()
    assert torch.allclose(part.log_prob(logits, hard), D.OneHotCategorical(logits=logits).log_prob(hard), atol=1e-6)
    assert part.prior_entropy() == pytest.approx(math.log(5))


def test_gaussian_part_reparameterization_gradients():
    """d/dmu E[z^2] = 2 mu and d/dlogvar E[z^2] = sigma^2 through rsample (pathwise, eq. 25)."""
    torch.manual_seed(0)
    part = GaussianPart(3)
    mu = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    logvar = torch.tensor([0.0, -1.0, 0.5], requires_grad=True)
    params = torch.cat([mu, logvar]).expand(200_000, 6)
    z = part.rsample(params)
    z.pow(2).mean(0).sum().backward()
    assert torch.allclose(mu.grad, 2 * mu.detach(), atol=0.03)
    assert torch.allclose(logvar.grad, logvar.detach().exp(), atol=0.03)
    assert part.prior_entropy() == pytest.approx(1.5 * math.log(2 * math.pi * math.e))


def test_gaussian_part_log_prob_matches_torch():
    part = GaussianPart(4)
    params, z = torch.randn(6, 8), torch.randn(6, 4)
    mu, logvar = params.chunk(2, -1)
    ref = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z)
    assert torch.allclose(part.log_prob(params, z), ref, atol=1e-5)


def test_likelihoods_match_torch_distributions():
    logits = torch.randn(4, 1, 28, 28)
    x = (torch.rand(4, 1, 28, 28) > 0.5).float()
    ref = D.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(BernoulliLikelihood().log_prob(x, logits), ref, atol=1e-3)
    lik = GaussianLikelihood(0.1, mean_activation="identity")
    ref = D.Normal(logits, math.sqrt(0.1)).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(lik.log_prob(x, logits), ref, rtol=1e-5)


def test_learned_variance_is_a_parameter_and_fixed_is_not():
    assert any(n.endswith("logvar") for n, _ in build_vae((1, 8, 8), 2, hidden=(4,), likelihood="gaussian",
                                                          learn_variance=True).named_parameters())
    assert not any(n.endswith("logvar") for n, _ in build_vae((1, 8, 8), 2, hidden=(4,),
                                                              likelihood="gaussian").named_parameters())


@pytest.mark.parametrize("bad", [dict(arch="rnn"), dict(likelihood="poisson"), dict(activation="swishy")])
def test_build_vae_rejects_unknown_choices(bad):
    with pytest.raises(ValueError, match=list(bad.values())[0]):
        build_vae((1, 28, 28), 2, **bad)


def test_latent_parts_reject_bad_sizes():
    with pytest.raises(ValueError):
        GaussianPart(0)
    with pytest.raises(ValueError):
        CategoricalPart(1)
    with pytest.raises(ValueError):
        CategoricalPart(3, temperature=0.0)
    with pytest.raises(ValueError, match="unique"):
        LatentSpace([GaussianPart(2, "z"), GaussianPart(2, "z")])


def test_model_device_helper():
    m = build_vae((1, 28, 28), 2, hidden=(8,))
    assert m.device == model_device(m) == torch.device("cpu")
    assert model_device(GaussianLikelihood()) == torch.device("cpu")   # a buffer only
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")        # no tensors at all
    if torch.cuda.is_available():
        assert m.to("cuda").device.type == "cuda" and m.generate(2).device.type == "cuda"
    assert part_names("c") == ["c"] and part_names(("z", "c")) == ["z", "c"]


def test_seeded_prior_codes_do_not_depend_on_the_model_device():
    latent = LatentSpace([GaussianPart(3), CategoricalPart(4)])
    z_cpu = latent.sample_prior(6, device="cpu", generator=torch.Generator().manual_seed(1))
    z_meta = latent.sample_prior(6, device="meta", generator=torch.Generator().manual_seed(1))  # a GPU stands in
    assert z_meta.device.type == "meta" and z_meta.shape == z_cpu.shape == (6, 7)
    assert torch.equal(z_cpu, latent.sample_prior(6, generator=torch.Generator().manual_seed(1)))
