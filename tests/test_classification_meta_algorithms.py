"""MatchingNet, RelationNet, GNN and Baseline++: hand computations on tiny episodes, invariance to
the order of the support set, their modules in the (Omni-)network, R_meta in the Omni-Loss."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.algorithms.gnn import (Adjacency, GraphNetwork, gnn, group_queries, node_features, softmax_adjacency,
                                     ungroup_queries)
from omni_jax.algorithms.matchingnet import FullContextEmbedding, matching_probs, matchingnet
from omni_jax.algorithms.relationnet import (RelationModule, class_maps, relation_pairs, relation_targets,
                                             relationnet)
from omni_jax.classification.methods import method_spec
from omni_jax.classification.model import StatsThread, build_net, init_variables
from omni_jax.classification.train import TrainConfig, make_loss_fn, meta_algorithm
from omni_jax.nn.convnets import CosineDense, FewShotNet, Conv4
from omni_jax.omni import squared_error

N, K, Q, D = 3, 2, 2, 5


def _episode(rng, t=2, shape=(D,)):
    ys = np.tile(np.repeat(np.arange(N), K), (t, 1))
    yq = np.tile(np.repeat(np.arange(N), Q), (t, 1))
    return {"support": {"x": jnp.asarray(rng.normal(size=(t, N * K) + shape), jnp.float32), "y": jnp.asarray(ys)},
            "query": {"x": jnp.asarray(rng.normal(size=(t, N * Q) + shape), jnp.float32), "y": jnp.asarray(yq)}}


def _identity(p, x, flow):
    return p * x


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---------------------------------------------------------------------------- MatchingNet


@pytest.mark.parametrize("scale,relu", [(1.0, False), (100.0, True)])
def test_matchingnet_without_fce_is_a_softmax_over_cosines_times_support_onehots(scale, relu):
    rng = np.random.default_rng(0)
    ep = _episode(rng)
    loss, probs = matchingnet(_identity, None, N, scale=scale, relu=relu, outputs="probs")(
        jnp.asarray(2.0), ep, "meta")
    want_p, nll = [], []
    for t in range(2):
        s, q = 2 * np.asarray(ep["support"]["x"][t], np.float64), 2 * np.asarray(ep["query"]["x"][t], np.float64)
        cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (s / np.linalg.norm(s, axis=1, keepdims=True)).T
        cos = np.maximum(cos, 0) if relu else cos
        p = _softmax(scale * cos) @ np.eye(N)[np.asarray(ep["support"]["y"][t])]
        want_p.append(p)
        nll.append(-np.log(p[np.arange(N * Q), np.asarray(ep["query"]["y"][t])] + 1e-6))
    np.testing.assert_allclose(probs, np.stack(want_p), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss, np.mean(nll), rtol=1e-4)
    _, logp = matchingnet(_identity, None, N, scale=scale, relu=relu)(jnp.asarray(2.0), ep, "meta")
    np.testing.assert_allclose(logp, np.log(np.stack(want_p) + 1e-6), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_full_context_embeddings_shapes_and_attention_lstm():
    rng = np.random.default_rng(1)
    fs, fq = jnp.asarray(rng.normal(size=(2, 6, 4)), jnp.float32), jnp.asarray(rng.normal(size=(2, 5, 4)), jnp.float32)
    onehot = jax.nn.one_hot(jnp.tile(jnp.repeat(jnp.arange(3), 2), (2, 1)), 3)
    fce = FullContextEmbedding()
    v = fce.init(jax.random.PRNGKey(0), fs, onehot, fq)
    assert set(v["params"]) == {"support_forward_cell", "support_backward_cell", "attention_lstm"}
    assert v["params"]["attention_lstm"]["cell"]["ii"]["kernel"].shape == (8, 4)   # input [f, r], hidden D
    g, f = fce.apply(v, fs, onehot, fq)
    assert g.shape == fs.shape and f.shape == fq.shape
    probs = matching_probs(g, onehot, f)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # The attention LSTM reads each query alone: a query's f does not depend on the other queries.
    _, f1 = fce.apply(v, fs, onehot, fq[:, :1])
    np.testing.assert_allclose(f1, f[:, :1], rtol=1e-5, atol=1e-6)
    # By hand (Chen et al.'s FullyContextualEmbedding): g = x + h_fwd + h_bwd, then |S| attention steps.
    cell, prm = nn.LSTMCell(4), v["params"]
    step = lambda name, carry, x: cell.apply({"params": name}, carry, x)[0]
    for t in range(2):
        x = fs[t]

        def run(p, seq):
            carry, hs = (jnp.zeros(4), jnp.zeros(4)), []
            for xi in seq:
                carry = step(p, carry, xi)
                hs.append(carry[1])
            return jnp.stack(hs)

        g_want = x + run(prm["support_forward_cell"], x) + run(prm["support_backward_cell"], x[::-1])[::-1]
        np.testing.assert_allclose(g[t], g_want, rtol=1e-4, atol=1e-5)
        h, c = fq[t], jnp.zeros_like(fq[t])
        for _ in range(6):
            r = jax.nn.softmax(h @ g_want.T, axis=-1) @ g_want
            c, h = step(prm["attention_lstm"]["cell"], (c, h), jnp.concatenate([fq[t], r], -1))
            h = h + fq[t]
        np.testing.assert_allclose(f[t], h, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="FCE expects"):
        fce.apply(v, fs[0], onehot[0], fq[0])


# ---------------------------------------------------------------------------- RelationNet


def test_relationnet_pairs_targets_and_mse_by_hand():
    rng = np.random.default_rng(2)
    ep = _episode(rng, shape=(2, 2, 3))
    fs, ys = np.asarray(ep["support"]["x"]), np.asarray(ep["support"]["y"])
    oh = jax.nn.one_hot(ys, N)
    maps = np.asarray(class_maps(jnp.asarray(fs), oh))
    for t in range(2):
        for k in range(N):
            np.testing.assert_allclose(maps[t, k], fs[t][ys[t] == k].mean(0), rtol=1e-5)
    pairs = np.asarray(relation_pairs(jnp.asarray(maps), ep["query"]["x"]))
    assert pairs.shape == (2, N * Q, N, 2, 2, 6)
    np.testing.assert_allclose(pairs[1, 3, 2, ..., :3], maps[1, 2])           # class map first
    np.testing.assert_allclose(pairs[1, 3, 2, ..., 3:], ep["query"]["x"][1, 3])  # then the query
    np.testing.assert_array_equal(relation_targets(ep["query"]["y"], N)[0, 2], [0, 1, 0])

    # A hand-made relation module (minus the squared distance): scores and loss by hand.
    def module_fn(params, flow, s, onehot, q):
        c = class_maps(s, onehot)
        return -params * jnp.sum(jnp.square(q[:, :, None] - c[:, None]), axis=(-3, -2, -1))

    loss, scores = relationnet(_identity, module_fn, N, outputs="probs")(jnp.asarray(0.5), ep, "meta")
    q = np.asarray(ep["query"]["x"])
    logits = -0.5 * 0.25 * ((q[:, :, None] - maps[:, None]) ** 2).sum((-3, -2, -1))   # embed 0.5x, module 0.5
    want = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-6)
    target = np.eye(N)[np.asarray(ep["query"]["y"])]
    np.testing.assert_allclose(loss, np.mean((want - target) ** 2), rtol=1e-4)


@pytest.mark.slow
def test_relation_module_shapes_and_small_maps():
    rng = np.random.default_rng(3)
    fs, fq = jnp.asarray(rng.normal(size=(1, 6, 7, 7, 4)), jnp.float32), jnp.asarray(rng.normal(size=(1, 4, 7, 7, 4)), jnp.float32)
    oh = jax.nn.one_hot(jnp.repeat(jnp.arange(3), 2)[None], 3)
    rm = RelationModule(hidden=8)
    v = rm.init(jax.random.PRNGKey(0), fs, oh, fq)
    assert v["params"]["fc1"]["kernel"].shape == (4, 8)   # 7x7 -> pad 1: 7 -> 3 -> 1, 4 channels
    assert v["params"]["conv0"]["kernel"].shape == (3, 3, 8, 4) and v["params"]["fc2"]["kernel"].shape == (8, 1)
    out, _ = rm.apply(v, fs, oh, fq, train=True, mutable=["batch_stats"])
    assert out.shape == (1, 4, 3)
    with pytest.raises(ValueError, match="too small"):
        rm.init(jax.random.PRNGKey(0), fs[:, :, :2, :2], oh, fq[:, :, :2, :2])
    with pytest.raises(ValueError, match="feature maps"):
        rm.init(jax.random.PRNGKey(0), fs[..., 0, 0, :], oh, fq[..., 0, 0, :])


# ---------------------------------------------------------------------------- GNN


@pytest.mark.slow
def test_gnn_adjacency_rows_sum_to_one_and_node_features():
    rng = np.random.default_rng(4)
    a = softmax_adjacency(jnp.asarray(rng.normal(size=(3, 5, 5)), jnp.float32))
    np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(np.diagonal(np.asarray(a), axis1=1, axis2=2), 0.0)
    x = jnp.asarray(rng.normal(size=(2, 4, 6)), jnp.float32)
    adj = Adjacency((4, 4, 2, 2))
    v = adj.init(jax.random.PRNGKey(0), x)
    learned, _ = adj.apply(v, x, train=True, mutable=["batch_stats"])
    assert learned.shape == (2, 4, 4)
    np.testing.assert_allclose(learned.sum(-1), 1.0, rtol=1e-5)
    # The adjacency depends on |x_i - x_j| only: the same for x and -x.
    np.testing.assert_allclose(adj.apply(v, -x), adj.apply(v, x), rtol=1e-5)
    zs, zq = jnp.ones((2, 6, 3)), 2 * jnp.ones((2, 4, 3))
    oh = jax.nn.one_hot(jnp.tile(jnp.repeat(jnp.arange(3), 2), (2, 1)), 3)
    nodes = np.asarray(node_features(zs, oh, zq, "query"))
    assert nodes.shape == (8, 7, 6)                          # one graph per query, S + 1 nodes
    np.testing.assert_array_equal(nodes[5, :6, 3:], np.asarray(oh[1]))   # support: one-hot labels
    np.testing.assert_array_equal(nodes[5, 6, 3:], 0.0)                  # query: zeros (both reference codes)
    np.testing.assert_array_equal(nodes[5, 6, :3], 2.0)


def test_gnn_class_set_graphs_hold_one_query_of_each_class():
    """Tseng et al.'s layout by hand: 2 episodes, 3 classes, 2 shots, 2 queries per class (class-major)
    make 2 graphs per episode, graph i holding the 6 support nodes and query c*2 + i of each class c."""
    t, n, k, q = 2, 3, 2, 2
    zs = jnp.arange(t * n * k, dtype=jnp.float32).reshape(t, n * k, 1)
    zq = 100 + jnp.arange(t * n * q, dtype=jnp.float32).reshape(t, n * q, 1)
    oh = jax.nn.one_hot(jnp.tile(jnp.repeat(jnp.arange(n), k), (t, 1)), n)
    nodes = np.asarray(node_features(zs, oh, zq, "class_set"))
    assert nodes.shape == (t * q, n * k + n, 1 + n)
    for e in range(t):
        for i in range(q):
            g = nodes[e * q + i]
            np.testing.assert_array_equal(g[:n * k, 0], np.asarray(zs[e, :, 0]))          # the support set
            np.testing.assert_array_equal(g[:n * k, 1:], np.asarray(oh[e]))
            np.testing.assert_array_equal(g[n * k:, 0], [100 + e * n * q + c * q + i for c in range(n)])
            np.testing.assert_array_equal(g[n * k:, 1:], 0.0)                            # unlabelled: zeros
    # grouping and ungrouping are inverse permutations; "query" keeps one query per graph
    x = jnp.arange(t * n * q * 2, dtype=jnp.float32).reshape(t, n * q, 2)
    for graph, m in (("query", 1), ("class_set", n)):
        grouped = group_queries(x, n, graph)
        assert grouped.shape == (t * n * q // m, m, 2)
        np.testing.assert_array_equal(ungroup_queries(grouped, t), x)
    with pytest.raises(ValueError, match="same number of queries for each of the 3 classes"):
        group_queries(jnp.zeros((1, 4, 2)), n, "class_set")
    with pytest.raises(ValueError, match="unknown GNN graph layout 'star'"):
        group_queries(x, n, "star")


@pytest.mark.parametrize("bn", ["running", "batch"])
def test_gnn_class_set_logits_follow_their_query(bn):
    """With ``"class_set"`` graphs, swapping the i-th and j-th queries of every class swaps two whole
    graphs: the logits of every query move with it (and the output keeps the [T, Q, N] order). At
    test, with running averages a query's logits depend on the queries of its own graph only; with
    each episode's BatchNorm statistics (Tseng et al.) on every query of its episode, never on
    another episode's."""
    rng = np.random.default_rng(6)
    t, n, k, q, d = 2, 3, 2, 3, 5
    sf = jnp.asarray(rng.normal(size=(t, n * k, d)), jnp.float32)
    qf = jnp.asarray(rng.normal(size=(t, n * q, d)), jnp.float32)
    oh = jax.nn.one_hot(jnp.tile(jnp.repeat(jnp.arange(n), k), (t, 1)), n)
    net = GraphNetwork(embed_dim=8, nf=6, graph="class_set", bn=bn)
    v = net.init(jax.random.PRNGKey(0), sf, oh, qf)
    logits = np.asarray(net.apply(v, sf, oh, qf))
    assert logits.shape == (t, n * q, n)
    perm = np.arange(n * q).reshape(n, q)[:, [2, 0, 1]].reshape(-1)   # within each class: graphs 2, 0, 1
    np.testing.assert_allclose(net.apply(v, sf, oh, qf[:, perm]), logits[:, perm], rtol=1e-5, atol=1e-6)
    qf2 = qf.at[0, 1].set(qf[0, 1] + 1.0)       # query 1 of class 0 of episode 0 lives in graph 1
    moved = np.asarray(net.apply(v, sf, oh, qf2))
    np.testing.assert_allclose(moved[1], logits[1], rtol=1e-5, atol=1e-6)     # the other episode: unchanged
    graph1 = [c * q + 1 for c in range(1, n)]
    assert np.abs(moved[0, graph1] - logits[0, graph1]).max() > 1e-4      # its graph: transductive
    others = [c * q + i for c in range(n) for i in (0, 2)]
    if bn == "running":
        np.testing.assert_allclose(moved[0, others], logits[0, others], rtol=1e-5, atol=1e-6)
    else:   # the episode's statistics changed
        assert np.abs(moved[0, others] - logits[0, others]).max() > 1e-4


