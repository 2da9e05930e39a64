"""Linear baseline, REINFORCE and MAML-RL (issue 3): small shapes, toy policies."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.rl import losses
from omni_jax.rl.networks import GaussianPolicy, gaussian_log_prob


def test_discounted_returns_respect_mask():
    r = jnp.array([[1.0, 2.0, 3.0, 4.0]])
    m = jnp.array([[1.0, 1.0, 1.0, 0.0]])
    out = jax.jit(losses.discounted_returns, static_argnums=2)(r, m, 0.5)
    np.testing.assert_allclose(out, [[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.0]])


def test_linear_baseline_matches_numpy_lstsq():
    rng = np.random.default_rng(0)
    N, T, d = 5, 30, 3
    obs = rng.normal(size=(N, T, d)).astype(np.float32)
    returns = rng.normal(size=(N, T)).astype(np.float32) + obs[..., 0] * 2 - obs[..., 1] ** 2
    mask = np.ones((N, T), np.float32)
    mask[1, 20:] = 0.0  # an episode that ended early
    values, reg = jax.jit(losses.linear_baseline)(jnp.asarray(obs), jnp.asarray(returns), jnp.asarray(mask))
    # numpy: the features of the valid steps, plain least squares
    t = np.arange(T)[None, :, None].repeat(N, 0) / 100.0
    feats = np.concatenate([obs, obs ** 2, t, t ** 2, t ** 3, np.ones_like(t)], -1).astype(np.float64)
    valid = mask.reshape(-1) > 0
    f = feats.reshape(-1, feats.shape[-1])[valid]
    w, *_ = np.linalg.lstsq(f, returns.reshape(-1)[valid].astype(np.float64), rcond=None)
    expected = (feats @ w) * mask
    np.testing.assert_allclose(values, expected, atol=2e-3 * np.abs(expected).max())
    assert float(reg) == pytest.approx(1e-5)  # well conditioned: the smallest regulariser
    assert np.all(np.asarray(values)[1, 20:] == 0.0)


def test_ridge_raises_regulariser_when_ill_conditioned():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(200, 1))
    x = np.concatenate([base + 1e-6 * rng.normal(size=(200, 20)), np.ones((200, 1))], 1).astype(np.float32)
    y = (3 * base[:, 0] + 1).astype(np.float32)
    w, reg = jax.jit(losses.ridge_fit)(jnp.asarray(x), jnp.asarray(y))
    assert float(reg) > 1e-5
    assert np.isfinite(np.asarray(w)).all()
    np.testing.assert_allclose(x @ np.asarray(w), y, atol=0.05)
    # a constant observation (zero features) stays finite too
    obs = jnp.zeros((4, 10, 2))
    v, _ = jax.jit(losses.linear_baseline)(obs, jnp.ones((4, 10)), jnp.ones((4, 10)))
    assert np.isfinite(np.asarray(v)).all()


def test_advantages_are_normalised():
    rng = np.random.default_rng(2)
    traj = {"obs": jnp.asarray(rng.normal(size=(6, 8, 2)), jnp.float32),
            "rewards": jnp.asarray(rng.normal(size=(6, 8)) * 50, jnp.float32),
            "mask": jnp.ones((6, 8)), "actions": jnp.zeros((6, 8, 2))}
    adv = jax.jit(lambda t: losses.add_advantages(t, 0.99))(traj)["advantages"]
    assert abs(float(adv.mean())) < 1e-4 and abs(float(adv.std()) - 1.0) < 1e-3


def toy_apply(params, obs, flow):
    """A state-independent Gaussian: mean params["mu"], log-std params["log_std"]."""
    mean = jnp.broadcast_to(params["mu"], obs.shape[:-1] + params["mu"].shape)
    return mean, jnp.broadcast_to(params["log_std"], mean.shape)


def test_reinforce_gradient_direction_and_value():
    # a one-step bandit whose reward grows with the action: the policy gradient must raise the mean
    key = jax.random.PRNGKey(0)
    params = {"mu": jnp.array([0.2]), "log_std": jnp.array([0.0])}
    N = 64
    actions = params["mu"] + jax.random.normal(key, (N, 1, 1))
    traj = {"obs": jnp.zeros((N, 1, 1)), "actions": actions, "rewards": actions[..., 0], "mask": jnp.ones((N, 1))}
    add = jax.jit(lambda t: losses.add_advantages(t, 0.99))
    grad_fn = jax.jit(jax.grad(lambda p, t: losses.reinforce_task_loss(toy_apply, p, t, "joint")[0]))
    traj = add(traj)
    grad = grad_fn(params, traj)
    assert float(grad["mu"][0]) < 0  # gradient descent raises mu
    # the exact value: d/dmu of -mean(log N(a; mu, 1) * A) = -mean((a - mu) * A)
    expected = -jnp.mean((actions[:, 0, 0] - params["mu"][0]) * traj["advantages"][:, 0])
    np.testing.assert_allclose(grad["mu"][0], expected, rtol=1e-5)
    # a reward that falls with the action lowers it
    grad2 = grad_fn(params, add({**traj, "rewards": -actions[..., 0]}))
    assert float(grad2["mu"][0]) > 0


def test_gaussian_log_prob():
    a, m, s = jnp.array([[0.5, -1.0]]), jnp.array([[0.0, 0.0]]), jnp.array([[0.0, np.log(2.0)]])
    import scipy.stats as st
    expected = st.norm.logpdf(0.5, 0, 1) + st.norm.logpdf(-1.0, 0, 2)
    np.testing.assert_allclose(gaussian_log_prob(a, m, s), [expected], rtol=1e-5)


def _toy_episode(key, B=2, N=8, T=3):
    k1, k2, k3 = jax.random.split(key, 3)
    def traj(k):
        a = jax.random.normal(k, (B, N, T, 1))
        t = {"obs": jnp.zeros((B, N, T, 1)), "actions": a, "rewards": -(a[..., 0] - 1.0) ** 2, "mask": jnp.ones((B, N, T))}
        return t
    ep = {"joint": {"support": traj(k1), "query": traj(k2)}}
    return jax.jit(lambda e: jax.tree_util.tree_map(lambda t: losses.add_advantages_batched(t, 0.99), e,
                                                    is_leaf=lambda x: isinstance(x, dict) and "obs" in x))(ep)


@pytest.mark.slow
def test_maml_rl_second_order_differs_from_first_order():
    params = {"mu": jnp.array([0.0]), "log_std": jnp.array([0.0])}
    ep = _toy_episode(jax.random.PRNGKey(0))
    g2 = jax.jit(jax.grad(lambda p: losses.maml_rl(toy_apply, inner_lr=0.1)(p, ep, "joint")[0]))(params)
    g1 = jax.jit(jax.grad(lambda p: losses.maml_rl(toy_apply, inner_lr=0.1, first_order=True)(p, ep, "joint")[0]))(params)
    # first order: the query gradient at the adapted parameters
    def fo(p):
        def one(s, q):
            adapted = losses.adapt(toy_apply, p, s, "joint", lr=0.1)
            adapted = jax.lax.stop_gradient(adapted)
            return jax.grad(lambda a: losses.reinforce_task_loss(toy_apply, a, q, "joint")[0])(adapted)
        return jax.tree_util.tree_map(lambda x: x.mean(0), jax.vmap(one)(ep["joint"]["support"], ep["joint"]["query"]))
    np.testing.assert_allclose(g1["mu"], jax.jit(fo)(params)["mu"], rtol=1e-4, atol=1e-6)
    assert not np.allclose(g1["log_std"], g2["log_std"], rtol=1e-3)


@pytest.mark.slow
def test_adaptation_improves_a_fixed_navigation_task():
    """MAML-RL's inner loop: a few REINFORCE steps (lr 0.1, 20 trajectories) on one goal raise the return."""
    from omni_jax.rl import envs, evaluate as ev
    env = envs.make_env("navigation2d")
    policy = GaussianPolicy(2, widths=(32, 32), omni=False)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    entries = [("plain", lambda p, o, f: policy.apply(p, o, f), params, "joint")]
    fn = ev.make_eval_fn(env, entries, num_traj=20, horizon=100, max_steps=4, lr=0.1, discount=0.99)
    tasks = {"goal": jnp.array([[0.4, -0.3], [-0.35, 0.25], [0.1, 0.45], [-0.45, -0.4]])}
    rets = np.asarray(fn([params], tasks, jax.random.PRNGKey(1)))[:, 0]  # [steps, tasks]
    assert rets.shape == (5, 4)
    assert (rets[4] > rets[0]).all(), rets
    assert rets[4].mean() > rets[0].mean() + 0.2 * abs(rets[0].mean()), rets


