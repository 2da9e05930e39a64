"""Few-shot accuracy ± 95% CI per method and (n_way, k_shot) setting, one panel per protocol (matplotlib)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_fewshot_accuracy(records: list[dict], path, label=lambda r: r["method"], panel="protocol") -> Path:
    """Records hold ``n_way``, ``k_shot``, ``accuracy``, ``ci95`` and the ``panel`` key; ``label(r)`` names the
    series. Each setting is a group on the x axis, each series a marker with its 95% CI as error bar."""
    if not records:
        raise ValueError("plot_fewshot_accuracy: no records")
    panels = list(dict.fromkeys(r.get(panel, "") for r in records))
    series = list(dict.fromkeys(label(r) for r in records))
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    width = 0.8 / len(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 + 1.5 * len(settings) * len(panels), 3.8),
                             squeeze=False, sharey=True)
    for ax, p in zip(axes[0], panels):
        for i, s in enumerate(series):
            rs = {(r["n_way"], r["k_shot"]): r for r in records if r.get(panel, "") == p and label(r) == s}
            xs = [j for j, st in enumerate(settings) if st in rs]
            if not xs:
                continue
            ys = [rs[settings[j]]["accuracy"] for j in xs]
            ci = [rs[settings[j]]["ci95"] for j in xs]
            ax.errorbar(np.array(xs) + (i - (len(series) - 1) / 2) * width, ys, yerr=ci, fmt="o", ms=4,
                        capsize=3, color=f"C{i}", label=s)
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels([f"{n}-way\n{k}-shot" for n, k in settings])
        ax.set_title(str(p))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%) ± 95% CI")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # outside: never hides a point
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
