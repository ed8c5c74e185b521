"""The loss registry (issue 9, item 1): importing ``vaemi.losses`` registers every objective, unknown names
fail clearly, and the old import paths (``vaemi.measures.mi``, ``vaemi.losses``) keep working."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import vaemi
from vaemi import losses as vl
from vaemi.losses import LOSSES, BaseLoss, ELBOLoss, elbo_terms, get_loss, register_loss


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_fresh_interpreter_gets_every_objective_from_vaemi_losses():
    r = _run("""
        from vaemi.losses import get_loss
        print(*(type(get_loss(name)).__name__ for name in ("vmi", "infovae", "elbo")))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["VariationalMILoss", "InfoVAELoss", "ELBOLoss"]


def test_registration_does_not_depend_on_the_package_init():
    """``vaemi/__init__.py`` is bypassed: the losses package must register its objectives by itself."""
    r = _run("""
        import importlib.util, sys, types
        spec = importlib.util.find_spec("vaemi")
        stub = types.ModuleType("vaemi")
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules["vaemi"] = stub                     # vaemi/__init__.py never runs
        from vaemi.losses import LOSSES, get_loss
        assert "vaemi.measures.mi" not in sys.modules and "vaemi.train.loop" not in sys.modules
        print(sorted(LOSSES), type(get_loss("vmi")).__name__, type(get_loss("infovae")).__name__)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['elbo', 'infovae', 'rae', 'vimae', 'vmi'] VariationalMILoss InfoVAELoss"


@pytest.mark.parametrize("name,suggestion", [("vmii", "'vmi'"), ("ELBO", None), ("info_vae", "'infovae'")])
def test_unknown_loss_names_the_known_ones(name, suggestion):
    with pytest.raises(ValueError) as err:
        get_loss(name)
    msg = str(err.value)
    assert f"unknown loss {name!r}" in msg
    assert all(known in msg for known in ("elbo", "infovae", "vmi"))
    if suggestion:
        assert f"Did you mean {suggestion}?" in msg


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="registered twice"):
        register_loss("elbo")(type("Other", (ELBOLoss,), {}))
    assert LOSSES["elbo"] is ELBOLoss


def test_old_import_paths_still_work():
    from vaemi.losses import base, elbo, mi as losses_mi
    from vaemi.losses.mi import (AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss, generate_and_reencode,
                                 make_x_tilde)
    from vaemi.measures.toy import lemma1_sides
    from vaemi.measures.mi import mi_lower_bound, mi_upper_bound, posterior_mi_lower_bound
    from vaemi.measures.metrics import reconstruction_probability
    from vaemi.measures import metrics, mi as mi_estimators, toy

    assert (AuxiliaryQ, InfoVAELoss, MITarget, VariationalMILoss, generate_and_reencode, make_x_tilde) == (
        losses_mi.AuxiliaryQ, losses_mi.InfoVAELoss, losses_mi.MITarget, losses_mi.VariationalMILoss,
        losses_mi.generate_and_reencode, losses_mi.make_x_tilde)
    assert (mi_lower_bound, mi_upper_bound, posterior_mi_lower_bound) == (
        mi_estimators.mi_lower_bound, mi_estimators.mi_upper_bound, mi_estimators.posterior_mi_lower_bound)
    assert lemma1_sides is toy.lemma1_sides and reconstruction_probability is metrics.reconstruction_probability
    assert vaemi.measures.metrics.reconstruction_probability is metrics.reconstruction_probability
    assert (vl.BaseLoss, vl.ELBOLoss, vl.LOSSES, vl.register_loss, vl.get_loss, vl.elbo_terms) == (
        base.BaseLoss, elbo.ELBOLoss, base.LOSSES, base.register_loss, base.get_loss, base.elbo_terms)
    assert (BaseLoss, elbo_terms, vaemi.get_loss) == (base.BaseLoss, base.elbo_terms, base.get_loss)
    assert set(vaemi.measures.mi.__all__) <= set(dir(vaemi.measures.mi)) and set(vl.__all__) <= set(dir(vl))
    assert LOSSES["vmi"] is VariationalMILoss and LOSSES["infovae"] is InfoVAELoss