def _distill_sgd(scale_outputs: bool, steps: int = 40):
    """SGD at lr 0.03 on λ·R (λ = 3) towards a perturbed teacher, cheetah-sized: 17 observations of
    order 10 that vary little between steps (so the saturated tanh features are strongly correlated,
    λmax(E[h hᵀ]) near ‖h‖²), 6 actions."""
    from omni_jax.omni import squared_error
    policy = GaussianPolicy(6, omni=False)
    k0, k1 = jax.random.split(jax.random.PRNGKey(0))
    obs = 10.0 * (jax.random.normal(k0, (17,)) + 0.1 * jax.random.normal(k1, (256, 17)))
    mask = jnp.ones((256,))
    student = policy.init(jax.random.PRNGKey(1), obs[:1])
    leaves, tree = jax.tree_util.tree_flatten(student)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    teacher = tree.unflatten([x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])

    def outputs(p):
        mean, log_std = policy.apply(p, obs)
        if scale_outputs:
            return losses.policy_outputs(mean, log_std, mask)
        return jnp.concatenate([mean, log_std], axis=-1)

    loss = jax.jit(lambda p: 3.0 * squared_error(outputs(p), outputs(teacher)))
    grad = jax.jit(jax.grad(loss))
    first, p = float(loss(student)), student
    for _ in range(steps):
        p = jax.tree_util.tree_map(lambda a, g: a - 0.03 * g, p, grad(p))
    return first, float(loss(p))


