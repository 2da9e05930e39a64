"""Grad-CAM (paper §7.1, Figure 11; omni_jax.classification.cam) against hand computations."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.classification import cam


def test_grad_cam_is_relu_of_the_gradient_weighted_channels():
    a = jnp.arange(2 * 2 * 2 * 3, dtype=jnp.float32).reshape(2, 2, 2, 3) - 5.0
    g = jnp.stack([jnp.full((2, 2, 3), v) for v in (1.0, -1.0)]) * jnp.array([1.0, 0.5, 0.0])
    out = np.asarray(cam.grad_cam(a, g))
    for b in range(2):
        w = np.asarray(g[b]).mean(axis=(0, 1))                       # by hand: channel weights
        want = np.maximum((np.asarray(a[b]) * w).sum(-1), 0.0)
        np.testing.assert_allclose(out[b], want, rtol=1e-6)
    assert cam.grad_cam(a, g, size=(6, 6)).shape == (2, 6, 6)
    n = np.asarray(cam.normalise(cam.grad_cam(a, g)))
    assert n.max() == pytest.approx(1.0) and n.min() >= 0.0


class Tiny(nn.Module):
    """A linear 'network': a 1x1 convolution named feat, then a linear score of its map."""

    @nn.compact
    def __call__(self, x):
        a = nn.Conv(3, (1, 1), use_bias=False, name="feat")(x)
        return jnp.sum(a * jnp.arange(1.0, 1.0 + a.shape[-1]), axis=(1, 2, 3))


def test_layer_gradients_of_a_linear_score_are_its_weights():
    net = Tiny()
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 2))
    params = net.init(jax.random.PRNGKey(1), x)
    a, g = cam.layer_gradients(lambda: net.apply(params, x), "feat")
    kernel = params["params"]["feat"]["kernel"][0, 0]                # [2, 3]
    np.testing.assert_allclose(a, np.einsum("bhwi,ic->bhwc", x, kernel), rtol=1e-5)
    np.testing.assert_allclose(g, np.broadcast_to(np.arange(1.0, 4.0), a.shape))   # ∂S/∂A by hand
    want = np.maximum((np.asarray(a) * np.arange(1.0, 4.0)).sum(-1), 0.0)
    np.testing.assert_allclose(cam.grad_cam(a, g), want, rtol=1e-5)
    with pytest.raises(ValueError, match="'nope' ran 0 times"):
        cam.layer_gradients(lambda: net.apply(params, x), "nope")


def test_flow_cams_score_the_predicted_class():
    """A prototype flow: the queries are the support images, so each is predicted as its own class."""
    class Embed(nn.Module):
        @nn.compact
        def __call__(self, x):
            a = nn.Conv(4, (3, 3), name="last")(x)
            return a.reshape(a.shape[0], -1)

    net = Embed()
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 1))
    params = net.init(jax.random.PRNGKey(1), x)
    embed = lambda v: net.apply(params, v)
    for algos in (("proto",), ("finetune", "proto")):
        maps, pred = cam.flow_cams(embed, x, jnp.arange(3), x, 3, cam.FlowScorer(algos), "last", jax.random.PRNGKey(2))
        assert maps.shape == (3, 5, 5) and float(maps.max()) <= 1.0 + 1e-6 and float(maps.min()) >= 0.0
        if algos == ("proto",):
            assert list(np.asarray(pred)) == [0, 1, 2]
