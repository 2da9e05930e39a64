"""Omni-Layer routing (Eqs. 3-6), MAML meta-gradients, the EMA teacher and the Omni-Loss terms."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from omni_jax.algorithms import l2_pretrain, maml, mse, sgd_adapt
from omni_jax.nn import FlowBatchNorm, OmniConv, OmniDense, OmniHead, OmniMLP
from omni_jax.omni import METHOD_WEIGHTS, OmniLossWeights, ema_teacher, omni_loss, teacher_params


def dense(p, x):
    return x @ p["kernel"] + p["bias"]


@pytest.fixture(scope="module")
def mlp():
    model = OmniMLP(out_features=2, widths=(8, 8), activation="tanh")
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    return model, params, x


def test_init_creates_all_flows(mlp):
    _, params, _ = mlp
    p = params["params"]
    for layer in ("layer0", "layer1"):
        assert set(p["backbone"][layer]) == {"joint", "pre", "meta"}
    assert set(p["head"]) == {"joint", "pre", "meta"}
    plain = OmniMLP(widths=(8, 8), omni=False).init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))["params"]
    assert set(plain["backbone"]["layer0"]) == {"joint"} and set(plain["head"]) == {"joint"}


@pytest.mark.parametrize("flow", ["joint", "pre", "meta"])
def test_flow_routing_matches_hand_composition(mlp, flow):
    """Eqs. 3-6: each layer is f_joint(x) (+ f_flow(x)), the head is the flow's own head."""
    model, params, x = mlp
    p = params["params"]
    h = x
    for layer in ("layer0", "layer1"):
        lp = p["backbone"][layer]
        y = dense(lp["joint"], h)
        if flow != "joint":
            y = y + dense(lp[flow], h)
        h = jnp.tanh(y)
    expected = dense(p["head"][flow], h)
    got = model.apply(params, x, flow)
    chex.assert_shape(got, (5, 2))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_flows_differ(mlp):
    model, params, x = mlp
    outs = [model.apply(params, x, f) for f in ("joint", "pre", "meta")]
    assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])


@pytest.mark.parametrize("flow,zero", [("joint", ("pre", "meta")), ("pre", ("meta",)), ("meta", ("pre",))])
def test_gradients_reach_only_the_flow_branches(mlp, flow, zero):
    model, params, x = mlp
    g = jax.grad(lambda p: jnp.sum(model.apply(p, x, flow) ** 2))(params)["params"]
    for layer in ("layer0", "layer1"):
        for b in zero:
            assert all(float(jnp.abs(v).max()) == 0.0 for v in jax.tree_util.tree_leaves(g["backbone"][layer][b]))
        assert float(jnp.abs(g["backbone"][layer]["joint"]["kernel"]).max()) > 0
        if flow != "joint":
            assert float(jnp.abs(g["backbone"][layer][flow]["kernel"]).max()) > 0


def test_unknown_flow_is_an_error(mlp):
    model, params, x = mlp
    with pytest.raises(ValueError, match="flow must be one of"):
        model.apply(params, x, "both")


def test_omni_conv_routing_and_branch_shape():
    layer = OmniConv(4, kernel_size=(3, 3), strides=(2, 2))
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    params = layer.init(jax.random.PRNGKey(1), x)
    p = params["params"]
    assert p["joint"]["kernel"].shape == (3, 3, 3, 4) and p["pre"]["kernel"].shape == (1, 1, 3, 4)
    conv = lambda k, s: jax.lax.conv_general_dilated(x, k, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    expected = conv(p["joint"]["kernel"], 2) + conv(p["meta"]["kernel"], 2)
    np.testing.assert_allclose(layer.apply(params, x, "meta"), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.apply(params, x, "joint"), conv(p["joint"]["kernel"], 2), rtol=1e-5, atol=1e-5)


def test_flow_batchnorm_uses_and_updates_only_its_flow():
    bn = FlowBatchNorm(use_running_average=False)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 4)) * 3 + 1
    variables = bn.init(jax.random.PRNGKey(1), x)
    assert set(variables["batch_stats"]) == {"joint", "pre", "meta"}
    _, updates = bn.apply(variables, x, "pre", mutable=["batch_stats"])
    before, after = variables["batch_stats"], updates["batch_stats"]
    assert not np.allclose(after["pre"]["mean"], before["pre"]["mean"])
    for f in ("joint", "meta"):
        np.testing.assert_array_equal(after[f]["mean"], before[f]["mean"])