@pytest.mark.slow
def test_distillation_of_policy_outputs_is_a_mean_and_stable_under_outer_sgd():
    mean, log_std = jnp.ones((3, 4, 6)), jnp.zeros((3, 4, 6))
    out = losses.policy_outputs(mean, log_std, jnp.ones((3, 4)))
    from omni_jax.omni import squared_error
    np.testing.assert_allclose(squared_error(out, jnp.zeros_like(out)), 6.0 / 12.0, rtol=1e-6)  # mean over 12
    first, last = _distill_sgd(scale_outputs=True)
    assert np.isfinite(last) and last < 0.5 * first, (first, last)
    # the sum over the outputs (no scaling) diverges at the same lr and λ: the regression this guards
    first_sum, last_sum = _distill_sgd(scale_outputs=False)
    assert not (last_sum < first_sum), (first_sum, last_sum)


@pytest.mark.slow
def test_maml_rl_meta_gradient_matches_float64_finite_differences():
    """The second-order MAML-RL meta-gradient of a small Gaussian MLP policy, along random
    directions, against central differences of the meta-loss, all in float64."""
    with jax.enable_x64(True):
        policy = GaussianPolicy(2, widths=(8, 8), omni=False)
        params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.float64))
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
        apply = lambda p, o, f: policy.apply(p, o, f)
        keys = jax.random.split(jax.random.PRNGKey(1), 8)
        B, N, T = 2, 6, 5

        def traj(k1, k2, k3):
            return {"obs": jax.random.normal(k1, (B, N, T, 2), jnp.float64),
                    "actions": jax.random.normal(k2, (B, N, T, 2), jnp.float64),
                    "advantages": jax.random.normal(k3, (B, N, T), jnp.float64),
                    "mask": jnp.ones((B, N, T), jnp.float64).at[:, 0, 3:].set(0.0)}

        ep = {"joint": {"support": traj(*keys[:3]), "query": traj(*keys[3:6])}}
        loss = jax.jit(lambda p: losses.maml_rl(apply, inner_lr=0.5)(p, ep, "joint")[0])
        grad = jax.jit(jax.grad(loss))(params)
        leaves, tree = jax.tree_util.tree_flatten(params)
        for i, k in enumerate(jax.random.split(keys[6], 3)):
            ks = jax.random.split(k, len(leaves))
            d = tree.unflatten([jax.random.normal(kk, x.shape, jnp.float64) for kk, x in zip(ks, leaves)])
            eps = 1e-5
            shift = lambda s: jax.tree_util.tree_map(lambda x, y: x + s * y, params, d)
            fd = (loss(shift(eps)) - loss(shift(-eps))) / (2 * eps)
            analytic = sum(jnp.vdot(g, y) for g, y in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(d)))
            np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-9)
        # and the first-order gradient does not match: the check can tell them apart
        fo = jax.grad(lambda p: losses.maml_rl(apply, inner_lr=0.5, first_order=True)(p, ep, "joint")[0])(params)
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(fo),
                                                                   jax.tree_util.tree_leaves(grad)))
        assert diff > 1e-4, diff


