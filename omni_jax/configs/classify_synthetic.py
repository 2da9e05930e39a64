"""Few-shot classification on synthetic images made in memory: the pipeline with no dataset files.

    omni-jax classify --quick                   # this config's quick variant

Small grey images like the glyphs', so it derives from ``classify_glyphs``.
"""
import ml_collections

from omni_jax.configs import classify_glyphs


def get_config() -> ml_collections.ConfigDict:
    c = classify_glyphs.get_config()
    c.data.dataset = "synthetic"
    c.data.synthetic = s = ml_collections.ConfigDict()
    s.classes = (32, 12, 12)        # classes of the train, val and test splits
    s.per_class = 30
    s.size = 28
    c.train.n_query = 16
    c.eval.n_query = 16
    c.eval.settings = ((5, 1), (5, 5))
    return c
