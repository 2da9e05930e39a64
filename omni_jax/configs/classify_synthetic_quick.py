"""``omni-jax classify --dataset synthetic --quick``: the synthetic config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_synthetic, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_synthetic.get_config())