def test_gnn_loss_is_query_cross_entropy_of_the_module():
    rng = np.random.default_rng(5)
    ep = _episode(rng)

    def module_fn(params, flow, s, onehot, q):   # a fixed linear readout of the mean class embedding
        c = jnp.einsum("tsn,tsd->tnd", onehot, s) / K
        return params * jnp.einsum("tqd,tnd->tqn", q, c)

    loss, logits = gnn(_identity, module_fn, N)(jnp.asarray(0.5), ep, "meta")
    want = 0.5 ** 3 * np.einsum("tqd,tnd->tqn", np.asarray(ep["query"]["x"]),   # embed 0.5x, readout 0.5
                           np.stack([np.stack([np.asarray(ep["support"]["x"][t])[2 * k:2 * k + 2].mean(0)
                                               for k in range(N)]) for t in range(2)]))
    np.testing.assert_allclose(logits, want, rtol=1e-4, atol=1e-6)
    lsm = want - np.log(np.exp(want).sum(-1, keepdims=True))
    y = np.asarray(ep["query"]["y"])
    np.testing.assert_allclose(loss, -np.mean(np.take_along_axis(lsm, y[..., None], -1)), rtol=1e-4)


def _gnn_toy_losses(kernel_init, steps, seed=0, graph="query"):
    """Adam 1e-3 on the GraphNetwork alone, 5-way 1-shot toy episodes whose features are class centres
    plus noise (nearest neighbour solves them): the loss of each step."""
    import optax
    n, d = 5, 16
    net = GraphNetwork(embed_dim=16, nf=16, kernel_init=kernel_init, graph=graph)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, d)).astype(np.float32)
    onehot = jax.nn.one_hot(np.arange(n), n)[None]
    qy = np.repeat(np.arange(n), 3)[None]

    def episode():
        c = centres[rng.choice(200, n, replace=False)]
        sf = c + 0.3 * rng.normal(size=(n, d))
        qf = np.repeat(c, 3, axis=0) + 0.3 * rng.normal(size=(3 * n, d))
        return sf[None].astype(np.float32), qf[None].astype(np.float32)

    sf, qf = episode()
    v = net.init(jax.random.PRNGKey(seed), sf, onehot, qf)
    opt = optax.adam(1e-3)

    @jax.jit
    def step(params, stats, opt_state, sf, qf):
        def loss(p):
            logits, new = net.apply({"params": p, "batch_stats": stats}, sf, onehot, qf, train=True,
                                    mutable=["batch_stats"])
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, qy)), new["batch_stats"]
        (value, stats), g = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, value

    params, stats, opt_state, out = v["params"], v.get("batch_stats", {}), opt.init(v["params"]), []
    for _ in range(steps):
        params, stats, opt_state, value = step(params, stats, opt_state, *episode())
        out.append(float(value))
    return np.asarray(out)


