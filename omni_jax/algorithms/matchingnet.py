"""Matching Networks (Vinyals et al. 2016), as in Chen et al.'s ``matchingnet.py``.

A query x̂ is labelled by attention over the support set {(x_i, y_i)}:

    P(y | x̂, S) = sum_i a(x̂, x_i) y_i,   a(x̂, x_i) = softmax_i( s · c(f(x̂), g(x_i)) )    (Vinyals Eq. 1-2)

with c the cosine similarity and y_i one-hot. Trained with the negative log
of P at the query's class (``log(P + 1e-6)``, Chen et al.'s NLL).

* Without full context embeddings (``fce=False``) f = g = the backbone
  embedding and the output above is the whole algorithm (the paper's
  "Matching Networks" without FCE); c is the plain cosine and ``scale`` = 1
  with ``relu=False`` gives Vinyals' softmax over cosines.
* With full context embeddings (:class:`FullContextEmbedding`, Vinyals §2.1.2
  / Appendix, Chen et al.'s ``FullyContextualEmbedding``):
  g(x_i) = x_i + h→_i + h←_i, a bidirectional LSTM (hidden size D) over the
  support embeddings in their order; f(x̂) = the attention LSTM: K = |S|
  steps of ``a = softmax(h Gᵀ)``, ``r = a G``, ``(h, c) = LSTM([f, r], (h, c))``,
  ``h = h + f``, from ``h = f(x̂)``, ``c = 0``.

Chen et al. use ``s = 100`` on ``relu(cos)`` ("to strengthen the highest
probability after softmax"): the defaults here. The bidirectional LSTM reads
the support set as a sequence, so with FCE the output depends on the order of
the support set (as in Vinyals et al. and Chen et al.); without FCE it does
not.

The algorithm's outputs (the distillation target of R_meta, Eq. 13) are the
query class probabilities P ``[T, Q, N]`` (``outputs="probs"``) or
``log(P + 1e-6)`` (``"logits"``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.algorithms.episodic import EmbedFn, ModuleFn, check_outputs, embed_episode, one_hot

EPS = 1e-5


def _normalise(x: jnp.ndarray) -> jnp.ndarray:
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + EPS)


def matching_probs(support_g: jnp.ndarray, support_onehot: jnp.ndarray, query_f: jnp.ndarray, *,
                   scale: float = 100.0, relu: bool = True) -> jnp.ndarray:
    """``P(y | x̂, S) = softmax_i(scale · c(f, g_i)) @ onehot``: ``[..., S, D], [..., S, N], [..., Q, D] -> [..., Q, N]``
    (c the cosine, ``relu(c)`` with ``relu=True``)."""
    if support_g.shape[:-1] != support_onehot.shape[:-1] or support_g.shape[-1] != query_f.shape[-1]:
        raise ValueError(f"shapes: support {support_g.shape}, onehot {support_onehot.shape}, query {query_f.shape}")
    cos = jnp.einsum("...qd,...sd->...qs", _normalise(query_f), _normalise(support_g))
    if relu:
        cos = jax.nn.relu(cos)
    attention = jax.nn.softmax(scale * cos, axis=-1)
    return jnp.einsum("...qs,...sn->...qn", attention, support_onehot)


class _AttentionStep(nn.Module):
    """One step of the attention LSTM f (Chen et al.'s ``FullyContextualEmbedding.forward`` loop body)."""

    features: int

    @nn.compact
    def __call__(self, carry, f, g):
        h, c = carry
        a = jax.nn.softmax(jnp.einsum("tqd,tsd->tqs", h, g), axis=-1)
        r = jnp.einsum("tqs,tsd->tqd", a, g)
        (c, h), _ = nn.LSTMCell(self.features, name="cell")((c, h), jnp.concatenate([f, r], axis=-1))
        return (h + f, c), None


class FullContextEmbedding(nn.Module):
    """Vinyals et al.'s full context embeddings g (bidirectional LSTM) and f (attention LSTM).

    ``__call__(support_f [T, S, D], support_onehot, query_f [T, Q, D], train)`` returns
    ``(g [T, S, D], f [T, Q, D])``; the labels are unused (the signature of every meta module).
    """

    @nn.compact
    def __call__(self, support_f, support_onehot, query_f, train: bool = False):
        del support_onehot, train
        if support_f.ndim != 3 or query_f.ndim != 3 or support_f.shape[-1] != query_f.shape[-1]:
            raise ValueError(f"FCE expects [T, S, D] and [T, Q, D], got {support_f.shape}, {query_f.shape}")
        d, k = support_f.shape[-1], support_f.shape[1]
        out = nn.Bidirectional(nn.RNN(nn.LSTMCell(d, name="support_forward_cell")),
                               nn.RNN(nn.LSTMCell(d, name="support_backward_cell")), name="support_lstm")(support_f)
        g = support_f + out[..., :d] + out[..., d:]
        steps = nn.scan(_AttentionStep, variable_broadcast="params", split_rngs={"params": False},
                        in_axes=(nn.broadcast, nn.broadcast), length=k)
        (f, _), _ = steps(d, name="attention_lstm")((query_f, jnp.zeros_like(query_f)), query_f, g)
        return g, f


def matchingnet(embed_fn: EmbedFn, module_fn: Optional[ModuleFn], n_way: int, *, scale: float = 100.0,
                relu: bool = True, outputs: str = "logits"):
    """MatchingNet meta-loss over a batch of episodes (see the module doc).

    ``module_fn(params, flow, support_f, support_onehot, query_f) -> (g, f)`` applies the flow's
    :class:`FullContextEmbedding`; ``None`` switches FCE off. Returns ``(mean query NLL,
    outputs [T, Q, n_way])``.
    """
    check_outputs(outputs)

    def meta_loss(params, episode, flow) -> Tuple[jnp.ndarray, jnp.ndarray]:
        fs, fq = embed_episode(embed_fn, params, episode, flow)
        if fs.ndim != 3:
            raise ValueError(f"MatchingNet needs feature vectors [T, S, D], got {fs.shape}")
        onehot = one_hot(episode["support"]["y"], n_way, fs.dtype)
        g, f = (fs, fq) if module_fn is None else module_fn(params, flow, fs, onehot, fq)
        probs = matching_probs(g, onehot, f, scale=scale, relu=relu)
        logp = jnp.log(probs + 1e-6)
        nll = -jnp.take_along_axis(logp, episode["query"]["y"][..., None], axis=-1)[..., 0]
        return jnp.mean(nll), (probs if outputs == "probs" else logp)

    return meta_loss
