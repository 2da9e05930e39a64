"""Test-time step rules for RL adaptation, compared on validation tasks (issue 13, part 2).

Restores the finished methods of an ``omni-jax rl`` work directory and adapts every policy (and
every Omni head of ``eval.omni_heads``) to new tasks drawn from the ``validation`` PRNG stream, never the test tasks,
with each test-time step rule: plain SGD (the paper's, ``eval.lr``) and steps bounded in KL
divergence (``eval.step_rule = "kl_bound"``) for each ``--max-kl``. Prints one table per rule and,
last, a JSON line ``{"<rule>": {"<method>": [mean return after 0..max_steps steps]}}``.

    python scripts/rl_step_rules.py --workdir runs/rl_navigation2d --env navigation2d \\
        --max-kl 0.01,0.03,0.1 --num-tasks 400
    python scripts/rl_step_rules.py --workdir runs/rl_halfcheetah_vel_cpu --config rl_halfcheetah_vel_cpu \
        --config-override "eval.omni_heads=('joint',)" --num-tasks 40
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError
from omni_jax.rl import evaluate as ev
from omni_jax.rl.experiment import trained_models
from omni_jax.rl.train import make_env_from_config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished `omni-jax rl` work directory")
    parser.add_argument("--env", default="navigation2d", help="its config: rl_<env> (default navigation2d)")
    parser.add_argument("--config", default=None,
                        help="its config instead: a packaged name or a .py file (e.g. rl_halfcheetah_vel_cpu)")
    parser.add_argument("--quick", action="store_true", help="the work directory is a --quick run")
    parser.add_argument("--config-override", action="append", default=[], metavar="FIELD=VALUE",
                        help="the overrides the work directory was trained with (repeatable)")
    parser.add_argument("--max-kl", default="0.01,0.03,0.1", help="the KL bounds to try, comma-separated")
    parser.add_argument("--num-tasks", type=int, default=400, help="validation tasks (default 400)")
    args = parser.parse_args(argv)
    try:
        cfg = config_lib.apply_overrides(config_lib.load_config(args.config or f"rl_{args.env}", quick=args.quick), args.config_override)
        models = trained_models(cfg, args.workdir)
        env = make_env_from_config(cfg)
        entries = ev.entries_for(models, cfg.eval.omni_heads)
        cfg.eval.num_tasks = args.num_tasks
        cfg.eval.task_chunk = min(cfg.eval.task_chunk, args.num_tasks)
        rules = [("sgd", None)] + [("kl_bound", float(v)) for v in args.max_kl.split(",") if v]
    except (OmniJaxError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = {}
    for rule, max_kl in rules:
        cfg.eval.step_rule = rule
        if max_kl is not None:
            cfg.eval.max_kl = max_kl
        name = rule if max_kl is None else f"kl_bound {max_kl:g}"
        t0 = time.perf_counter()
        evaluator = ev.AdaptationEvaluator(cfg, env, entries, stream="validation")
        records = ev.records_from_returns(cfg.env.name, evaluator.labels, evaluator.returns(), cfg.eval.omni_head)
        print(f"\n{name} (validation tasks: {args.num_tasks}, lr {cfg.eval.lr}; {time.perf_counter() - t0:.0f} s)")
        print(ev.results_table(records), flush=True)
        by_method = {}
        for r in records:
            by_method.setdefault(r["method"], []).append(round(r["return"], 3))
        summary[name] = by_method
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
