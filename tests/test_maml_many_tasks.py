"""Many tasks at once: the dense MAML path, task chunks and pre-training chunks give the plain
paths' numbers, and rematerialised chunks bound a step's memory."""
import functools
import sys
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax import config as config_lib
from omni_jax.algorithms import l2_pretrain, mse
from omni_jax.algorithms.maml import map_tasks, maml, maml_dense
from omni_jax.errors import OmniJaxError
from omni_jax.nn import FLOWS, OmniMLP
from omni_jax.nn.models import mlp_dense_layers

maml_module = sys.modules["omni_jax.algorithms.maml"]   # the package's `maml` attribute is the function


def setup(omni: bool, tasks: int = 7):
    """A float64 Omni-MLP (first layer plain) with perturbed parameters, and an episode."""
    model = OmniMLP(out_features=1, widths=(8, 8), activation="tanh", omni=omni, num_plain=1 if omni else 0)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    params = jax.tree_util.tree_map(
        lambda a: a.astype(jnp.float64) + 0.1 * jax.random.normal(jax.random.PRNGKey(3), a.shape, jnp.float64), params)
    x = jax.random.uniform(jax.random.PRNGKey(1), (tasks, 9, 1), jnp.float64, -5, 5)
    y = 2.0 * jnp.sin(x - jax.random.uniform(jax.random.PRNGKey(2), (tasks, 1, 1), jnp.float64, 0, 3))
    episode = {"support": {"x": x[:, :5], "y": y[:, :5]}, "query": {"x": x[:, 5:], "y": y[:, 5:]}}
    return model, params, episode


def value_and_grad(alg, params, episode, flow):
    """Jitted: one compilation costs less than running the second-order graph op by op."""
    fn = jax.jit(jax.value_and_grad(lambda p, ep: alg(p, ep, flow), has_aux=True))
    (loss, preds), grads = fn(params, episode)
    return loss, preds, grads


def assert_trees_close(a, b, rtol):
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("omni,steps,first_order,flows", [
    (True, 1, False, ("meta",)),        # the everyday suite: a flow with branches (two copies per layer)
    pytest.param(True, 1, False, FLOWS, marks=pytest.mark.slow),
    pytest.param(True, 3, False, FLOWS, marks=pytest.mark.slow),
    pytest.param(True, 2, True, FLOWS, marks=pytest.mark.slow),
    pytest.param(False, 1, False, FLOWS, marks=pytest.mark.slow)])
def test_dense_path_equals_the_generic_one_with_second_order_gradients(omni, steps, first_order, flows):
    with jax.enable_x64(True):
        model, params, episode = setup(omni)
        kw = dict(inner_lr=0.3, num_steps=steps, first_order=first_order)
        generic = maml(lambda p, x, flow: model.apply(p, x, flow), mse, task_chunk=None, **kw)
        dense = maml_dense(lambda p, flow: mlp_dense_layers(model, p, flow), mse, **kw)
        for flow in flows:
            la, pa, ga = value_and_grad(generic, params, episode, flow)
            lb, pb, gb = value_and_grad(dense, params, episode, flow)
            np.testing.assert_allclose(float(lb), float(la), rtol=1e-10)
            np.testing.assert_allclose(np.asarray(pb), np.asarray(pa), rtol=1e-9, atol=1e-12)
            assert_trees_close(gb, ga, rtol=1e-8)


def test_first_and_second_order_differ_so_the_comparison_can_fail():
    with jax.enable_x64(True):
        model, params, episode = setup(True)
        layers = lambda p, flow: mlp_dense_layers(model, p, flow)
        g2 = value_and_grad(maml_dense(layers, mse, inner_lr=0.3), params, episode, "meta")[2]
        g1 = value_and_grad(maml_dense(layers, mse, inner_lr=0.3, first_order=True), params, episode, "meta")[2]
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(g1),
                                                                   jax.tree_util.tree_leaves(g2)))
        assert diff > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [2, 3])
def test_task_chunks_give_the_unchunked_results_in_the_tasks_order(chunk):
    with jax.enable_x64(True):
        model, params, episode = setup(True, tasks=7)
        apply = lambda p, x, flow: model.apply(p, x, flow)
        whole = value_and_grad(maml(apply, mse, inner_lr=0.3, task_chunk=None), params, episode, "meta")
        parts = value_and_grad(maml(apply, mse, inner_lr=0.3, task_chunk=chunk), params, episode, "meta")
        np.testing.assert_allclose(float(parts[0]), float(whole[0]), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(parts[1]), np.asarray(whole[1]), rtol=1e-12)
        assert_trees_close(parts[2], whole[2], rtol=1e-10)
        dense = maml_dense(lambda p, flow: mlp_dense_layers(model, p, flow), mse, inner_lr=0.3, task_chunk=chunk)
        np.testing.assert_allclose(np.asarray(dense(params, episode, "meta")[1]), np.asarray(whole[1]), rtol=1e-9)


