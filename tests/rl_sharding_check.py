"""Run in a subprocess by test_sharding.py, with 8 fake CPU devices.

The RL meta-iteration (sampling, advantages, the inner REINFORCE step, the
query rollout, the Omni-Loss gradient and the outer step) with the task batch
sharded over 8 devices gives the same parameters as on one device, and so
does the adaptation at evaluation.
"""
import os

assert "xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")

import chex  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from omni_jax import config as config_lib  # noqa: E402
from omni_jax.rl import evaluate as ev  # noqa: E402
from omni_jax.rl import train as tr  # noqa: E402
from omni_jax.omni import skipped_updates  # noqa: E402
from omni_jax.training import Chunk, replicate, task_mesh  # noqa: E402

assert len(jax.devices()) == 8, jax.devices()
mesh = task_mesh()
cfg = config_lib.load_config("rl_navigation2d", quick=True)
cfg = config_lib.apply_overrides(cfg, ["env.horizon=16", "train.meta_batch=8", "train.num_traj=4",
                                       "train.num_steps=4", "train.chunk_size=2", "train.ckpt_every=2",
                                       "eval.num_tasks=8", "eval.task_chunk=8", "eval.num_traj=4",
                                       "eval.max_steps=2"])
tr.check(cfg, mesh)
env = tr.make_env_from_config(cfg)

for method in ("maml", "omni"):
    weights = config_lib.loss_weights(cfg.omni, method)
    policy, opt = tr.make_policy(cfg, env, method), tr.make_optimizer(cfg, weights)
    state = tr.init_state(cfg, env, policy, opt, method)

    def run(m):
        chunk = Chunk(tr.make_step(cfg, env, policy, weights, opt, m), cfg.train.chunk_size)
        s = replicate(state, m)
        for _ in range(2):
            s, metrics = chunk(s)
        return s, metrics

    s1, m1 = run(None)
    s8, m8 = run(mesh)
    assert len(s8.params["params"]["mean"]["head"]["joint"]["kernel"].sharding.device_set) == 8
    assert int(skipped_updates(s1.opt_state)[1]) == 0
    chex.assert_trees_all_close(s8.params, s1.params, rtol=1e-4, atol=1e-5)
    chex.assert_trees_all_close(m8, m1, rtol=1e-4, atol=1e-4)
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(s1.params),
                                                             jax.tree_util.tree_leaves(state.params)))
    assert moved > 1e-4, moved  # the steps did update the policy
    print(f"{method} meta-iterations: sharded == single-device")

    entries = ev.entries_for({method: (policy, s1.params)})
    r1 = ev.adaptation_returns(cfg, env, entries)
    r8 = ev.adaptation_returns(cfg, env, entries, mesh=mesh)
    np.testing.assert_allclose(r8, r1, rtol=1e-4, atol=1e-4)
    print(f"{method} adaptation returns: sharded == single-device")
print("OK")
