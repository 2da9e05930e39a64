"""A meta-training algorithm the package does not ship, plugged into the Omni-Loss: a cosine
prototype classifier (queries scored by the scaled cosine similarity to each class mean of the
support features, as in Chen et al.'s Baseline++ head and Gidaris & Komodakis).

    omni-jax classify --config experiments/bring_your_own/cosine_protos.py --method omni_cosproto,cosproto,protonet

Registering it (once, in this file) gives the methods ``cosproto`` (the algorithm alone) and
``omni_cosproto`` (Omni-Training over it). The config is the synthetic images' (no files).
"""
import jax
import jax.numpy as jnp
import optax

from omni_jax.algorithms.episodic import embed_episode
from omni_jax.classification import MetaAlgorithm, register_meta_algorithm
from omni_jax.configs import classify_synthetic


def cosine_protos(embed_fn, n_way: int, outputs: str = "logits", scale: float = 10.0):
    """``(params, episode, flow) -> (loss, outputs [T, Q, n_way])``: the mean query cross-entropy
    of ``scale · cos(F(x), c_k)``, ``c_k`` the class means of the support features."""

    def algorithm(params, episode, flow):
        fs, fq = embed_episode(embed_fn, params, episode, flow)                 # [T, S, D], [T, Q, D]
        onehot = jax.nn.one_hot(episode["support"]["y"], n_way)                 # [T, S, N]
        protos = jnp.einsum("tsn,tsd->tnd", onehot, fs) / onehot.sum(1)[..., None]
        unit = lambda v: v / (jnp.linalg.norm(v, axis=-1, keepdims=True) + 1e-8)
        logits = scale * jnp.einsum("tqd,tnd->tqn", unit(fq), unit(protos))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, episode["query"]["y"]).mean()
        return loss, jax.nn.softmax(logits) if outputs == "probs" else logits

    return algorithm


register_meta_algorithm(MetaAlgorithm(
    "cosproto", build=lambda thread, tc, outputs: cosine_protos(thread.fn("features"), tc.n_way, outputs)),
    replace=True)   # this file may be loaded more than once in one process


def get_config():
    c = classify_synthetic.get_config()
    c.train.methods = ("omni_cosproto", "cosproto")
    return c
