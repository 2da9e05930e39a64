"""``omni-jax sinusoid --quick``: a smoke run of the whole pipeline."""
import ml_collections

from omni_jax.configs import sinusoid


def get_config() -> ml_collections.ConfigDict:
    c = sinusoid.get_config()
    c.data.num_train_tasks = 2000
    c.train.num_steps = 500
    c.train.chunk_size = 50
    c.train.ckpt_every = 250
    c.train.val_every = 250
    c.eval.num_tasks = 25
    c.train.val_tasks = 25
    return c