def test_omni_head_and_low_rank_branch():
    head = OmniHead(3)
    h = jnp.ones((2, 5))
    p = head.init(jax.random.PRNGKey(0), h)["params"]
    assert set(p) == {"joint", "pre", "meta"}
    layer = OmniDense(6, branch_rank=2)
    lp = layer.init(jax.random.PRNGKey(0), h)["params"]
    assert set(lp) == {"joint", "pre", "meta"}
    assert lp["pre"]["down"]["kernel"].shape == (5, 2) and lp["pre"]["up"]["kernel"].shape == (2, 6)
    out = layer.apply({"params": lp}, h, "pre")
    expected = dense(lp["joint"], h) + dense(lp["pre"]["up"], h @ lp["pre"]["down"]["kernel"])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- MAML


def _maml_setup(dtype):
    model = OmniMLP(out_features=1, widths=(6,), activation="tanh", omni=False)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1), dtype))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    k = jax.random.split(jax.random.PRNGKey(3), 4)
    episode = {"support": {"x": jax.random.uniform(k[0], (2, 5, 1), dtype, -3, 3),
                           "y": jax.random.normal(k[1], (2, 5, 1), dtype)},
               "query": {"x": jax.random.uniform(k[2], (2, 4, 1), dtype, -3, 3),
                         "y": jax.random.normal(k[3], (2, 4, 1), dtype)}}
    apply = lambda p, x, flow: model.apply(p, x, flow)
    return apply, params, episode


@pytest.mark.parametrize("steps", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_maml_second_order_gradient_matches_finite_differences(steps):
    with jax.enable_x64(True):
        apply, params, episode = _maml_setup(jnp.float64)
        meta = maml(apply, mse, inner_lr=0.3, num_steps=steps)
        f = jax.jit(lambda p: meta(p, episode, "joint")[0])     # compiled once, evaluated 8 times
        g = jax.jit(jax.grad(f))(params)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        gflat = jax.flatten_util.ravel_pytree(g)[0]
        rng = np.random.default_rng(0)
        eps = 1e-5
        for _ in range(4):
            d = rng.normal(size=flat.shape)
            d /= np.linalg.norm(d)
            fd = (f(unravel(flat + eps * d)) - f(unravel(flat - eps * d))) / (2 * eps)
            np.testing.assert_allclose(float(gflat @ d), float(fd), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("steps", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_maml_first_order_gradient_is_query_gradient_at_adapted_params(steps):
    """FOMAML: the meta-gradient is ∇L_query evaluated at θ' (no second-order terms)."""
    with jax.enable_x64(True):
        apply, params, episode = _maml_setup(jnp.float64)
        g_fo = jax.jit(jax.grad(lambda p: maml(apply, mse, inner_lr=0.3, num_steps=steps, first_order=True)(p, episode, "joint")[0]))(params)
        g_so = jax.jit(jax.grad(lambda p: maml(apply, mse, inner_lr=0.3, num_steps=steps)(p, episode, "joint")[0]))(params)

        def reference(t):
            s, q = jax.tree_util.tree_map(lambda a: a[t], episode["support"]), jax.tree_util.tree_map(lambda a: a[t], episode["query"])
            p = params
            for _ in range(steps):  # plain Python loop, independent of lax.scan
                gs = jax.grad(lambda p_: mse(apply(p_, s["x"], "joint"), s["y"]))(p)
                p = jax.tree_util.tree_map(lambda a, b: a - 0.3 * b, p, gs)
            return jax.grad(lambda p_: mse(apply(p_, q["x"], "joint"), q["y"]))(p)

        reference = jax.jit(reference, static_argnums=0)
        ref = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, reference(0), reference(1))
        chex.assert_trees_all_close(g_fo, ref, rtol=1e-10, atol=1e-12)
        diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree_util.tree_leaves(g_fo), jax.tree_util.tree_leaves(g_so)))
        assert diff > 1e-4  # second-order terms matter here


