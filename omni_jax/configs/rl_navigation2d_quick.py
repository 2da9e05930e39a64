"""``omni-jax rl --env navigation2d --quick``: a smoke run of the whole pipeline."""
import ml_collections

from omni_jax.configs import rl_navigation2d


def get_config() -> ml_collections.ConfigDict:
    c = rl_navigation2d.get_config()
    c.train.num_steps = 20
    c.train.meta_batch = 10
    c.train.num_traj = 10
    c.train.chunk_size = 10
    c.train.ckpt_every = 10
    c.eval.num_tasks = 40
    c.eval.task_chunk = 20
    return c
