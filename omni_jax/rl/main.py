"""Reinforcement learning on Brax, paper §6.3: train Baseline, MAML and Omni-Training, adapt to new tasks.

Writes to the work directory: ``<method>/checkpoints`` (orbax),
``<method>/metrics.jsonl``, ``results.json`` and ``figure8_<env>.png``.
Running the same command again resumes training where it stopped.
"""
from __future__ import annotations

import inspect
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError
from omni_jax.rl import evaluate as ev
from omni_jax.rl import plots
from omni_jax.rl import train as tr
from omni_jax.rl.envs import ENVS
from omni_jax.training import CheckpointStore, task_mesh, write_atomic


def add_arguments(parser) -> None:
    from omni_jax.cli import add_common
    add_common(parser, default_config="rl_<env>")
    parser.add_argument("--env", default="navigation2d",
                        help=f"environment: {', '.join(ENVS)} (default: navigation2d); selects "
                             "experiments/rl_<env>.py unless --config is given")


def prepare_config(args, overrides):
    if args.env not in ENVS:
        raise OmniJaxError(f"unknown env {args.env!r}; expected one of {', '.join(ENVS)}")
    name = f"rl_{args.env}" if args.config in (None, "rl_<env>") else args.config
    if "quick" in inspect.signature(config_lib.load_config).parameters:
        cfg = config_lib.load_config(name, quick=args.quick)
    else:  # an older core: no quick configs
        cfg = config_lib.load_config(name)
    cfg = config_lib.apply_overrides(cfg, overrides)
    if cfg.env.name != args.env:
        raise OmniJaxError(f"config {name} is for env {cfg.env.name!r}, not --env {args.env}")
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def run(args, overrides) -> int:
    cfg = prepare_config(args, overrides)
    mesh = task_mesh()
    tr.validate(cfg, mesh)
    env = tr.make_env_from_config(cfg)
    workdir = Path(args.workdir or f"runs/rl_{cfg.env.name}")
    todo = []
    for method in cfg.train.methods:  # check every checkpoint against this config before training any
        store = CheckpointStore(workdir / method / "checkpoints", tr.fingerprint(cfg, method))
        if (store.latest_step() or 0) < cfg.train.num_iterations:
            todo.append(method)
        store.close()
    t = cfg.train
    print(f"omni-jax rl: {cfg.env.name} (backend {cfg.env.backend if cfg.env.name != 'navigation2d' else '-'}), "
          f"{len(jax.devices())} {jax.devices()[0].platform} device(s), workdir {workdir}; "
          f"{t.num_iterations} iterations x {t.meta_batch} tasks x {t.num_traj} trajectories x "
          f"{cfg.env.horizon} steps, {'first' if t.first_order else 'second'}-order MAML-RL", flush=True)

    models, timings = {}, {}
    # Compiling dominates short runs (the cheetah's physics is compiled into every program):
    # the training chunks still to run and the evaluation compile in worker threads while
    # the main thread trains each method as soon as its program is ready.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="compile") as pool:
        initial = {m: tr.setup_method(cfg, m, env, mesh) for m in t.methods}
        compiled = {m: pool.submit(tr.precompile, *initial[m][1:]) for m in todo}
        init_entries = ev.entries_for({m: (pol, st.params) for m, (pol, _, st) in initial.items()},
                                      cfg.eval.omni_head)
        eval_compiled = pool.submit(ev.precompile, cfg, env, init_entries, mesh=mesh)
        for method in t.methods:
            t0 = time.perf_counter()
            if method in compiled:
                compiled[method].result()
            state, policy = tr.train_method(cfg, method, workdir, env=env, mesh=mesh,
                                            show_progress=not args.no_progress)
            skipped = int(state.extra["skipped_total"])
            if skipped:
                print(f"{method}: {skipped} non-finite update(s) skipped (see {workdir / method / 'metrics.jsonl'})")
            models[method] = (policy, state.params)
            timings[method] = time.perf_counter() - t0

        t0 = time.perf_counter()
        eval_compiled.result()
        entries = ev.entries_for(models, cfg.eval.omni_head)
        returns = ev.adaptation_returns(cfg, env, entries, mesh=mesh)
    records = ev.records_from_returns(cfg.env.name, [e[0] for e in entries], returns, cfg.eval.omni_head)
    timings["eval"] = time.perf_counter() - t0
    write_atomic(workdir / "results.json", json.dumps(records, indent=1))
    fig = plots.plot_return_vs_steps(records, workdir / f"figure8_{cfg.env.name}.png")
    print()
    print(f"{cfg.env.name}: average return, mean ± 95% CI (median) over {cfg.eval.num_tasks} new tasks after "
          f"0-{cfg.eval.max_steps} REINFORCE steps of {cfg.eval.num_traj} trajectories (lr {cfg.eval.lr}); "
          f"omni = the {cfg.eval.omni_head} head")
    print(ev.results_table(records))
    print()
    print("time this run: " + ", ".join(f"{m} {s:.0f}s" for m, s in timings.items()))
    print(f"wrote {workdir / 'results.json'}, {fig}")
    return 0
