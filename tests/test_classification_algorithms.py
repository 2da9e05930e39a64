"""ProtoNet (Eq. 20), Baseline's fine-tuned head, and the method table."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.algorithms.finetune import FinetuneConfig, finetune_linear_head, finetune_logits
from omni_jax.algorithms.protonet import proto_logits, prototypes, protonet, squared_distances
from omni_jax.classification.methods import METHODS, method_spec


def test_prototypes_and_logits_match_a_direct_computation():
    rng = np.random.default_rng(0)
    fs, ys = rng.normal(size=(6, 3)).astype(np.float32), np.array([2, 0, 1, 0, 2, 1])
    fq = rng.normal(size=(4, 3)).astype(np.float32)
    c = np.stack([fs[ys == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(prototypes(jnp.asarray(fs), jnp.asarray(ys), 3), c, rtol=1e-5)
    d = ((fq[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_allclose(proto_logits(fs, ys, fq, 3), -d, rtol=1e-4, atol=1e-5)
    assert float(jnp.min(squared_distances(jnp.asarray(fq), jnp.asarray(fq)))) >= 0.0


def test_protonet_loss_is_query_cross_entropy_over_tasks():
    rng = np.random.default_rng(1)
    t, n, k, q, d = 2, 3, 2, 4, 5
    ep = {"support": {"x": jnp.asarray(rng.normal(size=(t, n * k, d)), jnp.float32),
                      "y": jnp.tile(jnp.repeat(jnp.arange(n), k), (t, 1))},
          "query": {"x": jnp.asarray(rng.normal(size=(t, n * q, d)), jnp.float32),
                    "y": jnp.tile(jnp.repeat(jnp.arange(n), q), (t, 1))}}
    scale = jnp.asarray(2.0)
    loss, logits = protonet(lambda p, x, flow: p * x, n)(scale, ep, "meta")
    want = []
    for i in range(t):
        lg = proto_logits(2 * ep["support"]["x"][i], ep["support"]["y"][i], 2 * ep["query"]["x"][i], n)
        want.append(-jax.nn.log_softmax(lg)[jnp.arange(n * q), ep["query"]["y"][i]])
    np.testing.assert_allclose(loss, jnp.mean(jnp.stack(want)), rtol=1e-5)
    assert logits.shape == (t, n * q, n)
    _, probs = protonet(lambda p, x, flow: p * x, n, outputs="probs")(scale, ep, "meta")
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_finetune_follows_pytorch_sgd_momentum_weight_decay():
    """One epoch on 6 points, batch 4 (a full and a short batch), against a hand-written loop."""
    rng = np.random.default_rng(2)
    f = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 0, 1])
    cfg = FinetuneConfig(epochs=1, batch_size=4, lr=0.1, momentum=0.9, weight_decay=0.01)
    key = jax.random.PRNGKey(0)
    got = finetune_linear_head(key, jnp.asarray(f), jnp.asarray(y), 2, cfg)
    # Re-create the init and the permutation the function uses.
    k_init, k_perm = jax.random.split(key)
    kw, kb = jax.random.split(k_init)
    b = 1 / np.sqrt(3)
    w0 = np.asarray(jax.random.uniform(kw, (3, 2), minval=-b, maxval=b), np.float64)
    b0 = np.asarray(jax.random.uniform(kb, (2,), minval=-b, maxval=b), np.float64)
    perm = np.asarray(jax.random.permutation(jax.random.split(k_perm, 1)[0], 6))
    w, bias, mw, mb = w0, b0, np.zeros_like(w0), np.zeros_like(b0)
    for idx in (perm[:4], perm[4:]):
        x, t = f[idx].astype(np.float64), y[idx]
        z = x @ w + bias
        p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
        p[np.arange(len(t)), t] -= 1
        gw, gb = x.T @ p / len(t) + 0.01 * w, p.mean(0) + 0.01 * bias
        mw, mb = 0.9 * mw + gw, 0.9 * mb + gb
        w, bias = w - 0.1 * mw, bias - 0.1 * mb
    np.testing.assert_allclose(got["w"], w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["b"], bias, rtol=1e-4, atol=1e-6)


def test_finetuned_head_separates_separable_classes():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 8)) * 4
    fs = (np.repeat(centres, 5, 0) + rng.normal(size=(25, 8))).astype(np.float32)
    fq = (np.repeat(centres, 3, 0) + rng.normal(size=(15, 8))).astype(np.float32)
    ys, yq = np.repeat(np.arange(5), 5), np.repeat(np.arange(5), 3)
    logits = jax.jit(lambda k: finetune_logits(k, fs, ys, fq, 5))(jax.random.PRNGKey(0))
    assert float(jnp.mean(jnp.argmax(logits, -1) == yq)) == 1.0


def test_method_table_and_heads():
    omni = method_spec("omni_proto")
    assert omni.omni and omni.weights.needs_teacher and omni.default_head == "ensemble"
    assert omni.head_algorithms("pre") == (("pre", "finetune"),)
    assert omni.head_algorithms("meta") == (("meta", "proto"),)
    assert omni.head_algorithms("joint") == (("joint", "finetune"), ("joint", "proto"))
    assert len(omni.head_groups("ensemble")) == 3
    base = method_spec("baseline")
    assert not base.omni and base.head_algorithms("pre") == (("joint", "finetune"),)
    assert base.head_algorithms("ensemble") == (("joint", "finetune"),)
    assert method_spec("protonet").head_algorithms("meta") == (("joint", "proto"),)
    assert method_spec("maml").head_algorithms("meta") == (("joint", "maml"),)
    ens = method_spec("ensemble")
    assert ens.twin and ens.head_algorithms("ensemble") == (("pre", "finetune"), ("meta", "proto"))
    # Table 6: a flow whose losses are off is not used at inference.
    abl = method_spec("omni_proto", {"pre": False, "distill_pre": False})
    assert [g[0][0] for g in abl.head_groups("ensemble")] == ["joint", "meta"]
    with pytest.raises(ValueError, match="not trained"):
        abl.head_algorithms("pre")
    with pytest.raises(ValueError, match="unknown method"):
        method_spec("relationnet")
    assert set(METHODS) == {"omni_proto", "protonet", "baseline", "maml", "omni_maml", "ensemble", "joint"}
