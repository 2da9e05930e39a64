"""RL throughput: environment steps per second of a full meta-iteration, against a pure rollout.

A meta-iteration is one jitted training step of ``omni_jax.rl.train``
(sampling support trajectories, advantages, the inner REINFORCE step,
sampling query trajectories with the adapted policies, the second-order
meta-gradient and the outer update). Its steps are all the environment
steps it samples. The pure rollout samples the same number of trajectories
of the same policy in one ``acting.rollout`` call: the floor.

    python benchmarks/rl_throughput.py                       # navigation2d and halfcheetah_vel, CPU-sized
    python benchmarks/rl_throughput.py --paper               # the paper's batch (20 / 40 tasks x 20+20 trajectories)
    python benchmarks/rl_throughput.py --envs navigation2d --first-order
    python benchmarks/rl_throughput.py --recompute            # also time the meta-iteration that recomputes
                                                              # the inner step in the loss (the old path)

Prints one row per environment; the last line is a JSON object with
``<env>_meta_steps_per_s`` and ``<env>_rollout_steps_per_s`` (and the
seconds per iteration and their ratio; with ``--recompute``,
``<env>_recompute_meta_s`` and ``<env>_recompute_over_reuse``).
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

from omni_jax import config as config_lib
from omni_jax.rl import acting
from omni_jax.rl import train as tr
from omni_jax.training import Chunk

CPU_SIZES = {"navigation2d": (20, 20), "halfcheetah_vel": (4, 5), "halfcheetah_dir": (4, 5)}


def timed(fn, *args, repeats: int):
    out = fn(*args)  # compile + warm up
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def bench_env(name: str, *, meta_batch: int, num_traj: int, method: str, first_order: bool, backend: str,
              repeats: int, recompute: bool = False) -> dict:
    cfg = config_lib.load_config(f"rl_{name}")
    cfg.env.backend = backend
    cfg.train.meta_batch, cfg.train.num_traj, cfg.train.first_order = meta_batch, num_traj, first_order
    env = tr.make_env_from_config(cfg)
    weights = config_lib.loss_weights(cfg.omni, method)
    policy, opt = tr.make_policy(cfg, env, method), tr.make_optimizer(cfg, weights)
    state = tr.init_state(cfg, env, policy, opt, method)
    step = Chunk(tr.make_step(cfg, env, policy, weights, opt), 1)
    pre_flows, meta_flows = tr.flows_of(weights)
    # useful trajectories: the first rollout + the query rollout (Omni-Training's pre-flow also acts in
    # the query phase of the two-phase scan, and those dropped samples are not counted)
    groups = len(set(pre_flows) | set(meta_flows)) + len(meta_flows)
    T = cfg.env.horizon
    steps = groups * meta_batch * num_traj * T

    t0 = time.perf_counter()
    jax.block_until_ready(step(state))
    compile_s = time.perf_counter() - t0
    meta_s = timed(lambda s: step(s)[0].params, state, repeats=repeats)

    apply = tr.make_apply(policy)
    tasks = env.sample_tasks(jax.random.PRNGKey(0), meta_batch)
    roll = jax.jit(lambda p, k: acting.episode_returns(
        acting.rollout(env, [(apply, "joint", False)], [p], tasks, k, num_traj=groups * num_traj, horizon=T)))
    roll_s = timed(roll, state.params, jax.random.PRNGKey(1), repeats=repeats)
    extra = {}
    if recompute:
        old = Chunk(tr.make_step(cfg, env, policy, weights, opt, reuse_adaptation=False), 1)
        extra["recompute_meta_s"] = timed(lambda s: old(s)[0].params, state, repeats=repeats)
        extra["recompute_over_reuse"] = extra["recompute_meta_s"] / meta_s
    return {**extra, "env": name, "method": method, "order": "first" if first_order else "second", "meta_batch": meta_batch,
            "num_traj": num_traj, "horizon": T, "env_steps": steps, "meta_s": meta_s, "rollout_s": roll_s,
            "ratio": meta_s / roll_s, "meta_steps_per_s": steps / meta_s, "rollout_steps_per_s": steps / roll_s,
            "compile_s": compile_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--envs", default="navigation2d,halfcheetah_vel")
    parser.add_argument("--paper", action="store_true", help="the paper's batch sizes (for a GPU)")
    parser.add_argument("--meta-batch", type=int, default=None)
    parser.add_argument("--num-traj", type=int, default=None, help="support (= query) trajectories per task")
    parser.add_argument("--method", default="maml", choices=tr.TRAINED_METHODS)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--backend", default="spring")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recompute", action="store_true",
                        help="also time the meta-iteration that recomputes the inner step in the loss")
    args = parser.parse_args(argv)

    print(f"{len(jax.devices())} x {jax.devices()[0].device_kind} ({jax.devices()[0].platform}); "
          f"method {args.method}, {'first' if args.first_order else 'second'}-order, backend {args.backend}")
    rows, summary = [], {}
    for name in args.envs.split(","):
        b, n = CPU_SIZES[name] if not args.paper else ((20, 20) if name == "navigation2d" else (40, 20))
        r = bench_env(name, meta_batch=args.meta_batch or b, num_traj=args.num_traj or n, method=args.method,
                      first_order=args.first_order, backend=args.backend, repeats=args.repeats,
                      recompute=args.recompute)
        rows.append(r)
        summary[f"{name}_meta_steps_per_s"] = round(r["meta_steps_per_s"], 1)
        summary[f"{name}_rollout_steps_per_s"] = round(r["rollout_steps_per_s"], 1)
        summary[f"{name}_meta_s"] = round(r["meta_s"], 4)
        summary[f"{name}_rollout_s"] = round(r["rollout_s"], 4)
        summary[f"{name}_meta_over_rollout"] = round(r["ratio"], 2)
        if args.recompute:
            summary[f"{name}_recompute_meta_s"] = round(r["recompute_meta_s"], 4)
            summary[f"{name}_recompute_over_reuse"] = round(r["recompute_over_reuse"], 2)
    print(f"{'env':<17}{'batch':>18}{'steps':>9}{'meta s':>9}{'rollout s':>11}{'ratio':>7}"
          f"{'meta steps/s':>14}{'rollout steps/s':>17}{'compile s':>11}"
          + (f"{'recompute s':>13}{'recompute/reuse':>17}" if args.recompute else ""))
    for r in rows:
        batch = f"{r['meta_batch']}x{r['num_traj']}x{r['horizon']}"
        print(f"{r['env']:<17}{batch:>18}{r['env_steps']:>9}{r['meta_s']:>9.3f}{r['rollout_s']:>11.4f}"
              f"{r['ratio']:>7.1f}{r['meta_steps_per_s']:>14.0f}{r['rollout_steps_per_s']:>17.0f}{r['compile_s']:>11.1f}"
              + (f"{r['recompute_meta_s']:>13.3f}{r['recompute_over_reuse']:>17.2f}" if args.recompute else ""))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
