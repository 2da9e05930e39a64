"""Few-shot classification on synthetic images made in memory: the pipeline with no dataset files.

    omni-jax classify --quick                   # this config's quick variant
"""
import ml_collections

from omni_jax.configs import classify


def get_config() -> ml_collections.ConfigDict:
    c = classify.get_config()
    c.data.dataset = "synthetic"
    c.data.image_size = 0
    c.data.crop_padding = 2
    c.data.flip = False
    c.data.jitter = 0.0
    c.data.synthetic = s = ml_collections.ConfigDict()
    s.classes = (32, 12, 12)        # classes of the train, val and test splits
    s.per_class = 30
    s.size = 28
    return c
