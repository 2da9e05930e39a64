"""Figures of the sinusoid experiment (paper Figures 5 and 6), styled by :mod:`omni_jax.plotting`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from omni_jax.plotting import new_figure, save_figure, style

# On the log axis a band's lower edge is cut at mean / BAND_FLOOR, and a panel spans at most
# BAND_FLOOR times below its smallest mean and above its largest one.
BAND_FLOOR = 10.0


def mse_band(y, ci) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper edges of the band drawn around the mean MSE ``y`` on the log axis:
    ``y ± ci``, the lower edge cut at ``y / BAND_FLOOR`` (where ``ci >= y`` the interval reaches
    0, which a log axis cannot show; the cut band then means "the CI reaches at least a decade below")."""
    y = np.asarray(y, dtype=float)
    ci = np.asarray(ci, dtype=float)
    return np.maximum(y - ci, y / BAND_FLOOR), y + ci


def mse_vs_steps_figure(records: list[dict], methods=("baseline", "maml", "ensemble", "joint", "omni")) -> Figure:
    """Figure 5 as a :class:`Figure` (see :func:`plot_mse_vs_steps`)."""
    ks = sorted({r["k_shot"] for r in records})
    fig, axes = new_figure(1, max(len(ks), 1), panel_size=(4.2, 3.6))
    for ax, k in zip(axes[0], ks):
        means, lows, highs = [], [], []
        for m in methods:
            rs = sorted((r for r in records if r["method"] == m and r["k_shot"] == k), key=lambda r: r["steps"])
            if not rs:
                continue
            s = np.array([r["steps"] for r in rs])
            y = np.array([r["mse"] for r in rs], dtype=float)
            ci = np.array([r["ci95"] for r in rs], dtype=float)
            st = style(m)
            ax.plot(s, y, ms=3, **st.line_kwargs())
            lo, hi = mse_band(y, ci)
            ok = np.isfinite(y) & (y > 0) & np.isfinite(ci)
            ax.fill_between(s, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=st.color, alpha=0.15,
                            linewidth=0)
            means.append(y[ok]), lows.append(lo[ok]), highs.append(hi[ok])
        ax.set_yscale("log")
        means = np.concatenate(means) if means else np.zeros(0)
        if means.size:
            # Limits from the data: the bands, but never more than BAND_FLOOR beyond the means.
            lo = max(np.concatenate(lows).min(), means.min() / BAND_FLOOR)
            hi = min(np.concatenate(highs).max(), means.max() * BAND_FLOOR)
            ax.set_ylim(lo / 1.25, hi * 1.25)
        ax.set_title(f"K = {k}")
        ax.set_xlabel("gradient steps")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("MSE (mean over test tasks)")
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_mse_vs_steps(records: list[dict], path: Path,
                      methods=("baseline", "maml", "ensemble", "joint", "omni")) -> Path:
    """Figure 5: mean MSE over the test tasks (log scale) against gradient steps, one panel per K.

    The shaded band is the 95% confidence interval of that mean, mean ± ci95; on the log axis its
    lower edge is cut at mean/10, so where ci95 >= mean (the interval reaches 0) the band ends one
    decade below the curve instead of at an arbitrary constant. Each panel's y-range comes from
    the plotted bands, at most a factor 10 beyond its smallest and largest mean.
    """
    return save_figure(mse_vs_steps_figure(records, methods), path)


def recovered_waves_figure(curves: dict, steps=(1, 10)) -> Figure:
    """Figure 6 as a :class:`Figure` (see :func:`plot_recovered_waves`)."""
    n_tasks = curves["truth"].shape[0]
    fig, axes = new_figure(len(steps), n_tasks, panel_size=(4.0, 3.2))
    for row, s in enumerate(steps):
        for t in range(n_tasks):
            ax = axes[row][t]
            ax.plot(curves["x"], curves["truth"][t], "k-", lw=2, label="ground truth")
            for m, p in curves["preds"].items():
                st = style(m)
                ax.plot(curves["x"], p[t, s - 1], st.linestyle, color=st.color, lw=1.3, label=st.label)
            ax.scatter(curves["support_x"][t], curves["support_y"][t], c="k", marker="^", zorder=5, label="support")
            ax.set_title(f"task {t + 1}, after {s} step{'s' if s > 1 else ''}")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_recovered_waves(curves: dict, path: Path, steps=(1, 10)) -> Path:
    """Figure 6: recovered sine waves after 1 and 10 steps with K = 5.

    ``curves`` holds ``x`` [G], ``truth`` [T, G], ``support_x``/``support_y``
    [T, K] and ``preds`` ``{method: [T, steps, G]}`` for T example tasks.
    """
    return save_figure(recovered_waves_figure(curves, steps), path)
