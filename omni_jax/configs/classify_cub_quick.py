"""``omni-jax classify --config classify_cub --quick``: that config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_cub, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_cub.get_config())