def _small_episode(dtype, B=2, N=4, T=5, key=1):
    keys = jax.random.split(jax.random.PRNGKey(key), 6)

    def traj(k1, k2, k3):
        return {"obs": jax.random.normal(k1, (B, N, T, 2), dtype),
                "actions": jax.random.normal(k2, (B, N, T, 2), dtype),
                "advantages": jax.random.normal(k3, (B, N, T), dtype),
                "mask": jnp.ones((B, N, T), dtype).at[:, 0, 3:].set(0.0)}

    return traj(*keys[:3]), traj(*keys[3:])


@pytest.mark.parametrize("first_order,flow", [
    (False, "meta"),
    *[pytest.param(fo, f, marks=pytest.mark.slow) for fo in (False, True) for f in ("joint", "pre", "meta")
      if (fo, f) != (False, "meta")]])
def test_known_adapted_parameters_give_the_recomputed_meta_gradient(first_order, flow):
    """``maml_rl`` with the adapted parameters handed in (as the RL meta-iteration does, from
    sampling the queries) has the value, the outputs and the gradient of the path that recomputes
    the inner step; float64, on each flow of an Omni-Net policy (the meta flow, whose layers add a
    branch to the joint weights, in the everyday suite; every flow with ``--slow``)."""
    with jax.enable_x64(True):
        policy = GaussianPolicy(2, widths=(8, 8), omni=True)
        params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.float64))
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
        apply = lambda p, o, f: policy.apply(p, o, f)
        support, query = _small_episode(jnp.float64)
        meta = losses.maml_rl(apply, inner_lr=0.5, first_order=first_order)
        adapted = jax.vmap(lambda s: losses.adapt(apply, params, s, flow, lr=0.5))(support)
        plain = {flow: {"support": support, "query": query}}
        known = {flow: {"support": support, "query": query, "adapted": adapted}}
        # the value, the outputs, the gradient, and the gradient through a function of the outputs
        # (R_meta differentiates the query outputs); jitted, one compilation per episode structure
        @jax.jit
        def everything(p, ep):
            return (jax.value_and_grad(lambda p: meta(p, ep, flow), has_aux=True)(p),
                    jax.grad(lambda p: jnp.sum(jnp.sin(meta(p, ep, flow)[1])))(p))

        ((la, oa), ga), ha = everything(params, plain)
        ((lb, ob), gb), hb = everything(params, known)
        np.testing.assert_allclose(float(lb), float(la), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(ob), np.asarray(oa), rtol=1e-12, atol=1e-14)
        for a, b in zip(jax.tree_util.tree_leaves((ga, ha)), jax.tree_util.tree_leaves((gb, hb))):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-9, atol=1e-12)
        # the check can fail: a wrong known value changes the loss
        wrong = jax.tree_util.tree_map(lambda x: x + 0.1, adapted)
        bad = {flow: {"support": support, "query": query, "adapted": wrong}}
        assert abs(float(meta(params, bad, flow)[0]) - float(la)) > 1e-6


