"""Table 4 (§6.1, Multi-domain, first setting) as the paper runs it, with Tseng et al.'s protocol
and split: one training on mini-ImageNet, model selection on mini-ImageNet's validation split,
tested on CUB, Cars, Places and Plantae; ResNet-10 at 224x224 ("Following [79], we use ResNet-10
on the Multi-domain dataset").

    omni-jax classify --config classify_crossdomain --data-dir CD --config.data.dirs=miniimagenet=MINI \
        --method omni_proto,protonet,gnn

``CD`` holds the cross-domain benchmark's ``cub/``, ``cars/``, ``places/`` and ``plantae/`` folders of
``base.json``/``val.json``/``novel.json``; ``MINI`` is mini-ImageNet (full-size images: see
``classify_miniimagenet``). ``classify_multidomain`` (Table 5) derives from this file.
"""
import ml_collections

from omni_jax.configs import classify


def get_config() -> ml_collections.ConfigDict:
    c = classify.get_config()
    c.data.dataset = "miniimagenet"
    c.data.test_dataset = "crossdomain_cub,crossdomain_cars,crossdomain_places,crossdomain_plantae"
    c.data.select_on = "train"
    c.data.image_size = 224
    c.data.crop_padding = 21        # the random crop shifts by up to 8/84 of the side, as at 84 px
    c.model.backbone = "resnet10"
    return c
