"""``omni-jax classify --dataset glyphs --quick``: the glyphs config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_glyphs, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_glyphs.get_config())
