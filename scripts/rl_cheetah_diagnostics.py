"""Why REINFORCE learns slowly on HalfCheetah at the CPU size: what the first gradient steps see.

    python scripts/rl_cheetah_diagnostics.py --config rl_halfcheetah_vel_cpu --repeats 8 --batches config
    python scripts/rl_cheetah_diagnostics.py --config rl_halfcheetah_vel_cpu --repeats 4 --batches 40x20 --kernel-inits lecun_normal

Measured on the untrained policy of ``--config`` (its env, backend, horizon, kernel init and
log-std) for each ``--kernel-inits``, on batches of ``train.meta_batch`` tasks x ``train.num_traj``
trajectories (the CPU size) and of 40 tasks x 20 trajectories (the paper's; ``--batches``):

* returns: the untrained policy's mean return, and that of standing still (zero action);
* forward velocity of the untrained policy's trajectories (each trajectory's mean; their mean,
  spread and maximum): the signal the policy gradient has to find;
* tanh saturation: the fraction of first-layer units with |h| > 0.99 on the visited observations;
* the linear feature baseline: the fraction of the return-to-go variance it explains, in-sample
  and on held-out trajectories of the same task (fitted on the first half, applied to the second);
* the REINFORCE gradient: the cosine between gradients of independent batches, and the
  signal-to-noise ratio ||E g||^2 / E||g - E g||^2 of one batch's gradient (``--repeats`` batches).

With ``--meta``, instead MAML-RL's meta-iteration (the training step of ``--config``) on the
same batch sizes, from the untrained policy and, with ``--workdir``, from the MAML policy that run
selected: the return before and after the inner step on the same tasks (the adaptation's gain,
the signal the meta-gradient differentiates), and the meta-gradient's norm, cosine between batches
and signal-to-noise ratio:

    python scripts/rl_cheetah_diagnostics.py --meta --config rl_halfcheetah_dir_cpu --repeats 8 \
        --batches config,40x20 --workdir runs/cheetah_sel/dir

Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax import config as config_lib
from omni_jax.rl import acting, losses
from omni_jax.rl import train as tr
from omni_jax.rl.envs import make_env


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="rl_halfcheetah_vel_cpu")
    p.add_argument("--kernel-inits", default="lecun_normal,xavier_uniform")
    p.add_argument("--repeats", type=int, default=8, help="independent batches for the gradient statistics")
    p.add_argument("--batches", default="config,40x20",
                   help="comma-separated batch sizes, tasks x trajectories; 'config' is train.meta_batch x "
                        "train.num_traj")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--meta", action="store_true", help="MAML-RL's meta-gradient instead of REINFORCE's gradient")
    p.add_argument("--workdir", default=None,
                   help="with --meta: also measure from the MAML policy this work directory selected")
    return p.parse_args(argv)


VELOCITY_OBS = 8


def flat_grad(g):
    return jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(g)])


def explained_variance(y, pred, mask):
    """1 - Var(y - pred) / Var(y) over the valid steps."""
    n = jnp.sum(mask)
    mu = jnp.sum(y * mask) / n
    var = jnp.sum(jnp.square(y - mu) * mask) / n
    res = y - pred
    mres = jnp.sum(res * mask) / n
    return 1.0 - (jnp.sum(jnp.square(res - mres) * mask) / n) / var


def measure(cfg, kernel_inits, tasks_per_batch: int, num_traj: int, repeats: int, seed: int) -> list:
    """One row per kernel init for batches of ``tasks_per_batch`` x ``num_traj`` (one compilation)."""
    env = make_env(cfg.env.name, cfg.env.backend)
    T, discount = cfg.env.horizon, cfg.train.discount
    policy = tr.make_policy(cfg, env, "baseline")   # kernel_init only changes the parameters' values
    apply = tr.make_apply(policy)
    still = lambda p, o, f: (jnp.zeros(o.shape[:-1] + (env.action_size,)),
                             jnp.full(o.shape[:-1] + (env.action_size,), -30.0))

    def batch_stats(params, rng):
        k_task, k_roll = jax.random.split(rng)
        tasks = env.sample_tasks(k_task, tasks_per_batch)
        both = acting.rollout(env, [(apply, "joint", False), (still, "joint", False)], [params, params], tasks,
                              k_roll, num_traj=num_traj, horizon=T)
        traj, still_traj = acting.select(both, 0), acting.select(both, 1)
        traj = losses.add_advantages_batched(traj, discount)
        grad = jax.grad(lambda p: jnp.mean(jax.vmap(
            lambda t: losses.reinforce_task_loss(apply, p, t, "joint")[0])(traj)))(params)
        returns = losses.discounted_returns(traj["rewards"], traj["mask"], discount)

        def ev(t, r):   # the linear baseline in-sample, and fitted on the first half applied to the second
            h = num_traj // 2
            values, _ = losses.linear_baseline(t["obs"], r, t["mask"])
            feats = losses.baseline_features(t["obs"], t["mask"])
            w, _ = losses.ridge_fit(feats[:h].reshape(-1, feats.shape[-1]), r[:h].reshape(-1))
            return (explained_variance(r, values, t["mask"]),
                    explained_variance(r[h:], feats[h:] @ w, t["mask"][h:]))

        ev_in, ev_out = jax.vmap(ev)(traj, returns)
        layer0 = params["params"]["mean"]["backbone"]["layer0"]["joint"]
        h1 = jnp.tanh(traj["obs"] @ layer0["kernel"] + layer0["bias"])
        # the root's forward velocity is observation 8 (qvel[0]; Brax halfcheetah drops the x position)
        velocity = jnp.sum(traj["obs"][..., VELOCITY_OBS] * traj["mask"], -1) / jnp.sum(traj["mask"], -1)
        return {"grad": flat_grad(grad), "return": jnp.mean(acting.episode_returns(traj)),
                "still_return": jnp.mean(acting.episode_returns(still_traj)),
                "velocity": velocity.ravel(), "ev_in": jnp.mean(ev_in), "ev_out": jnp.mean(ev_out),
                "saturated": jnp.mean(jnp.abs(h1) > 0.99)}

    stats_fn = jax.jit(batch_stats)
    out = []
    for ki in kernel_inits:
        t0 = time.time()
        kcfg = config_lib.apply_overrides(cfg, [f"policy.kernel_init={ki}"])
        params = tr.make_policy(kcfg, env, "baseline").init(jax.random.PRNGKey(seed),
                                                             jnp.zeros((1, env.observation_size)))
        keys = jax.random.split(jax.random.PRNGKey(seed + 1), repeats)
        rows = [jax.device_get(stats_fn(params, k)) for k in keys]
        v = np.concatenate([r["velocity"] for r in rows])
        mean = lambda k: float(np.mean([r[k] for r in rows]))
        out.append({"kernel_init": ki, "batch": f"{tasks_per_batch}x{num_traj}", "return": mean("return"),
                    "still_return": mean("still_return"), "velocity_mean": float(v.mean()),
                    "velocity_sd": float(v.std()), "velocity_max": float(v.max()), "saturated": mean("saturated"),
                    "baseline_ev_in": mean("ev_in"), "baseline_ev_heldout": mean("ev_out"),
                    **gradient_stats(np.stack([r["grad"] for r in rows])), "seconds": round(time.time() - t0, 1)})
    return out


def gradient_stats(g: np.ndarray) -> dict:
    """Norm, mean pairwise cosine and SNR ``||E g||^2 / E||g - E g||^2`` of ``K`` gradients ``[K, D]``."""
    k = g.shape[0]
    mean_g = g.mean(0)
    noise = np.mean(np.sum(np.square(g - mean_g), axis=1)) * k / max(k - 1, 1)
    # ||E g||^2, less the noise's own share of ||mean of K gradients||^2
    signal = max(float(np.sum(mean_g ** 2) - noise / k), 0.0)
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    return {"grad_norm": float(np.mean(np.linalg.norm(g, axis=1))),
            "grad_cos": float(np.mean((unit @ unit.T)[np.triu_indices(k, 1)])),
            "grad_snr": float(signal / noise) if noise > 0 else float("inf")}


def measure_meta(cfg, starts: dict, tasks_per_batch: int, num_traj: int, repeats: int, seed: int) -> list:
    """MAML-RL's training step (``omni_jax.rl.train.make_step``) on batches of ``tasks_per_batch`` x
    ``num_traj`` (+ as many query trajectories), from each of ``starts`` (``{name: params}``): one row
    each. The meta-gradient is read off an outer SGD step of lr 1 (``params - new params``)."""
    cfg = config_lib.apply_overrides(cfg, [f"train.meta_batch={tasks_per_batch}", f"train.num_traj={num_traj}",
                                           "train.outer_optimizer=sgd", "train.outer_lr=1.0", "train.task_chunk=1"])
    env = make_env(cfg.env.name, cfg.env.backend)
    weights = config_lib.loss_weights(cfg.omni, "maml")
    policy = tr.make_policy(cfg, env, "maml")
    optimizer = tr.make_optimizer(cfg, weights)
    step = jax.jit(tr.make_step(cfg, env, policy, weights, optimizer))
    out = []
    for name, params in starts.items():
        t0 = time.time()
        state = tr.init_state(cfg, env, policy, optimizer, "maml")
        state = state.replace(params=params, opt_state=optimizer.init(params))
        rows = []
        for k in jax.random.split(jax.random.PRNGKey(seed + 1), repeats):
            new, m = step(state.replace(rng=k))
            g = flat_grad(jax.tree_util.tree_map(lambda a, b: a - b, params, new.params))
            rows.append({"grad": np.asarray(g), "before": float(m["return/joint"]),
                         "after": float(m["return/joint_adapted"]), "norm": float(m["grad_norm"])})
        gain = np.array([r["after"] - r["before"] for r in rows])
        out.append({"start": name, "batch": f"{tasks_per_batch}x{num_traj}",
                    "return": float(np.mean([r["before"] for r in rows])),
                    "adapted_return": float(np.mean([r["after"] for r in rows])),
                    "inner_gain": float(gain.mean()), "inner_gain_se": float(gain.std(ddof=1) / np.sqrt(len(gain))),
                    **gradient_stats(np.stack([r["grad"] for r in rows])),
                    "step_grad_norm": float(np.mean([r["norm"] for r in rows])),   # the step's own, as a check
                    "seconds": round(time.time() - t0, 1)})
    return out


def meta_starts(cfg, workdir, seed: int) -> dict:
    """``{name: params}``: the untrained MAML policy, and the one ``workdir`` selected."""
    env = make_env(cfg.env.name, cfg.env.backend)
    starts = {"untrained": tr.make_policy(cfg, env, "maml").init(jax.random.PRNGKey(seed),
                                                                  jnp.zeros((1, env.observation_size)))}
    if workdir:
        from omni_jax.rl.experiment import trained_models
        starts["trained"] = trained_models(cfg, workdir, ("maml",))["maml"][1]
    return starts


def main(argv=None):
    args = parse_args(argv)
    cfg = config_lib.load_config(args.config)
    sizes = [(cfg.train.meta_batch, cfg.train.num_traj) if b == "config" else tuple(int(x) for x in b.split("x"))
             for b in args.batches.split(",")]
    if args.meta:
        starts = meta_starts(cfg, args.workdir, args.seed)
        rows = [r for b, n in sizes for r in measure_meta(cfg, starts, b, n, args.repeats, args.seed)]
        cols = ["start", "batch", "return", "adapted_return", "inner_gain", "inner_gain_se", "grad_norm", "grad_cos",
                "grad_snr", "seconds"]
        what = "MAML-RL meta-iteration"
    else:
        rows = [r for b, n in sizes for r in measure(cfg, args.kernel_inits.split(","), b, n, args.repeats,
                                                     args.seed)]
        cols = ["kernel_init", "batch", "return", "still_return", "velocity_mean", "velocity_sd", "velocity_max",
                "saturated", "baseline_ev_in", "baseline_ev_heldout", "grad_norm", "grad_cos", "grad_snr", "seconds"]
        what = "untrained policy"
    print(f"{args.config}: env {cfg.env.name} ({cfg.env.backend}), horizon {cfg.env.horizon}, {what}, "
          f"{args.repeats} batches per row")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    print(json.dumps({"config": args.config, "rows": rows}))


if __name__ == "__main__":
    main()