@pytest.mark.parametrize("graph", ["query", pytest.param("class_set", marks=pytest.mark.slow)])
def test_gnn_learns_separable_toy_episodes(graph):
    """The GNN must learn to label a query by its nearest support node. It sits near chance (ln 5)
    for a while before it does; with PyTorch's initialisation (the default) the loss of steps
    350-400 was 0.08, with Flax's lecun_normal 0.62 (the GNN rows of the glyph table were at chance
    after 200 steps with lecun_normal). The same with graphs of one query per class."""
    losses = _gnn_toy_losses("torch", 400, graph=graph)
    assert losses[:20].mean() > 1.4                         # it starts near chance, ln 5 = 1.61
    assert losses[350:].mean() < 0.4, losses[350:].mean()


# ---------------------------------------------------------------------------- in the network


TC = TrainConfig(batch_size=6, n_way=N, k_shot=K, n_query=Q, matching_fce=True)


def _net_and_vars(method, image=(12, 12, 1)):
    spec = method_spec(method)
    net = build_net(spec, "conv4", 6, N, width=4, depth=3 if "relation" not in method else 3,
                    gnn_embed_dim=8, gnn_features=6)
    return spec, net, init_variables(net, jax.random.PRNGKey(0), image)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["matchingnet", "relationnet", "gnn", "omni_relation"])
