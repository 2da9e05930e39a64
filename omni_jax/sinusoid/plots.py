"""Figures of the sinusoid experiment (paper Figures 5 and 6), with matplotlib."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {"baseline": ("tab:blue", "-"), "maml": ("tab:orange", "-"), "ensemble": ("tab:purple", ":"),
         "joint": ("tab:brown", ":"), "omni": ("tab:red", "-"), "omni_joint": ("tab:red", "--"),
         "omni_pre": ("tab:pink", "--"), "omni_meta": ("tab:olive", "--"), "omni_ensemble": ("tab:gray", "--")}


def plot_mse_vs_steps(records: list[dict], path: Path, methods=("baseline", "maml", "ensemble", "joint", "omni")) -> Path:
    """Figure 5: MSE (log scale) against gradient steps, one panel per K."""
    ks = sorted({r["k_shot"] for r in records})
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        for m in methods:
            rs = sorted((r for r in records if r["method"] == m and r["k_shot"] == k), key=lambda r: r["steps"])
            if not rs:
                continue
            s = np.array([r["steps"] for r in rs])
            y = np.array([r["mse"] for r in rs])
            ci = np.array([r["ci95"] for r in rs])
            color, ls = STYLE.get(m, (None, "-"))
            ax.plot(s, y, ls, color=color, marker="o", ms=3, label=m)
            ax.fill_between(s, np.maximum(y - ci, 1e-6), y + ci, color=color, alpha=0.15)
        ax.set_yscale("log")
        ax.set_title(f"K = {k}")
        ax.set_xlabel("gradient steps")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("MSE")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_recovered_waves(curves: dict, path: Path, steps=(1, 10)) -> Path:
    """Figure 6: recovered sine waves after 1 and 10 steps with K = 5.

    ``curves`` holds ``x`` [G], ``truth`` [T, G], ``support_x``/``support_y``
    [T, K] and ``preds`` ``{method: [T, steps, G]}`` for T example tasks.
    """
    n_tasks = curves["truth"].shape[0]
    fig, axes = plt.subplots(len(steps), n_tasks, figsize=(4 * n_tasks, 3.2 * len(steps)), squeeze=False)
    for row, s in enumerate(steps):
        for t in range(n_tasks):
            ax = axes[row][t]
            ax.plot(curves["x"], curves["truth"][t], "k-", lw=2, label="ground truth")
            for m, p in curves["preds"].items():
                color, _ = STYLE.get(m, (None, "-"))
                ax.plot(curves["x"], p[t, s - 1], "-", color=color, lw=1.3, label=m)
            ax.scatter(curves["support_x"][t], curves["support_y"][t], c="k", marker="^", zorder=5, label="support")
            ax.set_title(f"task {t + 1}, after {s} step{'s' if s > 1 else ''}")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