def test_map_tasks_returns_every_task_once_in_order():
    episode = {"i": jnp.arange(10)}
    out = map_tasks(lambda p, task: (task["i"] * 1.0, task["i"]), None, episode, task_chunk=3)
    assert np.asarray(out[1]).tolist() == list(range(10))  # 3 strided chunks of 3 and a remainder of 1


def _inner_step_task(params, task):
    """One second-order SGD step of a tiny tanh regression on the task's support set."""
    def loss(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w"]) @ p["v"] - y) ** 2)
    g = jax.grad(loss)(params, task["sx"], task["sy"])
    adapted = jax.tree_util.tree_map(lambda a, b: a - 0.3 * b, params, g)
    return loss(adapted, task["qx"], task["qy"]), jnp.tanh(task["qx"] @ adapted["w"]) @ adapted["v"]


def test_rematerialised_chunks_give_the_same_values_and_second_order_gradients():
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.PRNGKey(0), 6)
        params = {"w": jax.random.normal(k[0], (3, 5), jnp.float64), "v": jax.random.normal(k[1], (5, 1), jnp.float64)}
        episode = {"sx": jax.random.normal(k[2], (11, 4, 3), jnp.float64), "sy": jax.random.normal(k[3], (11, 4, 1), jnp.float64),
                   "qx": jax.random.normal(k[4], (11, 6, 3), jnp.float64), "qy": jax.random.normal(k[5], (11, 6, 1), jnp.float64)}

        def run(chunk, remat):
            f = lambda p: (lambda out: (jnp.mean(out[0]), out[1]))(map_tasks(_inner_step_task, p, episode, chunk, remat))
            return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

        (l0, o0), g0 = run(None, True)
        for remat in (True, False):
            (l1, o1), g1 = run(3, remat)   # 3 strided chunks of 3 and a remainder of 2
            np.testing.assert_allclose(float(l1), float(l0), rtol=1e-13)
            np.testing.assert_allclose(np.asarray(o1), np.asarray(o0), rtol=1e-13)
            assert_trees_close(g1, g0, rtol=1e-12)


def test_rematerialised_chunks_bound_the_memory_of_a_step():
    """The compiled meta-gradient's scratch memory (XLA's own count, no timing): chunks of 250
    rematerialised need a fraction of what all 4,000 tasks at once need; chunks that are not
    rematerialised need more than no chunks at all (``lax.map`` keeps every chunk's intermediates)."""
    model = OmniMLP(out_features=1, widths=(64, 64), activation="tanh", omni=False)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4000, 20, 1))
    episode = {"support": {"x": x[:, :10], "y": jnp.sin(x[:, :10])}, "query": {"x": x[:, 10:], "y": jnp.sin(x[:, 10:])}}
    layers = lambda p, flow: mlp_dense_layers(model, p, flow)

    def scratch_bytes(chunk, remat):
        alg = maml_dense(layers, mse, inner_lr=0.01, task_chunk=chunk)
        def meta_loss(p):
            with mock.patch.object(maml_module, "map_tasks", functools.partial(map_tasks, remat=remat)):
                return alg(p, episode, "joint")[0]
        return jax.jit(jax.grad(meta_loss)).lower(params).compile().memory_analysis().temp_size_in_bytes

    whole, remat, kept = scratch_bytes(None, True), scratch_bytes(250, True), scratch_bytes(250, False)
    assert remat < whole / 4, (remat, whole)
    assert kept > whole, (kept, whole)


@pytest.mark.parametrize("n", [14, pytest.param(12, marks=pytest.mark.slow)])  # 4 strided chunks of 3 (+ 2)
def test_pretraining_in_chunks_gives_the_whole_batchs_loss_outputs_and_gradients(n):
    with jax.enable_x64(True):
        model = OmniMLP(out_features=1, widths=(8, 8), activation="tanh", omni=True)
        params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.float64))
        params = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) + 0.1 * jax.random.normal(jax.random.PRNGKey(3), a.shape, jnp.float64), params)
        x = jax.random.uniform(jax.random.PRNGKey(1), (n, 1), jnp.float64, -5, 5)
        batch = {"x": x, "y": jnp.sin(x) + 0.1 * x ** 2}
        apply = lambda p, x, flow: model.apply(p, x, flow)

        def run(chunk):
            pre = l2_pretrain(apply, batch_chunk=chunk)
            return jax.jit(jax.value_and_grad(lambda p: pre(p, batch, "pre"), has_aux=True))(params)

        (l0, o0), g0 = run(None)
        (l1, o1), g1 = run(3)
        np.testing.assert_allclose(float(l1), float(l0), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(o1), np.asarray(o0), rtol=1e-13)   # in the batch's order
        assert_trees_close(g1, g0, rtol=1e-12)
        # the check can fail: an unweighted mean of the chunks' losses differs when there is a remainder
        if n % 3:
            whole = float(l0)
            per_chunk = [float(mse(apply(params, batch["x"][i::4][:3], "pre"), batch["y"][i::4][:3])) for i in range(4)]
            assert abs(np.mean(per_chunk + [float(mse(apply(params, x[12:], "pre"), batch["y"][12:]))]) - whole) > 1e-6


