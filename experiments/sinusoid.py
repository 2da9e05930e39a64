"""Sinusoid regression (paper §6.2): Figures 5, 6 and 9b.

    python -m experiments.sinusoid [--quick] [--workdir runs/sinusoid] [--config sinusoid] \\
        [--config.FIELD=VALUE ...]

Trains Baseline (pre-training), MAML (meta-training), Joint-Training and Omni-Training on the
packaged config ``sinusoid`` (``sinusoid_quick`` with --quick, a smoke run of about a minute on 2
CPU cores) through omni_jax.sinusoid.train_and_evaluate in WORKDIR (default runs/sinusoid, or
runs/sinusoid_quick), and evaluates them and Ensemble (Baseline + MAML at test time) on the same
new tasks for every K. Rerunning resumes the training; a finished evaluation of the same config is
restored in seconds.

Outputs in WORKDIR: results.json, fig5_mse_vs_steps.png (Figure 5: MSE against gradient steps, a
panel per K) and fig6_recovered_waves.png (Figure 6: recovered waves, K = 5, after 1 and 10 steps),
written by the runner; fig9b_combinations.png (Figure 9b: Ensemble and Joint-Training against
Baseline, MAML and Omni-Training, MSE ± 95% CI as grouped bars, a panel per number of steps, the
paper's 2 among them) and sinusoid.md (the figure's numbers), written here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments import _common as common

FIG9B_STEPS = (1, 2, 10)     # the paper's Figure 9b: 2 steps (K = 5 and 10); 1 and 10 as in Figures 5-6
FIG9B_METHODS = ("baseline", "maml", "ensemble", "joint", "omni")


def fig9b_figure(records, steps=FIG9B_STEPS, methods=FIG9B_METHODS):
    """Figure 9b as a :class:`matplotlib.figure.Figure`: one panel per number of steps, a group of
    bars per K, a bar per method (mean MSE, log scale, its 95% CI as error bar; the lower whisker
    cut at a tenth of the mean, as Figure 5's bands)."""
    from omni_jax.plotting import new_figure, style
    from omni_jax.sinusoid.plots import mse_band
    steps = [s for s in steps if any(r["steps"] == s for r in records)]
    ks = sorted({r["k_shot"] for r in records})
    methods = [m for m in methods if any(r["method"] == m for r in records)]
    if not steps or not ks or not methods:
        raise ValueError("fig9b_figure: no records of its methods and steps")
    by = {(r["method"], r["k_shot"], r["steps"]): r for r in records}
    width = 0.8 / len(methods)
    fig, axes = new_figure(1, len(steps), panel_size=(0.9 * len(ks) + 2.2, 3.6), extra_width=1.8, sharey=True)
    for ax, s in zip(axes[0], steps):
        for i, m in enumerate(methods):
            cells = [(j, by[(m, k, s)]) for j, k in enumerate(ks) if (m, k, s) in by]
            x = np.array([j for j, _ in cells]) + (i - (len(methods) - 1) / 2) * width
            y = np.array([r["mse"] for _, r in cells], dtype=float)
            lo, hi = mse_band(y, [r["ci95"] for _, r in cells])
            st = style(m)
            label = st.label + (f" ({cells[0][1]['head']} head)" if cells and "head" in cells[0][1] else "")
            ax.bar(x, y, width, color=st.color, alpha=0.85, label=label,
                   yerr=np.stack([y - lo, hi - y]), capsize=2, error_kw={"lw": 0.8})
        ax.set_yscale("log")
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels([f"K = {k}" for k in ks])
        ax.set_title(f"after {s} step{'s' if s > 1 else ''}")
        ax.grid(alpha=0.3, axis="y", which="both")
    axes[0][0].set_ylabel("MSE (mean over test tasks) ± 95% CI")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_fig9b(records, path: Path, steps=FIG9B_STEPS, methods=FIG9B_METHODS) -> Path:
    """Writes Figure 9b (:func:`fig9b_figure`) to ``path`` atomically."""
    from omni_jax.plotting import save_figure
    return save_figure(fig9b_figure(records, steps, methods), path)


def fig9b_table(records, steps=FIG9B_STEPS, methods=FIG9B_METHODS) -> str:
    """Markdown: one row per method, ``MSE ± CI`` per (K, steps) of the figure."""
    ks = sorted({r["k_shot"] for r in records})
    steps = [s for s in steps if any(r["steps"] == s for r in records)]
    by = {(r["method"], r["k_shot"], r["steps"]): r for r in records}
    rows = []
    for m in [m for m in methods if any(r["method"] == m for r in records)]:
        head = next((r["head"] for r in records if r["method"] == m and "head" in r), None)
        rows.append([m + (f" ({head} head)" if head else "")]
                    + [common.mean_ci(by[(m, k, s)]["mse"], by[(m, k, s)]["ci95"], 3) if (m, k, s) in by else "-"
                       for k in ks for s in steps])
    return common.markdown_table(["method"] + [f"K={k}, {s} step{'s' if s > 1 else ''}" for k in ks for s in steps],
                                 rows)


def build_parser():
    p = common.parser("sinusoid", __doc__)
    p.add_argument("--workdir", default=None, help="default: runs/sinusoid (runs/sinusoid_quick with --quick)")
    p.add_argument("--config", default="sinusoid", help="a packaged config or a .py file (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="the config's _quick variant: a smoke run")
    common.add_progress(p)
    return p


def main(argv=None) -> int:
    return common.main("sinusoid", build_parser, _main, argv)


def _main(args, overrides) -> int:
    from omni_jax import files
    from omni_jax.sinusoid import train_and_evaluate
    cfg = common.config(args.config, args.quick, overrides)
    wd = common.workdir(args.workdir or ("runs/sinusoid_quick" if args.quick else "runs/sinusoid"))
    records = train_and_evaluate(cfg, wd, show_progress=args.progress)
    table = ("Sinusoid regression (Figure 9b): mean MSE ± 95% CI over the test tasks after s SGD steps\n\n"
             + fig9b_table(records))
    files.write_atomic(wd / "sinusoid.md", table)
    plot_fig9b(records, wd / "fig9b_combinations.png")
    common.say(table)
    common.say(f"wrote {wd / 'fig9b_combinations.png'} and {wd / 'sinusoid.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
