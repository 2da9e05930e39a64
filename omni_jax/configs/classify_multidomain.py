"""Table 5 (§6.1, Multi-domain, leave-one-out) as the paper runs it, with Tseng et al.'s protocol:
train on four of mini-ImageNet, CUB, Cars, Places and Plantae, each episode's classes from one of
them (domains balanced: ``data.domain_episodes``), select on mini-ImageNet's validation split
(``data.select_on``), test on the fifth; ResNet-10 at 224x224. One column per run:

    omni-jax classify --config classify_multidomain --dataset loo:crossdomain_cars --data-dir CD \
        --config.data.dirs=miniimagenet=MINI --method omni_proto,protonet,gnn

Folders as in ``classify_crossdomain``, which this file derives from.
"""
import ml_collections

from omni_jax.configs import classify_crossdomain


def get_config() -> ml_collections.ConfigDict:
    c = classify_crossdomain.get_config()
    c.data.dataset = "loo:crossdomain_cub"
    c.data.test_dataset = ""
    c.data.domain_episodes = "balanced"
    return c
