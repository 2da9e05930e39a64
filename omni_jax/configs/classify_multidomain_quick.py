"""``omni-jax classify --config classify_multidomain --quick``: that config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_multidomain, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_multidomain.get_config())