def test_sgd_adapt_observe_and_mask():
    params = {"a": jnp.array(1.0), "b": jnp.array(2.0)}
    loss = lambda p: p["a"] ** 2 + p["b"] ** 2
    final, seen = sgd_adapt(loss, params, lr=0.25, num_steps=3, mask={"a": 1.0, "b": 0.0},
                            observe=lambda p: p["a"])
    np.testing.assert_allclose(seen, [0.5, 0.25, 0.125])
    assert float(final["b"]) == 2.0


# ---------------------------------------------------------------------------- EMA teacher


def test_ema_teacher_follows_eq9():
    beta = 0.9
    opt = optax.chain(optax.sgd(0.1), ema_teacher(beta))
    params = {"w": jnp.array([1.0, -2.0])}
    state = opt.init(params)
    np.testing.assert_array_equal(teacher_params(state)["w"], params["w"])
    teacher = np.array(params["w"])
    for i in range(5):
        grads = {"w": jnp.array([0.5 * (i + 1), -1.0])}
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        teacher = beta * teacher + (1 - beta) * np.asarray(params["w"])
        np.testing.assert_allclose(teacher_params(state)["w"], teacher, rtol=1e-6)
    with pytest.raises(ValueError, match="needs params"):
        opt.update(grads, state)


# ---------------------------------------------------------------------------- Omni-Loss


@pytest.fixture(scope="module")
def loss_setup():
    model = OmniMLP(out_features=1, widths=(8,), activation="tanh")
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    teacher = jax.tree_util.tree_map(lambda a: a + 0.05, params)
    apply = lambda p, x, flow: model.apply(p, x, flow)
    k = jax.random.split(jax.random.PRNGKey(5), 6)
    batch = {"x": jax.random.normal(k[0], (7, 1)), "y": jax.random.normal(k[1], (7, 1))}
    episode = {"support": {"x": jax.random.normal(k[2], (3, 4, 1)), "y": jax.random.normal(k[3], (3, 4, 1))},
               "query": {"x": jax.random.normal(k[4], (3, 5, 1)), "y": jax.random.normal(k[5], (3, 5, 1))}}
    pre, meta = l2_pretrain(apply), maml(apply, mse, inner_lr=0.1)
    return apply, params, teacher, batch, episode, pre, meta


def _only(term, lam=3.0):
    flags = dict(joint_pre=False, joint_meta=False, pre=False, meta=False, distill_pre=False, distill_meta=False)
    flags[term] = True
    if term == "distill_pre":
        flags["pre"] = True
    if term == "distill_meta":
        flags["meta"] = True
    return OmniLossWeights(lam=lam, **flags)


def test_each_omni_loss_term_alone(loss_setup):
    apply, params, teacher, batch, episode, pre, meta = loss_setup

    def adapted(p, flow, t):
        s = jax.tree_util.tree_map(lambda a: a[t], episode["support"])
        g = jax.grad(lambda q: mse(apply(q, s["x"], flow), s["y"]))(p)
        return jax.tree_util.tree_map(lambda a, b: a - 0.1 * b, p, g)

    def meta_ref(p, flow):
        return np.mean([float(mse(apply(adapted(p, flow, t), episode["query"]["x"][t], flow), episode["query"]["y"][t]))
                        for t in range(3)])

    expected = {
        "joint_pre": float(mse(apply(params, batch["x"], "joint"), batch["y"])),
        "joint_meta": meta_ref(params, "joint"),
        "pre": float(mse(apply(params, batch["x"], "pre"), batch["y"])),
        "meta": meta_ref(params, "meta"),
    }
    run = lambda w: omni_loss(params, teacher, batch, episode, pre_algorithm=pre, meta_algorithm=meta, weights=w)
    for term, value in expected.items():
        total, metrics = run(_only(term))
        np.testing.assert_allclose(float(total), value, rtol=1e-5)
        assert set(metrics) == {f"loss/{term}", "loss/total"}
    # R_pre (Eq. 10): squared error to the teacher's pre-flow outputs, weighted by λ.
    r_pre = float(np.mean(np.sum((apply(params, batch["x"], "pre") - apply(teacher, batch["x"], "pre")) ** 2, -1)))
    total, m = run(_only("distill_pre", lam=2.0))
    np.testing.assert_allclose(float(m["loss/distill_pre"]), r_pre, rtol=1e-5)
    np.testing.assert_allclose(float(total), expected["pre"] + 2.0 * r_pre, rtol=1e-5)
    # R_meta (Eq. 13): the teacher is adapted on the support set too.
    q = lambda p, t: apply(adapted(p, "meta", t), episode["query"]["x"][t], "meta")
    r_meta = np.mean([np.sum((q(params, t) - q(teacher, t)) ** 2, -1) for t in range(3)])
    total, m = run(_only("distill_meta", lam=2.0))
    np.testing.assert_allclose(float(m["loss/distill_meta"]), r_meta, rtol=1e-4)
    np.testing.assert_allclose(float(total), expected["meta"] + 2.0 * r_meta, rtol=1e-4)


