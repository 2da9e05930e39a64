"""``omni-jax rl --env halfcheetah_vel --quick``: a smoke run of the whole pipeline (mostly compiling)."""
import ml_collections

from omni_jax.configs import rl_halfcheetah_vel


def shrink(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The smoke run's sizes, applied to a HalfCheetah config."""
    c.train.num_steps = 4
    c.train.meta_batch = 4
    c.train.num_traj = 4
    c.train.chunk_size = 2
    c.train.ckpt_every = 2
    c.eval.num_tasks = 8
    c.eval.num_traj = 4
    c.eval.task_chunk = 8
    return c


def get_config() -> ml_collections.ConfigDict:
    return shrink(rl_halfcheetah_vel.get_config())
