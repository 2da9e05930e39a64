"""Reinforcement learning (paper §6.3): Figure 8, a panel per environment.

    python -m experiments.rl [--envs navigation2d,halfcheetah_vel,halfcheetah_dir] [--paper-size] \\
        [--quick] [--workdir runs/figure8] [--config.FIELD=VALUE ...]

Each environment trains Baseline, MAML and Omni-Training and adapts them (and an untrained random
policy, the reference) to new tasks for 0..eval.max_steps REINFORCE steps through
omni_jax.rl.experiment.train_and_evaluate with its packaged config: rl_navigation2d, and for
HalfCheetah rl_halfcheetah_vel_cpu / rl_halfcheetah_dir_cpu (sized for 2 CPU cores, about 90
minutes each) or, with --paper-size, the paper's rl_halfcheetah_vel / rl_halfcheetah_dir; --quick
takes each config's _quick variant. Each runs in its own work directory, WORKDIR/<config name>:
rerunning resumes it, and a finished evaluation of the same config is restored in seconds. The
--config.FIELD=VALUE overrides apply to every environment.

Outputs in WORKDIR: figure8.json (every environment's records; they accumulate over invocations,
an environment's own replaced, the others kept), figure8.png (average return ± 95% CI against
adaptation steps, a panel per environment, the methods and the random reference) and figure8.md
(the same numbers, a table per environment).
"""
from __future__ import annotations

from pathlib import Path

from experiments import _common as common

ENVS = ("navigation2d", "halfcheetah_vel", "halfcheetah_dir")


def config_name(env: str, paper_size: bool = False) -> str:
    """The packaged config of an environment: HalfCheetah's CPU size unless ``paper_size``."""
    return f"rl_{env}" if env == "navigation2d" or paper_size else f"rl_{env}_cpu"


def env_order(records: list):
    return lambda r: (ENVS.index(r["env"]) if r.get("env") in ENVS else len(ENVS))


def figure8_table(records) -> str:
    """Markdown: per environment, one row per method, ``return ± CI (median)`` per number of steps."""
    from omni_jax.rl.plots import TITLES
    out = []
    for env in dict.fromkeys(r["env"] for r in records):
        rs = [r for r in records if r["env"] == env]
        steps = sorted({r["steps"] for r in rs})
        by = {(r["method"], r["steps"]): r for r in rs}
        where = f" ({rs[0]['config']}, {rs[0]['num_tasks']} test tasks)" if "config" in rs[0] else ""
        rows = [[m + (f" ({head} head)" if (head := by.get((m, steps[0]), {}).get("head")) else "")]
                + [f"{common.mean_ci(r['return'], r['ci95'], 1)} ({r['median']:.1f})" if (r := by.get((m, s))) else "-"
                   for s in steps]
                for m in dict.fromkeys(r["method"] for r in rs)]
        out.append(f"### {TITLES.get(env, env)}{where}\n\n"
                   + common.markdown_table(["method"] + [f"{s} step{'s' if s != 1 else ''}" for s in steps], rows))
    return ("Average return, mean ± 95% CI (median) over the test tasks after k REINFORCE steps\n\n"
            + "\n".join(out))


def write_figure8(records, wd: Path) -> list:
    """Writes ``figure8.json`` (``records`` merged with its other environments), ``figure8.md`` and
    ``figure8.png``; returns every record."""
    from omni_jax import files
    from omni_jax.rl.plots import plot_return_vs_steps
    records = common.write_records(wd / "figure8.json", records, ("env",), env_order)
    files.write_atomic(wd / "figure8.md", figure8_table(records))
    if records:
        plot_return_vs_steps(records, wd / "figure8.png")
    return records


def build_parser():
    p = common.parser("rl", __doc__)
    p.add_argument("--envs", default=",".join(ENVS), help="environments, comma-separated (default: %(default)s)")
    p.add_argument("--paper-size", action="store_true",
                   help="HalfCheetah with the paper's sizes (rl_halfcheetah_vel/_dir), not the CPU ones")
    p.add_argument("--quick", action="store_true", help="each config's _quick variant: a smoke run")
    p.add_argument("--workdir", default="runs/figure8", help="a work directory per environment, and the figure "
                                                             "(default: %(default)s)")
    common.add_report_only(p, "figure and table")
    common.add_progress(p)
    return p


def main(argv=None) -> int:
    return common.main("rl", build_parser, _main, argv)


def _main(args, overrides) -> int:
    envs = common.split_list(args.envs, "--envs", ENVS)
    wd = common.workdir(args.workdir)
    plan = []
    for env in envs:   # every config built before anything trains (a bad override fails here)
        name = config_name(env, args.paper_size) + ("_quick" if args.quick else "")
        plan.append(common.Run(f"{env} ({name})", wd / name, common.config(config_name(env, args.paper_size),
                                                                         args.quick, overrides), {"config": name}))
    from omni_jax.rl.experiment import train_and_evaluate
    return common.run_and_write(plan, train_and_evaluate, args, lambda recs: write_figure8(recs, wd), figure8_table,
                                [wd / "figure8.json", wd / "figure8.md", wd / "figure8.png"])


if __name__ == "__main__":
    raise SystemExit(main())
