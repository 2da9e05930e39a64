"""``omni-jax classify --config classify_crossdomain --quick``: that config, shrunk as ``classify_quick``."""
import ml_collections

from omni_jax.configs import classify_crossdomain, classify_quick


def get_config() -> ml_collections.ConfigDict:
    return classify_quick.shrink(classify_crossdomain.get_config())
