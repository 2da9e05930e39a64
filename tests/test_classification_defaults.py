"""Issue 12's defaults: ProtoNet's training distance (train.proto_distance) and the backbones'
convolution initialisation (model.conv_init), both in the checkpoint fingerprint."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import config as config_lib
from omni_jax.algorithms.protonet import euclidean_distances, proto_logits, protonet
from omni_jax.classification.experiment import check, fingerprint
from omni_jax.classification.train import TrainConfig, meta_algorithm
from omni_jax.classification.methods import method_spec
from omni_jax.errors import OmniJaxError
from omni_jax.nn.convnets import Conv4, ResNet, ResNet12, make_backbone
from omni_jax.nn.layers import CONV_INITS, conv_initializer

# A 2-way 1-shot episode in 2-D feature space (the identity embedding): prototypes (0, 0) and (3, 4).
SUPPORT = np.array([[0.0, 0.0], [3.0, 4.0]])
QUERIES = np.array([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
LABELS = np.array([0, 1, 1])


def _episode():
    f32 = lambda a: jnp.asarray(a, jnp.float32)[None]
    return {"support": {"x": f32(SUPPORT), "y": jnp.asarray([[0, 1]])},
            "query": {"x": f32(QUERIES), "y": jnp.asarray(LABELS)[None]}}


def test_euclidean_protonet_matches_a_hand_computation():
    # distances to (0,0) and (3,4): query (0,0): 0 and 5; (3,0): 3 and 4; (6,8): 10 and 5
    d = np.array([[0.0, 5.0], [3.0, 4.0], [10.0, 5.0]])
    want_loss = np.mean([-math.log(math.exp(-d[i, y]) / np.exp(-d[i]).sum()) for i, y in enumerate(LABELS)])
    loss, logits = protonet(lambda p, x, flow: x, 2)(None, _episode(), "meta")
    np.testing.assert_allclose(logits[0], -d, atol=1e-5)
    assert float(loss) == pytest.approx(want_loss, rel=1e-5)
    # the squared distance, as before issue 12: 0, 25; 9, 16; 100, 25
    loss2, logits2 = protonet(lambda p, x, flow: x, 2, distance="squared")(None, _episode(), "meta")
    np.testing.assert_allclose(logits2[0], -d ** 2, atol=1e-4)
    want2 = np.mean([-math.log(math.exp(-d[i, y] ** 2) / np.exp(-d[i] ** 2).sum()) for i, y in enumerate(LABELS)])
    assert float(loss2) == pytest.approx(want2, rel=1e-5)
    _, probs = protonet(lambda p, x, flow: x, 2, outputs="probs")(None, _episode(), "meta")
    np.testing.assert_allclose(probs[0], np.exp(-d) / np.exp(-d).sum(1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="distance must be one of euclidean, squared"):
        protonet(lambda p, x, flow: x, 2, distance="cosine")


def test_euclidean_gradient_is_finite_where_a_query_equals_its_prototype_and_matches_differences():
    # query 0 equals its prototype (d = 0): the bare sqrt's gradient would be inf/nan there
    scale = jnp.asarray(1.5)
    grad = jax.grad(lambda s: protonet(lambda p, x, flow: p * x, 2)(s, _episode(), "meta")[0])(scale)
    assert np.isfinite(float(grad))
    g = jax.grad(lambda q: jnp.sum(euclidean_distances(q, jnp.asarray(SUPPORT, jnp.float32))))(
        jnp.asarray(QUERIES, jnp.float32))
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(g[0], [-0.6, -0.8], atol=1e-6)   # d|q-c1|/dq at c0: 0 + (q-c1)/5
    # away from d = 0, the loss's gradient in the embedding scale against float64 central differences
    def loss64(s):
        c = SUPPORT * s
        q = QUERIES * s
        d = np.sqrt(((q[:, None] - c[None]) ** 2).sum(-1))
        logp = -d - np.log(np.exp(-d).sum(1, keepdims=True))
        return -np.mean(logp[np.arange(3), LABELS])
    h = 1e-6
    fd = (loss64(1.5 + h) - loss64(1.5 - h)) / (2 * h)
    assert float(grad) == pytest.approx(fd, rel=1e-4)


class _Thread:
    """The smallest StatsThread stand-in: the embedding is the identity."""

    def fn(self, output):
        return lambda params, x, flow: x


def test_the_training_step_and_the_omni_loss_use_train_proto_distance():
    spec = method_spec("omni_proto")
    for distance, power in (("euclidean", 1), ("squared", 2)):
        tc = TrainConfig(n_way=2, proto_distance=distance)
        _, probs = meta_algorithm(_Thread(), spec, tc)(None, _episode(), "meta")   # R_meta's target: probs
        d = np.array([[0.0, 5.0], [3.0, 4.0], [10.0, 5.0]]) ** power
        np.testing.assert_allclose(probs[0], np.exp(-d) / np.exp(-d).sum(1, keepdims=True), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(proto_logits(jnp.asarray(SUPPORT), jnp.asarray([0, 1]), jnp.asarray(QUERIES), 2,
                                            "squared")[2], [-100.0, -25.0], rtol=1e-6)


def _kernels(tree, path=()):
    """``(path, kernel)`` of every 4-D convolution kernel of a params tree."""
    out = []
    for k, v in tree.items():
        if isinstance(v, dict):
            out += _kernels(v, path + (k,))
        elif k == "kernel" and v.ndim == 4:
            out.append(("/".join(path), np.asarray(v)))
    return out


EXPECTED_STD = {"torch": lambda fan_in: 1.0 / math.sqrt(3.0 * fan_in),
                "he_normal": lambda fan_in: math.sqrt(2.0 / fan_in),
                "lecun_normal": lambda fan_in: 1.0 / math.sqrt(fan_in)}


@pytest.mark.parametrize("name,kw", [
    ("conv4 omni (fused)", dict(module=Conv4, width=32, depth=2, omni=True)),
    ("conv4 plain", dict(module=Conv4, width=32, depth=2, omni=False)),
    ("conv4 star", dict(module=Conv4, width=32, depth=2, omni=False, star=True)),
    pytest.param("resnet omni (strided OmniConv)", dict(module=ResNet, stages=(1, 1), widths=(16, 32), omni=True),
                 marks=pytest.mark.slow),
    pytest.param("resnet12 plain", dict(module=ResNet12, widths=(16, 32), omni=False), marks=pytest.mark.slow),
])
def test_model_conv_init_sets_every_backbone_convolution(name, kw):
    kw = dict(kw)
    module = kw.pop("module")
    x = jnp.zeros((2, 28, 28, 1))
    for init, std_of in EXPECTED_STD.items():
        net = module(conv_init=init, **kw)
        params = net.init(jax.random.PRNGKey(0), x)["params"]
        kernels = _kernels(params)
        assert len(kernels) >= 2, name
        # each kernel divided by its expected std: together a unit-variance sample
        z = np.concatenate([(w / std_of(w.shape[0] * w.shape[1] * w.shape[2])).ravel() for _, w in kernels])
        assert z.size > 5000
        assert np.std(z) == pytest.approx(1.0, abs=0.06), (name, init)
        if init == "torch":   # PyTorch's kaiming_uniform(a=√5): U(±1/√fan_in), |w|·√fan_in ≤ 1
            bounds = [np.abs(w).max() * math.sqrt(w.shape[0] * w.shape[1] * w.shape[2]) for _, w in kernels]
            assert max(bounds) <= 1.0 + 1e-6
            assert min(b for b, (_, w) in zip(bounds, kernels) if w.size >= 500) > 0.98   # and reaches it
    # the default is PyTorch's, and the choice takes effect: He-normal's kernels are √6 times larger
    base = np.concatenate([w.ravel() for _, w in _kernels(module(**kw).init(jax.random.PRNGKey(0), x)["params"])])
    he = np.concatenate([w.ravel() for _, w in
                         _kernels(module(conv_init="he_normal", **kw).init(jax.random.PRNGKey(0), x)["params"])])
    assert np.std(he) / np.std(base) == pytest.approx(math.sqrt(6.0), rel=0.08)


def test_an_unknown_conv_init_is_an_error_naming_the_field():
    assert set(CONV_INITS) == {"torch", "he_normal", "lecun_normal"}
    with pytest.raises(OmniJaxError, match="model.conv_init='kaiming'.*torch, he_normal, lecun_normal"):
        conv_initializer("kaiming")
    with pytest.raises(OmniJaxError, match="model.conv_init"):
        make_backbone("conv4", conv_init="xavier")
    cfg = config_lib.apply_overrides(config_lib.load_config("classify_glyphs"), ["model.conv_init=xavier"])
    with pytest.raises(OmniJaxError, match="config field model.conv_init='xavier' is unknown"):
        check(cfg)
    cfg = config_lib.apply_overrides(config_lib.load_config("classify_glyphs"), ["train.proto_distance=cosine"])
    with pytest.raises(OmniJaxError, match="config field train.proto_distance must be one of euclidean, squared"):
        check(cfg)


def test_the_defaults_are_in_the_fingerprint_and_an_older_work_directory_is_refused(tmp_path):
    from omni_jax.training.checkpoint import CheckpointStore
    cfg = config_lib.load_config("classify_glyphs")
    assert cfg.model.conv_init == "torch" and cfg.train.proto_distance == "euclidean"
    fp = fingerprint(cfg, "protonet")
    assert fp["model"]["conv_init"] == "torch" and fp["train"]["proto_distance"] == "euclidean"
    other = fingerprint(config_lib.apply_overrides(cfg, ["train.proto_distance=squared"]), "protonet")
    assert other != fp
    old = fingerprint(cfg, "protonet")
    del old["model"]["conv_init"], old["train"]["proto_distance"]   # a work directory from before issue 12
    CheckpointStore(tmp_path, old).save(0, {"x": 1})
    with pytest.raises(OmniJaxError, match="model.conv_init \\(was '<missing>', now 'torch'\\)"):
        CheckpointStore.peek(tmp_path, fp)


@pytest.mark.slow
@pytest.mark.parametrize("module,kw", [(Conv4, dict(width=8, depth=2, omni=True)),
                                       (ResNet, dict(stages=(1, 1), widths=(8, 16), omni=True)),
                                       (ResNet12, dict(widths=(8, 16), omni=False, drop_rate=0.0))])
def test_every_backbone_is_invariant_to_the_scale_of_its_conv_kernels(module, kw):
    """Why the initialisation acts as a learning rate (README, docs/classification_accuracy.md): every
    convolution is followed by BatchNorm before any sum, so scaling all kernels by √6 (He-normal
    against PyTorch's default) leaves the training-mode outputs unchanged up to BatchNorm's ε (which
    matters only for a channel whose pre-BatchNorm variance is near ε = 1e-5: a 1x1 convolution of a
    one-channel image has a single weight per channel, so the inputs here have 3 unit-variance channels)."""
    net = module(**kw)
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 28, 28, 3))
    variables = net.init(jax.random.PRNGKey(0), x)
    scaled = jax.tree_util.tree_map_with_path(
        lambda p, v: v * math.sqrt(6.0) if p[-1].key == "kernel" and v.ndim == 4 else v, variables["params"])
    for flow in ("joint", "meta"):
        out = lambda params: net.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, flow,
                                       bn_train=True, mutable=["batch_stats"])[0]
        a, b = out(variables["params"]), out(scaled)
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(a))))
        assert float(jnp.max(jnp.abs(a))) > 0.1
