"""Few-shot accuracy ± 95% CI per method and (n_way, k_shot) setting, one panel per protocol,
styled by :mod:`omni_jax.plotting`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from omni_jax.plotting import style, new_figure, save_figure


def _series_styles(records: list[dict], label) -> dict:
    """``{series: (colour, marker, filled)}``: the colour of the series' method, the marker of its head
    where the method shows several heads, and hollow markers for later series that would look the same."""
    first = {}
    for r in records:
        first.setdefault(label(r), r)
    heads = {}
    for r in first.values():
        heads.setdefault(r.get("method"), set()).add(r.get("head"))
    out, seen = {}, set()
    for s, r in first.items():
        method = r.get("method")
        head = r.get("head") if len(heads[method]) > 1 else None
        st = style(method if method is not None else str(s), head)
        look = (st.color, st.marker)
        out[s] = (st.color, st.marker, look not in seen)
        seen.add(look)
    return out


def fewshot_accuracy_figure(records: list[dict], label=lambda r: r["method"], panel="protocol") -> Figure:
    """The figure of :func:`plot_fewshot_accuracy`, not saved."""
    if not records:
        raise ValueError("plot_fewshot_accuracy: no records")
    panels = list(dict.fromkeys(r.get(panel, "") for r in records))
    series = list(dict.fromkeys(label(r) for r in records))
    looks = _series_styles(records, label)
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    width = 0.8 / len(series)
    fig, axes = new_figure(1, len(panels), panel_size=(1.5 * len(settings), 3.8), extra_width=1.6, sharey=True)
    for ax, p in zip(axes[0], panels):
        for i, s in enumerate(series):
            rs = {(r["n_way"], r["k_shot"]): r for r in records if r.get(panel, "") == p and label(r) == s}
            xs = [j for j, st in enumerate(settings) if st in rs]
            if not xs:
                continue
            ys = [rs[settings[j]]["accuracy"] for j in xs]
            ci = [rs[settings[j]]["ci95"] for j in xs]
            color, marker, filled = looks[s]
            ax.errorbar(np.array(xs) + (i - (len(series) - 1) / 2) * width, ys, yerr=ci, fmt=marker, ms=4,
                        capsize=3, color=color, mfc=color if filled else "none", label=s)
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels([f"{n}-way\n{k}-shot" for n, k in settings])
        ax.set_title(str(p))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%) ± 95% CI")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # outside: never hides a point
    fig.tight_layout()
    return fig


def plot_fewshot_accuracy(records: list[dict], path, label=lambda r: r["method"], panel="protocol") -> Path:
    """Records hold ``n_way``, ``k_shot``, ``accuracy``, ``ci95`` and the ``panel`` key; ``label(r)`` names the
    series. Each setting is a group on the x axis, each series a marker with its 95% CI as error bar, in the
    colour of its ``method`` (the same in every figure of the project); where a method appears with several
    ``head`` values, the marker tells the head."""
    return save_figure(fewshot_accuracy_figure(records, label, panel), path)


def omni_pairs_figure(records: list[dict], panel="protocol") -> Figure:
    """The figure of :func:`plot_omni_pairs`, not saved."""
    if not records:
        raise ValueError("plot_omni_pairs: no records")
    panels = list(dict.fromkeys(r.get(panel, "") for r in records))
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    algorithms = list(dict.fromkeys(r["algorithm"] for r in records if r.get("algorithm")))
    baselines = list(dict.fromkeys(r["method"] for r in records if not r.get("algorithm")))
    fig, axes = new_figure(len(panels), len(settings), panel_size=(0.55 * (len(algorithms) + len(baselines)) + 1.2, 3.0),
                           extra_width=1.4)
    for i, p in enumerate(panels):
        for j, st in enumerate(settings):
            ax = axes[i][j]
            cell = [r for r in records if r.get(panel, "") == p and (r["n_way"], r["k_shot"]) == st]
            for a, x in enumerate(algorithms):
                for r in cell:
                    if r.get("algorithm") != x:
                        continue
                    omni = r["method"].startswith("omni_")
                    s = style("omni_proto" if omni else "protonet")
                    ax.errorbar(a + (0.15 if omni else -0.15), r["accuracy"], yerr=r["ci95"], fmt="o", ms=4, capsize=3,
                                color=s.color, mfc=s.color if omni else "none",
                                label="Omni-Training∘X" if omni else "X alone")
            for b, name in enumerate(baselines):
                for r in cell:
                    if r["method"] == name and not r.get("algorithm"):
                        s = style(name)
                        ax.errorbar(len(algorithms) + b, r["accuracy"], yerr=r["ci95"], fmt="sD^v"[b % 4], ms=4,
                                    capsize=3, color=s.color, label=s.label)
            ax.set_xticks(range(len(algorithms) + len(baselines)))
            ax.set_xticklabels(algorithms + baselines, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{p}: {st[0]}-way {st[1]}-shot", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
        axes[i][0].set_ylabel("accuracy (%) ± 95% CI")
    handles, labels = axes[0][0].get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    axes[0][-1].legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_omni_pairs(records: list[dict], path, panel="protocol") -> Path:
    """Tables 2-3 as a figure: one panel per (``panel`` value, setting), each meta algorithm (a record's
    ``algorithm``) on the x axis with X alone (hollow) beside Omni-Training∘X (filled, a record whose
    ``method`` starts with ``omni_``), then the records without an ``algorithm`` (Baseline, Baseline++) as
    squares; accuracy with its 95% CI as error bar. Records carry ``method``, ``n_way``, ``k_shot``,
    ``accuracy``, ``ci95`` and, for the algorithms, ``algorithm``."""
    return save_figure(omni_pairs_figure(records, panel), path)