@pytest.mark.slow
def test_tasks_one_after_the_other_give_the_batched_results():
    """``task_chunk=1`` (a plain ``lax.map``, the CPU default) and ``2`` equal the all-at-once vmap:
    the inner steps of :func:`losses.adapt_tasks` and the MAML-RL loss, its outputs and gradient."""
    policy = GaussianPolicy(2, widths=(8,), omni=False)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    apply = lambda p, o, f: policy.apply(p, o, f)
    support, query = _small_episode(jnp.float32, B=3)
    per_task = jax.tree_util.tree_map(lambda x: jnp.stack([x, 1.1 * x, 0.9 * x]), params)
    ep = {"joint": {"support": support, "query": query}}
    ref_adapted = losses.adapt_tasks(apply, per_task, support, "joint", lr=0.5, task_chunk=None)
    ref = jax.value_and_grad(lambda p: losses.maml_rl(apply, inner_lr=0.5)(p, ep, "joint"), has_aux=True)(params)
    for chunk in (1, 2):
        got = losses.adapt_tasks(apply, per_task, support, "joint", lr=0.5, task_chunk=chunk)
        out = jax.value_and_grad(lambda p: losses.maml_rl(apply, inner_lr=0.5, task_chunk=chunk)(p, ep, "joint"),
                                 has_aux=True)(params)
        for a, b in zip(jax.tree_util.tree_leaves((ref_adapted, ref)), jax.tree_util.tree_leaves((got, out))):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    # the tasks really differ (a mix-up of their order would show)
    assert not np.allclose(np.asarray(ref_adapted["params"]["log_std_joint"][0]),
                           np.asarray(ref_adapted["params"]["log_std_joint"][1]))


def test_gaussian_kl_against_a_hand_computation():
    from omni_jax.rl.networks import gaussian_kl
    m0, s0 = jnp.array([0.0, 1.0]), jnp.log(jnp.array([1.0, 0.5]))
    m1, s1 = jnp.array([1.0, 1.0]), jnp.log(jnp.array([2.0, 0.5]))
    # dim 0: log(2/1) + (1 + 1)/(2*4) - 1/2; dim 1: 0
    np.testing.assert_allclose(float(gaussian_kl(m0, s0, m1, s1)), np.log(2.0) + 0.25 - 0.5, rtol=1e-6)
    assert float(gaussian_kl(m0, s0, m0, s0)) == 0.0


@pytest.mark.slow
def test_kl_bounded_step_is_the_plain_step_inside_the_bound_and_shortened_outside():
    from omni_jax.rl.networks import gaussian_kl
    with jax.enable_x64(True):
        policy = GaussianPolicy(2, widths=(8,), omni=False, init_log_std=-1.0)
        params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2), jnp.float64))
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
        apply = lambda p, o, f: policy.apply(p, o, f)
        support = jax.tree_util.tree_map(lambda x: x[0], _small_episode(jnp.float64)[0])
        plain = losses.adapt(apply, params, support, "joint", lr=0.1)

        def kl_of(new):
            m0, s0 = apply(params, support["obs"], "joint")
            m1, s1 = apply(new, support["obs"], "joint")
            mask = support["mask"]
            return float(jnp.sum(gaussian_kl(m0, s0, m1, s1) * mask) / jnp.sum(mask))

        full = kl_of(plain)
        assert full > 0
        loose = losses.adapt_kl_bounded(apply, params, support, "joint", lr=0.1, max_kl=10 * full)
        for a, b in zip(jax.tree_util.tree_leaves(loose), jax.tree_util.tree_leaves(plain)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
        delta = lambda new: jax.tree_util.tree_map(lambda x, y: x - y, new, params)
        for ratio in (1e-2, 1e-6):
            tight = losses.adapt_kl_bounded(apply, params, support, "joint", lr=0.1, max_kl=full * ratio)
            # the plain step scaled by sqrt(max_kl / KL); its KL is at most max_kl (here the KL grows
            # faster than quadratically in the step's length) and about max_kl for a tiny step
            for a, b in zip(jax.tree_util.tree_leaves(delta(tight)), jax.tree_util.tree_leaves(delta(plain))):
                np.testing.assert_allclose(np.asarray(a), np.sqrt(ratio) * np.asarray(b), rtol=1e-9, atol=1e-15)
            assert 0 < kl_of(tight) <= full * ratio * (1 + 1e-6)
        np.testing.assert_allclose(kl_of(tight), full * 1e-6, rtol=0.5)