def test_dense_layers_need_full_width_branches():
    model = OmniMLP(out_features=1, widths=(8,), branch_rank=2)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    with pytest.raises(ValueError, match="full-width branches"):
        mlp_dense_layers(model, params, "meta")
    from omni_jax.sinusoid import train as tr
    cfg = config_lib.apply_overrides(config_lib.load_config("sinusoid", quick=True), ["model.branch_rank=2"])
    with pytest.raises(OmniJaxError, match="train.maml_impl='dense' needs full-width branches"):
        tr.check(cfg)
    tr.check(config_lib.apply_overrides(cfg, ["train.maml_impl=generic"]))


@pytest.mark.slow
def test_sinusoid_step_is_the_same_with_either_implementation():
    """Three training steps of Omni-Training: the dense and the generic MAML give the same parameters
    (float32, the sums run in another order, and Adam's normalised steps amplify rounding in tiny
    gradients: agreement to 1e-4, where each step moves a parameter by about Adam's lr, 1e-2)."""
    from omni_jax.sinusoid import train as tr
    base = config_lib.apply_overrides(config_lib.load_config("sinusoid", quick=True),
                                      ["data.num_train_tasks=100", "train.chunk_size=3"])
    states = []
    for impl in ("dense", "generic"):
        cfg = config_lib.apply_overrides(base, [f"train.maml_impl={impl}"])
        program = tr.setup(cfg, "omni", tr.training_set(cfg))
        states.append(program.chunk(program.state, program.data)[0])
    for a, b in zip(jax.tree_util.tree_leaves(states[0].params), jax.tree_util.tree_leaves(states[1].params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(states[0].params),
                                                               jax.tree_util.tree_leaves(program.state.params)))
    assert moved > 1e-2


@pytest.mark.parametrize("activation", ["relu", pytest.param("swish", marks=pytest.mark.slow)])
def test_dense_path_with_a_closed_form_or_an_autodiff_derivative(activation):
    """relu has a closed-form derivative in the table, swish falls back to forward-mode autodiff."""
    with jax.enable_x64(True):
        _, params, episode = setup(True)
        model = OmniMLP(out_features=1, widths=(8, 8), activation=activation, num_plain=1)
        generic = maml(lambda p, x, flow: model.apply(p, x, flow), mse, inner_lr=0.3, num_steps=2, task_chunk=None)
        dense = maml_dense(lambda p, flow: mlp_dense_layers(model, p, flow), mse, inner_lr=0.3, num_steps=2)
        la, pa, ga = value_and_grad(generic, params, episode, "meta")
        lb, pb, gb = value_and_grad(dense, params, episode, "meta")
        np.testing.assert_allclose(float(lb), float(la), rtol=1e-10)
        assert_trees_close(gb, ga, rtol=1e-8)


def _conv_task(params, task, unroll, steps=3):
    """``steps`` second-order SGD steps of a one-convolution classifier on the task's support set."""
    def loss(p, x, y):
        h = jax.lax.conv_general_dilated(x, p["k"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        logits = jnp.mean(jnp.tanh(h), axis=(1, 2)) @ p["w"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
    adapted, _ = maml_module.sgd_adapt(lambda p: loss(p, task["sx"], task["sy"]), params, lr=0.5, num_steps=steps,
                                       unroll=unroll)
    return loss(adapted, task["qx"], task["qy"]), adapted["w"]


def test_unrolled_inner_loop_and_task_loop_give_the_rolled_values_and_second_order_gradients():
    """``unroll=True`` (the classification path: inlined inner steps, tasks one after another) is the rolled
    scan's computation exactly: losses, per-task outputs and second-order meta-gradients in float64."""
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.PRNGKey(0), 6)
        params = {"k": 0.5 * jax.random.normal(k[0], (3, 3, 2, 4), jnp.float64),
                  "w": jax.random.normal(k[1], (4, 3), jnp.float64)}
        episode = {"sx": jax.random.normal(k[2], (4, 6, 5, 5, 2), jnp.float64),
                   "sy": jax.random.randint(k[3], (4, 6), 0, 3),
                   "qx": jax.random.normal(k[4], (4, 5, 5, 5, 2), jnp.float64),
                   "qy": jax.random.randint(k[5], (4, 5), 0, 3)}

        def run(chunk, unroll):
            f = lambda p: (lambda out: (jnp.mean(out[0]), out[1]))(
                map_tasks(lambda q, t: _conv_task(q, t, unroll), p, episode, chunk, unroll=unroll))
            return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

        (l0, o0), g0 = run(None, 1)             # one vmap, rolled inner loop
        for chunk, unroll in ((1, True), (None, True), (1, 1)):
            (l1, o1), g1 = run(chunk, unroll)
            np.testing.assert_allclose(float(l1), float(l0), rtol=1e-12)
            np.testing.assert_allclose(np.asarray(o1), np.asarray(o0), rtol=1e-11)
            assert_trees_close(g1, g0, rtol=1e-10)
        # the adaptation moved the head, so the outputs compared are not the initial ones
        assert float(jnp.max(jnp.abs(o0 - params["w"]))) > 1e-3
