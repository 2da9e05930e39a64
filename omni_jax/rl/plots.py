"""Figure 8: average return against gradient steps, one panel per environment.

    python -m omni_jax.rl.plots runs/rl_navigation2d runs/rl_halfcheetah_vel -o figure8.png

combines the ``results.json`` of several work directories into one figure.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

STYLE = {"baseline": ("tab:blue", "-"), "maml": ("tab:orange", "-"), "omni": ("tab:red", "-"),
         "omni_joint": ("tab:brown", "--"), "omni_pre": ("tab:pink", "--"), "omni_meta": ("tab:olive", "--")}
TITLES = {"navigation2d": "2D Navigation", "halfcheetah_vel": "HalfCheetah velocity",
          "halfcheetah_dir": "HalfCheetah direction"}


def plot_return_vs_steps(records: list[dict], path: Path, methods=("baseline", "maml", "omni"),
                         median: bool = False) -> Path:
    """Mean return (± 95% CI band) against gradient steps; one panel per env in ``records``."""
    envs = list(dict.fromkeys(r["env"] for r in records))
    fig, axes = plt.subplots(1, len(envs), figsize=(4.4 * len(envs), 3.6), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for m in methods:
            rs = sorted((r for r in records if r["env"] == env and r["method"] == m), key=lambda r: r["steps"])
            if not rs:
                continue
            s = np.array([r["steps"] for r in rs])
            y = np.array([r["median" if median else "return"] for r in rs])
            color, ls = STYLE.get(m, (None, "-"))
            ax.plot(s, y, ls, color=color, marker="o", ms=3, label=m)
            if not median:
                ci = np.array([r["ci95"] for r in rs])
                ax.fill_between(s, y - ci, y + ci, color=color, alpha=0.15)
        ax.set_title(TITLES.get(env, env))
        ax.set_xlabel("gradient steps")
        ax.set_xticks(sorted({r["steps"] for r in records if r["env"] == env}))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("median return" if median else "average return")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Figure 8 from RL work directories")
    parser.add_argument("workdirs", nargs="+", help="work directories holding results.json")
    parser.add_argument("-o", "--out", default="figure8.png")
    parser.add_argument("--median", action="store_true", help="plot medians instead of means")
    args = parser.parse_args(argv)
    records = []
    for w in args.workdirs:
        records += json.loads((Path(w) / "results.json").read_text())
    print(plot_return_vs_steps(records, Path(args.out), median=args.median))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