def test_query_outputs_do_not_depend_on_the_order_of_the_support_set(method):
    spec, net, v = _net_and_vars(method)
    tc = TC if method != "matchingnet" else TrainConfig(n_way=N, k_shot=K, n_query=Q, matching_fce=False)
    ep = _episode(np.random.default_rng(6), t=2, shape=(12, 12, 1))
    perm = np.random.default_rng(7).permutation(N * K)
    shuffled = {"support": {"x": ep["support"]["x"][:, perm], "y": ep["support"]["y"][:, perm]}, "query": ep["query"]}
    flow = "meta" if spec.omni else "joint"
    outs = []
    for e in (ep, shuffled):
        thread = StatsThread(net, v["params"], v["batch_stats"], jax.random.PRNGKey(0))
        outs.append(meta_algorithm(thread, spec, tc)(v["params"], e, flow))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-4, atol=1e-5)
    assert outs[0][1].shape == (2, N * Q, N)


@pytest.mark.slow
def test_each_flow_uses_its_own_module_and_conv4np_gives_maps():
    spec, net, v = _net_and_vars("omni_gnn")
    assert {"meta_heads_joint", "meta_heads_meta"} <= set(v["params"])
    ep = _episode(np.random.default_rng(8), t=1, shape=(12, 12, 1))
    run = lambda p, flow: meta_algorithm(StatsThread(net, p, v["batch_stats"], jax.random.PRNGKey(0)), spec, TC)(
        p, ep, flow)[1]
    bumped = dict(v["params"], meta_heads_joint=jax.tree_util.tree_map(lambda a: a + 1.0, v["params"]["meta_heads_joint"]))
    np.testing.assert_allclose(run(bumped, "meta"), run(v["params"], "meta"))        # meta flow: meta copy
    assert not np.allclose(run(bumped, "joint"), run(v["params"], "joint"))         # joint flow: joint copy
    # RelationNet's Conv-4 keeps the maps of its last two blocks (Conv4NP): 12 -> 6 -> 6 -> 6.
    _, rnet, rv = _net_and_vars("relationnet")
    fmap = rnet.apply(rv, jnp.zeros((2, 12, 12, 1)), output="feature_map")
    assert fmap.shape == (2, 6, 6, 4)
    assert rnet.apply(rv, jnp.zeros((2, 12, 12, 1)), output="features").shape == (2, 144)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["omni_matching", "omni_relation", "omni_gnn"])
