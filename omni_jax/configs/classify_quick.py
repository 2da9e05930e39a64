"""``omni-jax classify --quick``: a smoke run of the whole pipeline.

:func:`shrink` makes the quick variant of any classification config
(``classify_glyphs_quick`` and ``classify_synthetic_quick`` use it).
"""
import ml_collections

from omni_jax.configs import classify


def shrink(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    c.train.num_steps = 40
    c.train.chunk_size = 10
    c.train.ckpt_every = 20
    c.train.val_every = 20
    c.train.val_tasks = 10
    c.train.batch_size = 16
    c.eval.num_tasks = 20
    c.eval.finetune_epochs = 10
    c.eval.maml_steps = 3
    return c


def get_config() -> ml_collections.ConfigDict:
    return shrink(classify.get_config())
