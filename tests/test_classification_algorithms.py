"""ProtoNet (Eq. 20), Baseline's fine-tuned head, and the method table."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omni_jax.algorithms.finetune import (FinetuneConfig, finetune_backbone_logits, finetune_linear_head,
                                          finetune_logits)
from omni_jax.algorithms.protonet import proto_logits, prototypes, protonet, squared_distances
from omni_jax.classification.methods import method_names, method_spec


def test_prototypes_and_logits_match_a_direct_computation():
    rng = np.random.default_rng(0)
    fs, ys = rng.normal(size=(6, 3)).astype(np.float32), np.array([2, 0, 1, 0, 2, 1])
    fq = rng.normal(size=(4, 3)).astype(np.float32)
    c = np.stack([fs[ys == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(prototypes(jnp.asarray(fs), jnp.asarray(ys), 3), c, rtol=1e-5)
    d = ((fq[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_allclose(proto_logits(fs, ys, fq, 3, "squared"), -d, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(proto_logits(fs, ys, fq, 3), -np.sqrt(d), rtol=1e-4, atol=1e-5)
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


def _torch_sgd_reference(f, y, cfg, key, n_way, head="linear", epochs=1):
    """A hand-written float64 transcription of Chen et al.'s loop with ``torch.optim.SGD``'s formula:
    g += wd*p; buf = g at the first step, else momentum*buf + (1-dampening)*g; p -= lr*buf."""
    k_init, k_perm = jax.random.split(key)
    kw, kb = jax.random.split(k_init)
    d = f.shape[1]
    bnd = 1 / np.sqrt(d)
    w = np.asarray(jax.random.uniform(kw, (d, n_way), minval=-bnd, maxval=bnd), np.float64)
    b = np.asarray(jax.random.uniform(kb, (n_way,), minval=-bnd, maxval=bnd), np.float64)
    p = {"w": w, "b": b} if head == "linear" else {"v": w, "g": np.linalg.norm(w, axis=0)}
    buf, t = None, 0
    perms = [np.asarray(jax.random.permutation(k, len(y))) for k in jax.random.split(k_perm, epochs)]
    for perm in perms:
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x, lab = f[idx].astype(np.float64), y[idx]
            if head == "linear":
                z = x @ p["w"] + p["b"]
            else:
                xn = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-5)
                nv = np.linalg.norm(p["v"], axis=0)
                z = 2.0 * xn @ (p["v"] * p["g"] / nv)
            pr = np.exp(z - z.max(1, keepdims=True)); pr /= pr.sum(1, keepdims=True)
            pr[np.arange(len(lab)), lab] -= 1
            dz = pr / len(lab)
            if head == "linear":
                g = {"w": x.T @ dz, "b": dz.sum(0)}
            else:  # chain rule through W = g * v / |v| by hand
                dW = 2.0 * xn.T @ dz
                nv = np.linalg.norm(p["v"], axis=0)
                u = p["v"] / nv
                gg = (dW * u).sum(0)
                g = {"g": gg, "v": p["g"] / nv * (dW - u * gg)}
            g = {k: g[k] + cfg.weight_decay * p[k] for k in p}
            buf = g if t == 0 else {k: cfg.momentum * buf[k] + (1 - cfg.dampening) * g[k] for k in p}
            p = {k: p[k] - cfg.lr * buf[k] for k in p}
            t += 1
    return p


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_finetune_follows_pytorch_sgd_with_dampening(head):
    """Two epochs on 6 points, batch 4 (a full and a short batch each), against PyTorch's SGD formula."""
    rng = np.random.default_rng(2)
    f = rng.normal(size=(6, 3)).astype(np.float32)
    y = np.array([0, 1, 0, 1, 0, 1])
    cfg = FinetuneConfig(epochs=2, batch_size=4, lr=0.1, momentum=0.9, dampening=0.9, weight_decay=0.01, head=head)
    key = jax.random.PRNGKey(0)
    got = finetune_linear_head(key, jnp.asarray(f), jnp.asarray(y), 2, cfg)
    want = _torch_sgd_reference(f, y, cfg, key, 2, head, epochs=2)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)
    # Without dampening the steps differ: the reference would catch a dropped dampening.
    nodamp = _torch_sgd_reference(f, y, dataclasses.replace(cfg, dampening=0.0), key, 2, head, epochs=2)
    assert not np.allclose(nodamp[k], want[k], atol=1e-4)


@pytest.mark.slow
def test_chen_defaults_and_backbone_finetuning():
    cfg = FinetuneConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay) == \
        (100, 4, 0.01, 0.9, 0.9, 1e-3)
    with pytest.raises(ValueError, match="head"):
        FinetuneConfig(head="mlp")
    rng = np.random.default_rng(4)
    sx, qx = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    sy = np.array([0, 1, 2, 0, 1, 2])
    embed = lambda p, x: jnp.tanh(x @ p)
    w = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    key = jax.random.PRNGKey(1)
    c0 = FinetuneConfig(epochs=3)
    frozen = finetune_logits(key, embed(w, sx), sy, embed(w, qx), 3, c0)
    np.testing.assert_allclose(finetune_backbone_logits(key, embed, w, sx, sy, qx, 3, c0), frozen, rtol=1e-5)
    tuned = finetune_backbone_logits(key, embed, w, sx, sy, qx, 3,
                                     dataclasses.replace(c0, backbone_steps=5, backbone_lr=0.5))
    assert tuned.shape == (4, 3) and not np.allclose(tuned, frozen, atol=1e-3)


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
        method_spec("siamese")
    assert set(method_names()) == {"omni_proto", "protonet", "baseline", "maml", "omni_maml", "ensemble", "joint",
                            "baseline_pp", "matchingnet", "omni_matching", "relationnet", "omni_relation", "gnn",
                            "omni_gnn"}
    # The new meta algorithms: their own algorithm on the new task for the meta head, no fine-tuning.
    for name, algo in (("matchingnet", "matching"), ("relationnet", "relation"), ("gnn", "gnn")):
        plain, omni = method_spec(name), method_spec(f"omni_{algo}" if algo != "matching" else "omni_matching")
        assert plain.default_head == "meta" and plain.head_algorithms("meta") == (("joint", algo),)
        assert omni.omni and omni.head_algorithms("meta") == (("meta", algo),)
        assert omni.head_algorithms("joint") == (("joint", "finetune"), ("joint", algo))
        assert len(omni.head_groups("ensemble")) == 3
    assert method_spec("baseline_pp").pretrain == "cosine" and method_spec("baseline").pretrain == "linear"
    assert method_spec("omni_gnn", pretrain="cosine").pretrain == "cosine"
    with pytest.raises(ValueError, match="pre-training"):
        method_spec("omni_gnn", pretrain="l2")