def test_distillation_gives_no_gradient_to_the_teacher_and_vanishes_at_it(loss_setup):
    apply, params, teacher, batch, episode, pre, meta = loss_setup
    w = OmniLossWeights()
    f = lambda p, t: omni_loss(p, t, batch, episode, pre_algorithm=pre, meta_algorithm=meta, weights=w)[0]
    g_teacher = jax.grad(f, argnums=1)(params, teacher)
    assert all(float(jnp.abs(v).max()) == 0 for v in jax.tree_util.tree_leaves(g_teacher))
    _, m = omni_loss(params, params, batch, episode, pre_algorithm=pre, meta_algorithm=meta, weights=w)
    assert float(m["loss/distill_pre"]) == 0.0 and float(m["loss/distill_meta"]) < 1e-10
    total = sum(float(m[f"loss/{k}"]) for k in ("joint_pre", "joint_meta", "pre", "meta"))
    np.testing.assert_allclose(float(m["loss/total"]), total, rtol=1e-6)


def test_omni_loss_weights_validation_and_methods():
    with pytest.raises(ValueError, match="distill_pre needs the pre term"):
        OmniLossWeights(pre=False)
    with pytest.raises(ValueError, match="at least one"):
        _only("joint_pre").__class__(joint_pre=False, joint_meta=False, pre=False, meta=False,
                                     distill_pre=False, distill_meta=False)
    assert not METHOD_WEIGHTS["maml"].needs_pre_data and METHOD_WEIGHTS["maml"].needs_meta_data
    assert not METHOD_WEIGHTS["baseline"].needs_meta_data
    assert OmniLossWeights(lam=0.0).needs_teacher is False


@pytest.mark.parametrize("shape", [pytest.param((8, 5, 5, 16), marks=pytest.mark.slow), (12, 3)])
def test_batchnorm_matches_flax_batchnorm(shape):
    """The folded BatchNorm of the Omni-Nets: flax.linen.BatchNorm's variables, values, running
    statistics, gradients (w.r.t. input and parameters) and evaluation mode."""
    import flax.linen as nn
    from omni_jax.nn.layers import BatchNorm
    x = 3.0 + 2.0 * jax.random.normal(jax.random.PRNGKey(0), shape)
    ref, ours = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5), BatchNorm(use_running_average=False)
    vr, vo = ref.init(jax.random.PRNGKey(1), x), ours.init(jax.random.PRNGKey(1), x)
    assert jax.tree_util.tree_structure(vr) == jax.tree_util.tree_structure(vo)
    close = lambda a, b: jax.tree_util.tree_map(lambda u, w: np.testing.assert_allclose(u, w, rtol=2e-4, atol=2e-4), a, b)
    close(vr, vo)
    vo = jax.tree_util.tree_map(lambda a: a * 1.5 + 0.1, vo)  # non-trivial scale, bias and statistics
    vr = vo
    (yr, sr), (yo, so) = ref.apply(vr, x, mutable=["batch_stats"]), ours.apply(vo, x, mutable=["batch_stats"])
    close(yo, yr)
    close(so, sr)
    assert not np.allclose(so["batch_stats"]["mean"], vo["batch_stats"]["mean"])  # the statistics did move
    w = jax.random.normal(jax.random.PRNGKey(2), shape)
    loss = lambda m, p, x: jnp.sum(jnp.tanh(m.apply({**vo, "params": p}, x, mutable=["batch_stats"])[0]) * w)
    close(jax.grad(lambda p, x: loss(ours, p, x), argnums=(0, 1))(vo["params"], x),
          jax.grad(lambda p, x: loss(ref, p, x), argnums=(0, 1))(vr["params"], x))
    close(BatchNorm(use_running_average=True).apply(vo, x), nn.BatchNorm(use_running_average=True).apply(vr, x))