def test_r_meta_compares_the_meta_flows_query_outputs_with_the_teachers(method):
    spec, net, v = _net_and_vars(method)
    params = v["params"]
    teacher = jax.tree_util.tree_map(lambda a: a * 0.9, params)
    rng = np.random.default_rng(9)
    ep = _episode(rng, t=1, shape=(12, 12, 1))
    batch = {"x": jnp.asarray(rng.normal(size=(6, 12, 12, 1)), jnp.float32), "y": jnp.arange(6) % 6}
    _, (metrics, _) = make_loss_fn(net, spec, TC)(params, teacher, v["batch_stats"], jax.random.PRNGKey(0), batch, ep)
    thread = StatsThread(net, params, v["batch_stats"], jax.random.PRNGKey(0))
    algo = meta_algorithm(thread, spec, TC)
    s_loss, s_out = algo(params, ep, "meta")
    _, t_out = algo(teacher, ep, "meta")
    np.testing.assert_allclose(metrics["loss/meta"], s_loss, rtol=1e-4)
    np.testing.assert_allclose(metrics["loss/distill_meta"], squared_error(s_out, t_out), rtol=1e-3, atol=1e-7)
    assert float(metrics["loss/distill_meta"]) > 0


@pytest.mark.slow
def test_baseline_pp_cosine_head_in_the_network():
    net = FewShotNet(Conv4(width=4, depth=2, omni=True), num_classes=5, head_kind="cosine")
    v = net.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, jnp.zeros((2, 8, 8, 1)))
    assert set(v["params"]["head"]) == {"joint", "pre", "meta"}
    p = v["params"]["head"]["pre"]
    np.testing.assert_allclose(p["g"], np.linalg.norm(p["v"], axis=0), rtol=1e-6)    # WeightNorm's init
    x = np.random.default_rng(10).normal(size=(3, 16)).astype(np.float32)
    h = CosineDense(5)
    hv = h.init(jax.random.PRNGKey(2), x)
    vv, gg = np.asarray(hv["params"]["v"]), np.asarray(hv["params"]["g"]) * 1.5
    want = 2.0 * (x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)) @ (vv * gg / np.linalg.norm(vv, axis=0))
    np.testing.assert_allclose(h.apply({"params": {"v": vv, "g": gg}}, x), want, rtol=1e-5)
    with pytest.raises(ValueError, match="head_kind"):
        FewShotNet(Conv4(width=4, depth=2), num_classes=5, head_kind="mlp").init(jax.random.PRNGKey(0),
                                                                                  jnp.zeros((2, 8, 8, 1)))
