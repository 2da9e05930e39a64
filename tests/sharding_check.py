"""Run in a subprocess by test_sharding.py, with 8 fake CPU devices.

Checks that the Omni-Loss gradients and a few training steps with the task
batch sharded over 8 devices match the single-device computation, and that a
meta-batch that does not divide over the devices is a clear CLI error.
"""
import os
import sys

assert "xla_force_host_platform_device_count=8" in os.environ.get("XLA_FLAGS", "")

import chex  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from omni_jax import config as config_lib  # noqa: E402
from omni_jax.omni import teacher_params  # noqa: E402
from omni_jax.sinusoid import train as tr  # noqa: E402
from omni_jax.training import Chunk, replicate, task_mesh  # noqa: E402

assert len(jax.devices()) == 8, jax.devices()
mesh = task_mesh()
cfg = config_lib.load_config("sinusoid", quick=True)
cfg = config_lib.apply_overrides(cfg, ["train.meta_batch=16", "train.pre_batch=64", "data.num_train_tasks=100",
                                       "train.num_steps=20", "train.chunk_size=5"])
tr.check(cfg, mesh)
weights = config_lib.loss_weights(cfg.omni, "omni")
model = tr.make_model(cfg, "omni")
opt = tr.make_optimizer(cfg, weights)
state = tr.init_state(cfg, model, opt, "omni")
data = tr.training_set(cfg)
batch, episode = tr.sample_data(cfg, jax.random.PRNGKey(7), data, weights)
loss_fn = tr.make_loss_fn(cfg, model, weights)
teacher = jax.tree_util.tree_map(lambda a: a * 1.01, teacher_params(state.opt_state))
grad = jax.jit(jax.grad(lambda p, t, b, e: loss_fn(p, t, b, e)[0]))

single = grad(state.params, teacher, batch, episode)
sharded_inputs = jax.device_put((batch, episode), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("tasks")))
assert len(sharded_inputs[1]["support"]["x"].sharding.device_set) == 8
sharded = grad(replicate(state.params, mesh), replicate(teacher, mesh), *sharded_inputs)
chex.assert_trees_all_close(sharded, single, rtol=2e-5, atol=1e-6)
print("gradients: sharded == single-device")

# Whole training chunks: the step constrains the sampled batch to the mesh itself.
def run(m):
    chunk = Chunk(tr.make_step(cfg, model, weights, opt, m), 5)
    s = replicate(state, m)
    d = replicate(data, m)
    for _ in range(2):
        s, metrics = chunk(s, d)
    return s, metrics

s1, _ = run(None)
s8, _ = run(mesh)
chex.assert_trees_all_close(s8.params, s1.params, rtol=1e-4, atol=1e-5)
print("training steps: sharded == single-device")

from omni_jax.cli import main  # noqa: E402
code = main(["sinusoid", "--quick", "--no-progress", "--workdir", sys.argv[1], "--config.train.meta_batch=25"])
assert code == 2, code
assert not os.path.exists(sys.argv[1])
print("meta-batch 25 over 8 devices: rejected")
print("OK")
