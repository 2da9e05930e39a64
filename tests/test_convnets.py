"""Convolutional Omni-Nets: pooling, flows, plain blocks, parameter counts, DropBlock."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.nn.convnets import (BACKBONES, DropBlock, FewShotNet, count_params, make_backbone, max_pool_2x2,
                                  max_pool_window)


@pytest.mark.parametrize("shape", [pytest.param((2, 8, 8, 3), marks=pytest.mark.slow), (2, 7, 5, 2)])
def test_reshape_max_pool_matches_reduce_window_values_and_grads(shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    np.testing.assert_allclose(max_pool_2x2(x), max_pool_window(x))
    w = jax.random.normal(jax.random.PRNGKey(1), max_pool_2x2(x).shape)
    g1 = jax.jit(jax.grad(lambda a: jnp.sum(max_pool_2x2(a) * w)))(x)
    g2 = jax.jit(jax.grad(lambda a: jnp.sum(max_pool_window(a) * w)))(x)
    np.testing.assert_allclose(g1, g2)


def _init(net, shape=(2, 28, 28, 1)):
    x = jax.random.uniform(jax.random.PRNGKey(3), shape)
    v = net.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x)
    return v, x


def _feat(net, v, x, flow):
    return net.apply(v, x, flow, output="features", train=False)


def test_conv4_omni_flows_differ_and_plain_flows_agree():
    net = FewShotNet(make_backbone("conv4", omni=True, width=8), num_classes=6)
    v, x = _init(net)
    f = {fl: _feat(net, v, x, fl) for fl in ("joint", "pre", "meta")}
    assert f["joint"].shape == (2, 8)  # 28 -> 14 -> 7 -> 3 -> 1
    assert not np.allclose(f["joint"], f["pre"]) and not np.allclose(f["pre"], f["meta"])
    blk = v["params"]["body"]["block0"]["conv"]
    assert set(blk) == {"joint", "pre", "meta"}
    assert blk["joint"]["kernel"].shape == (3, 3, 1, 8) and blk["pre"]["kernel"].shape == (1, 1, 1, 8)
    assert set(v["batch_stats"]["body"]["block0"]["bn"]) == {"joint", "pre", "meta"}
    assert set(v["params"]["head"]) == {"joint", "pre", "meta"}
    plain = FewShotNet(make_backbone("conv4", omni=False, width=8), num_classes=6, omni=False)
    pv, _ = _init(plain)
    np.testing.assert_allclose(_feat(plain, pv, x, "pre"), _feat(plain, pv, x, "meta"))
    assert set(pv["params"]["body"]["block0"]["conv"]) == {"joint"}


def test_num_plain_keeps_first_blocks_shared():
    net = FewShotNet(make_backbone("conv4", omni=True, num_plain=2, width=8), num_classes=6)
    v, _ = _init(net)
    body = v["params"]["body"]
    assert set(body["block0"]["conv"]) == {"joint"} and set(body["block1"]["conv"]) == {"joint"}
    assert set(body["block2"]["conv"]) == {"joint", "pre", "meta"}
    assert set(v["batch_stats"]["body"]["block1"]["bn"]) == {"joint"}


def _shapes(name, **kw):
    net = FewShotNet(make_backbone(name, **kw), num_classes=64, omni=kw.get("omni", True))
    x = jnp.zeros((2, 84, 84, 3))
    v = jax.eval_shape(lambda: net.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x))
    return count_params(v["params"]["body"])


@pytest.mark.slow
def test_resnet18_parameter_counts_match_the_paper_and_resnet18_star():
    plain, omni, star = _shapes("resnet18", omni=False), _shapes("resnet18"), _shapes("resnet18", omni=False, star=True)
    assert plain == 11_176_512  # torchvision ResNet-18 without fc
    assert round(omni / 1e6, 1) == 14.0  # paper: 11.17M -> 13.98M
    # ResNet-18* has the Omni conv weights exactly; the Omni net has 2 extra BN (scale, bias) copies per norm.
    # norm channels: stem 64, stage1 4x64, stage2 4x128+128, stage3 4x256+256, stage4 4x512+512
    norm_channels = 64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512
    assert omni - star == 4 * norm_channels


@pytest.mark.parametrize("name", [b for b in BACKBONES if b != "conv4"])
def test_resnets_build_and_give_pooled_features(name):
    net = FewShotNet(make_backbone(name, omni=True), num_classes=5)
    x = jnp.zeros((1, 28, 28, 3))
    out = jax.eval_shape(lambda: net.init_with_output(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x, "meta", output="features"))
    assert out[0].shape == (1, 640 if name == "resnet12" else 512)


def test_dropblock_is_identity_when_deterministic_and_drops_blocks_in_training():
    x = jnp.ones((4, 10, 10, 3))
    db = DropBlock(drop_rate=0.2, block_size=3)
    np.testing.assert_array_equal(db.apply({}, x, deterministic=True), x)
    y = db.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
    dropped = float(jnp.mean(y == 0))
    assert 0.1 < dropped < 0.35
    np.testing.assert_allclose(float(jnp.mean(y)), 1.0, rtol=1e-4)  # rescaled


def test_twin_network_uses_separate_networks_for_pre_and_meta():
    net = FewShotNet(make_backbone("conv4", omni=False, width=8), num_classes=6, omni=False, twin=True)
    v, x = _init(net)
    assert {"twin_backbones_0", "twin_backbones_1"} <= set(v["params"])
    assert not np.allclose(_feat(net, v, x, "pre"), _feat(net, v, x, "meta"))
    np.testing.assert_allclose(_feat(net, v, x, "pre"), _feat(net, v, x, "joint"))


def test_unknown_backbone_and_star_with_omni_are_errors():
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone("vgg")
    with pytest.raises(ValueError, match="star"):
        make_backbone("conv4", omni=True, star=True)


@pytest.mark.slow
def test_fused_omni_conv_equals_omni_conv_in_params_outputs_and_grads():
    fused = FewShotNet(make_backbone("conv4", omni=True, width=6, depth=2, fused=True), num_classes=4)
    plain = FewShotNet(make_backbone("conv4", omni=True, width=6, depth=2, fused=False), num_classes=4)
    v, x = _init(fused, (3, 12, 12, 2))
    vp, _ = _init(plain, (3, 12, 12, 2))
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(vp)
    for flow in ("joint", "pre", "meta"):
        f = lambda net: jax.jit(jax.value_and_grad(
            lambda p: jnp.sum(jnp.sin(net.apply({"params": p, "batch_stats": v["batch_stats"]}, x, flow,
                                                output="logits", train=False)))))(v["params"])
        (a, ga), (b, gb) = f(fused), f(plain)
        np.testing.assert_allclose(a, b, rtol=1e-4)
        jax.tree_util.tree_map(lambda u, w: np.testing.assert_allclose(u, w, rtol=1e-3, atol=1e-5), ga, gb)
