"""The chapters' shared figures draw what they promise (issue 9: figure code out of the notebooks)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import vaemi  # noqa: E402
from vaemi.models import CategoricalPart, GaussianPart, LatentSpace  # noqa: E402
from vaemi.chapters.vmim import category_sweep_figure
from vaemi.chapters.figures import influence_bars, plot_history, plot_sweep
from vaemi.train.loop import History


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _history(shift):
    return History([dict(epoch=e, rec=10.0 - e + shift, I_c=0.1 * e, I_q=0.05 * e) for e in (1, 2, 3)])


def test_plot_history_one_panel_per_key_one_line_per_history():
    fig = plot_history({"a": _history(0), "b": _history(1)}, ["rec", ("I_c", "I_q")], ["r", "i"], hline=1.0)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    ax0, ax1 = fig.axes
    assert len(ax0.lines) == 2 + 1 and len(ax1.lines) == 4 + 1  # histories (+ dotted extras) + reference line
    assert ax0.get_title() == "r" and [t.get_text() for t in ax0.get_legend().get_texts()] == ["a", "b"]
    np.testing.assert_allclose(ax0.lines[1].get_ydata(), [10, 9, 8])


def test_plot_sweep_puts_zero_on_the_log_axis():
    t = pd.DataFrame(dict(lam=[0.0, 1.0, 3.0], I_c=[1, 2, 3], rec=[5, 6, 7]))
    fig = plot_sweep(t, "lam", ["I_c", "rec"])
    assert len(fig.axes) == 2 and all(len(ax.lines) == 1 for ax in fig.axes)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [1 / 3, 1, 3])


def test_influence_bars_groups():
    fig = influence_bars({"A": np.arange(4.0), "B": np.ones(4)}, ["z1", "z2", "c1", "c2"], boundary=1.5, marks=[0])
    ax, = fig.axes
    assert len(ax.containers) == 2 and all(len(c) == 4 for c in ax.containers)
    _, ax2 = plt.subplots(1, 2)
    assert influence_bars({"A": np.ones(3)}, ax=ax2[1]) is ax2[1].figure


def test_category_sweep_figure_one_axes_per_model(tiny_images):
    vaemi.seed_everything(0)
    lat = LatentSpace([GaussianPart(2, "z"), CategoricalPart(3, name="c")])
    m = vaemi.build_vae(tiny_images.shape[1:], lat, hidden=[8])
    acc = dict(mapping={0: 2, 1: 0}, hungarian=0.5)
    fig = category_sweep_figure({"one": m, "two": m}, {"one": acc, "two": acc}, tiny_images[:2], 3, "t")
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("one: acc 50%")


def test_variance_loss_chapter_figures():
    from vaemi.chapters import figures as plotting
    from vaemi.chapters import variance_loss as ch
    from vaemi.measures import variance

    cloud = np.random.default_rng(0).normal(size=(30, 2)) @ np.array([[2.0, 0.5], [0.0, 0.5]])
    table = ch.pca_table(np.random.default_rng(1).normal(size=(50, 6)), [1, 3])
    fig = ch.pca_figure(cloud, variance.pca_reconstruction(cloud, 1), table, {"k": 3, "mse": 0.5})
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 3
    fig = ch.signal_figure(np.arange(10.0), np.full(10, 4.5), "smoothed", "t")
    assert [l.get_label() for l in fig.axes[0].lines][:2] == ["signal", "smoothed"]
    rows = pd.DataFrame(dict(dataset=["a", "b"], arch=["mlp", "conv"], mse=[0.1, 0.2], vl_rec=[0.1, 0.3], vl_gen=[0.2, 0.4]))
    fig = ch.mse_vs_variance_loss(rows, "a")
    assert [len(ax.collections) for ax in fig.axes] == [2, 2]
    fig = ch.code_scatter(torch.randn(50, 4), torch.randn(50, 4), [2, 0])
    assert "dims 2, 0" in fig.axes[0].get_title()
    fig = plotting.image_rows([torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)], ["one", "two"])
    assert [ax.get_title() for ax in fig.axes] == ["one", "two"]
    plt.close("all")


def test_note_figure_says_its_text():
    from vaemi.chapters.figures import note_figure

    fig = note_figure("Omniglot files not found")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == ["Omniglot files not found"] and not ax.axison
    plt.close(fig)
