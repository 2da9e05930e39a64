"""Figure 8: average return against gradient steps, one panel per environment.

    python -m omni_jax.rl.plots runs/rl_navigation2d runs/rl_halfcheetah_vel -o figure8.png

combines the ``results.json`` of several work directories into one figure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from omni_jax.plotting import new_figure, save_figure, style

TITLES = {"navigation2d": "2D Navigation", "halfcheetah_vel": "HalfCheetah velocity",
          "halfcheetah_dir": "HalfCheetah direction"}


METHODS = ("baseline", "maml", "omni", "random")   # drawn when present ("random": the untrained reference)


def return_vs_steps_figure(records: list[dict], methods=METHODS, median: bool = False) -> Figure:
    """Figure 8 as a :class:`Figure` (see :func:`plot_return_vs_steps`)."""
    envs = list(dict.fromkeys(r["env"] for r in records))
    fig, axes = new_figure(1, max(len(envs), 1), panel_size=(4.4, 3.6))
    for ax, env in zip(axes[0], envs):
        for m in methods:
            rs = sorted((r for r in records if r["env"] == env and r["method"] == m), key=lambda r: r["steps"])
            if not rs:
                continue
            s = np.array([r["steps"] for r in rs])
            y = np.array([r["median" if median else "return"] for r in rs], dtype=float)
            st = style(m)
            ax.plot(s, y, ms=3, **st.line_kwargs())
            if not median:
                ci = np.array([r["ci95"] for r in rs], dtype=float)
                ax.fill_between(s, y - ci, y + ci, color=st.color, alpha=0.15, linewidth=0)
        ax.set_title(TITLES.get(env, env))
        ax.set_xlabel("gradient steps")
        ax.set_xticks(sorted({r["steps"] for r in records if r["env"] == env}))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("median return" if median else "average return")
    if axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_return_vs_steps(records: list[dict], path: Path, methods=METHODS,
                         median: bool = False) -> Path:
    """Mean return (± 95% CI band) against gradient steps; one panel per env in ``records``.
    With ``median``, the median return and no band."""
    return save_figure(return_vs_steps_figure(records, methods, median), path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Figure 8 from RL work directories")
    parser.add_argument("workdirs", nargs="+", help="work directories holding results.json")
    parser.add_argument("-o", "--out", default="figure8.png")
    parser.add_argument("--median", action="store_true", help="plot medians instead of means")
    args = parser.parse_args(argv)
    from omni_jax import files
    from omni_jax.errors import OmniJaxError
    records = []
    try:
        for w in args.workdirs:
            records += files.read_json(Path(w) / "results.json", expect=list,
                                       hint="run `omni-jax rl` with that --workdir again")
        print(plot_return_vs_steps(records, Path(args.out), median=args.median))
    except OmniJaxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
