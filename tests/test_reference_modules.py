"""The GNN and RelationNet's relation module against their reference code (issue 27): the GNN's
layer shapes and parameter count against the constructors of Garcia & Bruna's ``GNN_nl`` as Tseng
et al. use it, the test-time BatchNorm of both modules (``model.head_bn``), and the relation
module on the feature maps of every backbone at 84 and 224 px (shapes only, ``jax.eval_shape``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.algorithms.episodic import EpisodeBatchNorm
from omni_jax.algorithms.gnn import GraphConv, GraphNetwork
from omni_jax.algorithms.relationnet import RelationModule
from omni_jax.classification.methods import method_spec
from omni_jax.classification.model import StatsThread, build_net, eval_module, init_variables
from omni_jax.classification.train import TrainConfig, meta_algorithm


def _count(tree) -> int:
    return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))


# ---------------------------------------------------------------------------- GNN: the reference's layer shapes


def _linear(fan_in, fan_out):
    """``nn.Linear(fan_in, fan_out)`` or ``nn.Conv2d(fan_in, fan_out, 1)`` (weight [out, in(, 1, 1)], bias [out])
    as a Dense layer: kernel [in, out], bias [out]."""
    return {"kernel": (fan_in, fan_out), "bias": (fan_out,)}


def _bn(features):
    """``nn.BatchNorm1d/2d(features)``: weight and bias (the running statistics are buffers, not parameters)."""
    return {"scale": (features,), "bias": (features,)}


def _wcompute(input_features, nf):
    """Tseng et al.'s ``methods/gnn.py`` ``Wcompute(input_features, nf, ratio=[2, 2, 1, 1])``: conv2d_1
    input_features -> 2·nf, conv2d_2 2·nf -> 2·nf, conv2d_3 2·nf -> nf, conv2d_4 nf -> nf, each with
    bn_1..bn_4, and conv2d_last nf -> 1 (num_operators)."""
    return {"layer0": _linear(input_features, 2 * nf), "bn0": _bn(2 * nf),
            "layer1": _linear(2 * nf, 2 * nf), "bn1": _bn(2 * nf),
            "layer2": _linear(2 * nf, nf), "bn2": _bn(nf),
            "layer3": _linear(nf, nf), "bn3": _bn(nf),
            "last": _linear(nf, 1)}


def _gconv(nf_input, nf_output, bn_bool=True):
    """``Gconv(nf_input, nf_output, J=2, bn_bool)``: fc Linear(2·nf_input, nf_output), bn(nf_output)."""
    return dict({"fc": _linear(2 * nf_input, nf_output)}, **({"bn": _bn(nf_output)} if bn_bool else {}))


def _reference_gnn(feat_dim, embed_dim, nf, n_way):
    """``GnnNet``: fc = Linear(feat_dim, 128) + BatchNorm1d(128); gnn = GNN_nl(128 + n_way, 96, n_way)
    (here embed_dim and nf for 128 and 96), whose layer i of num_layers = 2 reads
    input_features + int(nf / 2)·i features, and whose last layer reads input_features + int(nf / 2)·2."""
    f0, half = embed_dim + n_way, nf // 2
    return {"embed": _linear(feat_dim, embed_dim), "embed_bn": _bn(embed_dim),
            "adjacency0": _wcompute(f0, nf), "gconv0": _gconv(f0, half),
            "adjacency1": _wcompute(f0 + half, nf), "gconv1": _gconv(f0 + half, half),
            "adjacency_last": _wcompute(f0 + 2 * half, nf), "gconv_last": _gconv(f0 + 2 * half, n_way, bn_bool=False)}


@pytest.mark.parametrize("feat_dim,embed_dim,nf,n_way,total", [
    # Tseng et al.'s GnnNet on ResNet-10/18 features: 65,920 (fc) + 91,873 + 101,089 + 110,305 (Wcompute,
    # first layers 133, 181, 229 -> 192) + 12,912 + 17,520 + 2,295 (Gconv) = 401,914
    (512, 128, 96, 5, 401_914),
    # 2,752 (fc) + 12,065 + 13,089 + 14,113 (67, 83, 99 -> 64) + 2,192 + 2,704 + 597 = 47,512
    (40, 64, 32, 3, 47_512),
])
@pytest.mark.parametrize("bn", ["batch", "running"])
def test_gnn_layers_have_the_reference_shapes_and_parameter_count(feat_dim, embed_dim, nf, n_way, total, bn):
    net = GraphNetwork(embed_dim=embed_dim, nf=nf, bn=bn)
    sf, qf = jnp.zeros((1, n_way, feat_dim)), jnp.zeros((1, n_way, feat_dim))
    v = jax.eval_shape(net.init, jax.random.PRNGKey(0), sf, jax.nn.one_hot(jnp.arange(n_way)[None], n_way), qf)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, v["params"])
    want = _reference_gnn(feat_dim, embed_dim, nf, n_way)
    assert set(shapes) == set(want)
    for layer in want:   # layer by layer, for a readable failure
        assert shapes[layer] == want[layer], layer
    assert _count(v["params"]) == total
    if bn == "batch":   # track_running_stats=False: no running statistics at all
        assert "batch_stats" not in v
    else:               # a running mean and variance for each BatchNorm's scale and bias
        bn_sizes = [int(np.prod(shape)) for layer, d in want.items() for name, p in d.items()
                    for shape in ((p,) if layer == "embed_bn" else p.values() if name.startswith("bn") else ())]
        assert _count(v["batch_stats"]) == sum(bn_sizes)


# ---------------------------------------------------------------------------- test-time BatchNorm (model.head_bn)


def test_episode_batch_norm_normalises_each_episode_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=3.0, scale=2.0, size=(6, 2, 4)).astype(np.float32)   # 2 episodes of 3 rows
    x[3:] += 10.0
    layer = EpisodeBatchNorm()
    v = layer.init(jax.random.PRNGKey(0), jnp.asarray(x), 2)
    assert set(v) == {"params"}                                            # no running statistics
    scale, bias = np.array([0.5, 1.0, 2.0, -1.0], np.float32), np.array([0.0, 1.0, -2.0, 3.0], np.float32)
    v = {"params": {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias)}}
    y = np.asarray(layer.apply(v, jnp.asarray(x), 2))
    for e in (0, 1):
        blk = x[3 * e:3 * e + 3].astype(np.float64)
        mean, var = blk.mean(axis=(0, 1)), blk.var(axis=(0, 1))           # biased, as torch normalises
        np.testing.assert_allclose(y[3 * e:3 * e + 3], (blk - mean) / np.sqrt(var + 1e-5) * scale + bias,
                                   rtol=1e-4, atol=1e-5)
    # one episode of all 6 rows: the statistics of both blocks together
    blk = x.astype(np.float64)
    np.testing.assert_allclose(layer.apply(v, jnp.asarray(x), 1),
                               (blk - blk.mean((0, 1))) / np.sqrt(blk.var((0, 1)) + 1e-5) * scale + bias,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not 4 equal episodes"):
        layer.apply(v, jnp.asarray(x), 4)


def test_gconv_at_test_uses_each_episodes_statistics_with_batch_by_hand():
    """``Gconv`` (Dense([x, A x]), BatchNorm) at test on 2 episodes of one 3-node graph: with "batch" as
    a hand computation with each episode's statistics; with "running" the running averages (here the
    initial mean 0, variance 1), which differ on this input."""
    rng = np.random.default_rng(1)
    x = rng.normal(loc=2.0, size=(2, 3, 2)).astype(np.float32)
    a = np.asarray(jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 3, 3)), jnp.float32), -1))
    outs = {}
    for bn in ("batch", "running"):
        layer = GraphConv(4, bn=bn)
        v = layer.init(jax.random.PRNGKey(0), jnp.asarray(a), jnp.asarray(x))
        params = jax.tree_util.tree_map(np.asarray, v["params"])
        params["bn"] = {"scale": np.array([1.0, 2.0, 0.5, 1.5], np.float32),
                        "bias": np.array([0.1, -0.2, 0.3, 0.0], np.float32)}
        outs[bn] = np.asarray(layer.apply(dict(v, params=params), jnp.asarray(a), jnp.asarray(x), False, 2))
    k, b = params["fc"]["kernel"].astype(np.float64), params["fc"]["bias"].astype(np.float64)
    s, beta = params["bn"]["scale"], params["bn"]["bias"]
    for e in (0, 1):
        y = np.concatenate([x[e], a[e] @ x[e]], axis=-1) @ k + b                # [3, 4]
        np.testing.assert_allclose(outs["batch"][e], (y - y.mean(0)) / np.sqrt(y.var(0) + 1e-5) * s + beta,
                                   rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(outs["running"][e], y / np.sqrt(1.0 + 1e-5) * s + beta, rtol=1e-4, atol=1e-5)
    assert np.abs(outs["batch"] - outs["running"]).max() > 0.1


def _relation_inputs(rng, t, n=3, k=2, q=2, hw=5, c=4):
    fs = jnp.asarray(rng.normal(loc=1.0, size=(t, n * k, hw, hw, c)), jnp.float32)
    fq = jnp.asarray(rng.normal(loc=1.0, size=(t, n * q, hw, hw, c)), jnp.float32)
    oh = jax.nn.one_hot(jnp.tile(jnp.repeat(jnp.arange(n), k), (t, 1)), n)
    return fs, oh, fq


def test_relation_module_at_test_with_batch_is_each_episode_in_training_mode():
    """The same parameters (both modes name them alike): at test, "batch" gives each episode what
    "running" gives it in training mode on that episode alone (its own statistics), whatever other
    episodes share the batch; "running" at test (running averages) gives something else."""
    rng = np.random.default_rng(2)
    fs, oh, fq = _relation_inputs(rng, t=2)
    running, batch = RelationModule(bn="running"), RelationModule(bn="batch")
    v = jax.jit(running.init)(jax.random.PRNGKey(0), fs, oh, fq)
    assert "batch_stats" in v and "batch_stats" not in jax.eval_shape(batch.init, jax.random.PRNGKey(0), fs, oh, fq)
    apply_batch = jax.jit(batch.apply, static_argnames="train")
    at_test = np.asarray(apply_batch({"params": v["params"]}, fs, oh, fq, train=False))
    assert at_test.shape == (2, 6, 3)
    alone = jax.jit(lambda *a: running.apply(v, *a, train=True, mutable=["batch_stats"])[0])
    for e in (0, 1):
        np.testing.assert_allclose(at_test[e], alone(fs[e:e + 1], oh[e:e + 1], fq[e:e + 1])[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(apply_batch({"params": v["params"]}, fs, oh, fq, train=True), at_test, rtol=1e-5)
    assert np.abs(np.asarray(jax.jit(running.apply)(v, fs, oh, fq)) - at_test).max() > 1e-3


@pytest.mark.parametrize("method", ["relationnet", "gnn"])
def test_head_bn_reaches_the_network_and_its_evaluation(method):
    """``build_net(head_bn=...)``: with "batch" the meta module keeps no running statistics, and its
    test-time outputs (``eval_module``) for an episode do not change when another episode joins it.
    (Random parameters of the network's shapes: initialising the whole network is slow on a CPU.)"""
    spec = method_spec(method)
    n, t = 3, 2
    rng = np.random.default_rng(3)
    shape = (t, 2 * n, 6, 6, 4) if method == "relationnet" else (t, 2 * n, 4)   # Conv4NP maps / Conv-4 features
    f = jnp.asarray(rng.normal(loc=2.0, size=shape), jnp.float32)   # statistics away from the running ones
    oh = jax.nn.one_hot(jnp.tile(jnp.arange(n), (t, 1)), n)
    outs = {}
    for head_bn in ("batch", "running"):
        net = build_net(spec, "conv4", 4, n, width=4, depth=3, gnn_embed_dim=8, gnn_features=6, head_bn=head_bn)
        shapes = jax.eval_shape(lambda key: init_variables(net, key, (12, 12, 1)), jax.random.PRNGKey(0))
        assert ("meta_heads_joint" in shapes["batch_stats"]) == (head_bn == "running")
        v = jax.tree_util.tree_map(lambda a: jnp.asarray(0.3 * rng.normal(size=a.shape), a.dtype), shapes)
        v["batch_stats"] = jax.tree_util.tree_map(jnp.abs, v["batch_stats"])      # variances > 0
        test_fn = jax.jit(lambda v, *args: eval_module(net, v, "joint", *args))
        outs[head_bn] = np.asarray(test_fn(v, f[:, :n], oh, f[:, n:]))
        if head_bn == "batch":
            first = test_fn(v, f[:1, :n], oh[:1], f[:1, n:])
            np.testing.assert_allclose(outs[head_bn][:1], first, rtol=1e-4, atol=1e-5)
    assert np.abs(outs["batch"] - outs["running"]).max() > 1e-3


# ---------------------------------------------------------------------------- RelationNet on every backbone


@pytest.mark.parametrize("backbone,size,maps,fc1_in", [
    ("conv4", 84, 21, 64 * 3 * 3),      # Conv-4 without its last two max-pools (Conv4NP); no padding (21 >= 10)
    ("resnet12", 84, 5, 640),           # padded: 5 -> 2 -> 1
    ("resnet10", 224, 7, 512),          # Chen et al.'s case: 7x7 maps, padded: 7 -> 3 -> 1
    ("resnet18", 224, 7, 512),
    ("resnet12", 224, 14, 640 * 2 * 2),  # no padding: 14 -> 6 -> 2
])
def test_relationnet_works_with_each_backbone_at_its_size(backbone, size, maps, fc1_in):
    """Shapes only (``jax.eval_shape``: nothing is computed): the feature map, the relation module's
    layers and the training loss of a 3-way 1-shot episode."""
    spec = method_spec("relationnet")
    net = build_net(spec, backbone, 5, 3)
    v = jax.eval_shape(lambda key: init_variables(net, key, (size, size, 3)), jax.random.PRNGKey(0))
    fmap = jax.eval_shape(lambda v: net.apply(v, jnp.zeros((2, size, size, 3)), output="feature_map"), v)
    c = fmap.shape[-1]
    assert fmap.shape[1:3] == (maps, maps)
    head = v["params"]["meta_heads_joint"]
    assert head["conv0"]["kernel"].shape == (3, 3, 2 * c, c) and head["conv1"]["kernel"].shape == (3, 3, c, c)
    assert head["fc1"]["kernel"].shape == (fc1_in, 8) and head["fc2"]["kernel"].shape == (8, 1)
    ep = {"support": {"x": jnp.zeros((1, 3, size, size, 3)), "y": jnp.arange(3)[None]},
          "query": {"x": jnp.zeros((1, 3, size, size, 3)), "y": jnp.arange(3)[None]}}
    tc = TrainConfig(n_way=3, k_shot=1, n_query=1)
    loss, scores = jax.eval_shape(lambda v: meta_algorithm(StatsThread(net, v["params"], v["batch_stats"],
                                                                       jax.random.PRNGKey(0)), spec, tc)(
        v["params"], ep, "joint"), v)
    assert loss.shape == () and scores.shape == (1, 3, 3)


@pytest.mark.parametrize("backbone", ["resnet10", "resnet18"])
def test_relationnet_on_too_small_resnet_maps_names_the_image_size(backbone):
    """ResNet-10/18 at 84 px give 3x3 maps, too small even padded (as in Chen et al.'s code, which
    gives them 224 px): the error names the maps, the minimum and the config field to change."""
    net = build_net(method_spec("relationnet"), backbone, 5, 3)
    with pytest.raises(ValueError, match=r"maps of 3x3 are too small .* at least 4x4.*data\.image_size"):
        jax.eval_shape(lambda key: init_variables(net, key, (84, 84, 3)), jax.random.PRNGKey(0))


def test_head_bn_config_field_is_checked_and_fingerprinted():
    from omni_jax import config as config_lib
    from omni_jax.classification import experiment
    from omni_jax.errors import OmniJaxError
    cfg = config_lib.load_config("classify_synthetic")
    assert cfg.model.head_bn == "batch"                              # the reference codes' (Chen et al., Tseng et al.)
    experiment.check(cfg)
    assert experiment.fingerprint(cfg, "gnn")["model"]["head_bn"] == "batch"
    cfg.model.head_bn = "running"                                    # before the field: old work directories resume
    experiment.check(cfg)
    assert "head_bn" not in experiment.fingerprint(cfg, "gnn")["model"]
    cfg.model.head_bn = "last"
    with pytest.raises(OmniJaxError, match="config field model.head_bn must be one of batch, running, got 'last'"):
        experiment.check(cfg)
