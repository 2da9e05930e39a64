"""The offline glyph benchmark (``omni-jax data glyphs``), paper §6.1's protocol on rendered fonts.

    omni-jax classify --dataset glyphs:cross_task --data-dir DIR --method omni_proto,protonet,baseline

Glyphs keep their stored 28x28 size and get a small random crop only (a flip
makes another character); 15 queries per class (every class has >= 20 faces);
tested 5-way and 20-way, 1-shot and 5-shot.
"""
import ml_collections

from omni_jax.configs import classify


def get_config() -> ml_collections.ConfigDict:
    c = classify.get_config()
    c.data.dataset = "glyphs:cross_task"
    c.data.image_size = 0
    c.data.crop_padding = 2
    c.data.flip = False
    c.data.jitter = 0.0
    c.train.n_query = 15
    c.eval.n_query = 15
    c.eval.settings = ((5, 1), (5, 5), (20, 1), (20, 5))
    return c
