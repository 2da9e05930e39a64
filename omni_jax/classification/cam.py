"""Class-activation maps (paper §7.1, Figure 11: where each flow looks), by Grad-CAM.

Grad-CAM (Selvaraju et al., 2017) of a score ``S`` on a feature map ``A`` (``[B, h, w, C]``):
the weight of channel ``c`` is the spatial mean of ``∂S/∂A_c``, and the map is
``relu(Σ_c w_c · A_c)``, upsampled to the image. The paper does not say how its Figure 11's maps
are computed; Grad-CAM of the predicted class's score on the last convolutional block is the
usual choice and is what ``experiments.glyph_analysis --parts cam`` draws.

* :func:`grad_cam`: the map from ``A`` and ``∂S/∂A`` (pure; the unit of the tests).
* :func:`layer_gradients`: ``A`` and ``∂S/∂A`` for the output of a named submodule of a Flax
  network, found by :func:`flax.linen.intercept_methods` (the model's code is left alone: a zero
  is added to that output and ``S`` is differentiated with respect to it).
* :func:`flow_cams`: the maps of one flow of a few-shot network on query images, the score being
  the flow's test-time head on a support set (§4.3): ``-d(F(x), c_k)`` of the predicted class's
  prototype for a meta-trained flow, the fine-tuned linear head's logit for a pre-trained one,
  both summed for a flow trained by both (the joint flow).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from omni_jax.algorithms.finetune import FinetuneConfig, finetune_logits
from omni_jax.algorithms.protonet import proto_logits


def grad_cam(feature_map: jnp.ndarray, gradients: jnp.ndarray, size: Tuple[int, int] = None) -> jnp.ndarray:
    """Grad-CAM ``relu(Σ_c mean_hw(∂S/∂A)_c · A_c)``, ``[B, h, w]`` (``[B, *size]`` bilinearly
    upsampled when ``size`` is given), from ``feature_map`` ``A`` and ``gradients`` ``∂S/∂A``
    (both ``[B, h, w, C]``)."""
    weights = jnp.mean(gradients, axis=(1, 2))                               # [B, C]
    cam = jax.nn.relu(jnp.einsum("bhwc,bc->bhw", feature_map, weights))
    if size is not None:
        cam = jax.image.resize(cam, (cam.shape[0],) + tuple(size), "bilinear")
    return cam


def normalise(cam: jnp.ndarray) -> jnp.ndarray:
    """Each map scaled to [0, 1] by its maximum (an all-zero map stays zero)."""
    top = jnp.max(cam, axis=tuple(range(1, cam.ndim)), keepdims=True)
    return cam / jnp.maximum(top, 1e-12)


def layer_gradients(score_fn: Callable[[], jnp.ndarray], layer: str) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """``(A, ∂ΣS/∂A)``: the output ``A`` of the submodule named ``layer`` (its ``__call__``, called
    once while ``score_fn()`` runs) and the gradient of the sum of the scores ``score_fn()``
    (``[B]``, each image's own score) with respect to it. Raises ``ValueError`` when no
    submodule of that name runs, or one runs more than once."""

    def scores(delta):
        seen = []

        def interceptor(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and context.module.name == layer:
                seen.append(out)
                if delta is not None:
                    out = out + delta
            return out

        with nn.intercept_methods(interceptor):
            s = score_fn()
        if len(seen) != 1:
            raise ValueError(f"the submodule {layer!r} ran {len(seen)} times while scoring (expected once)")
        return jnp.sum(s), seen[0]

    _, a = scores(None)
    grads = jax.grad(lambda d: scores(d)[0])(jnp.zeros_like(a))
    return a, grads


@dataclasses.dataclass(frozen=True)
class FlowScorer:
    """How one flow scores a query (see the module doc): ``algorithms`` among ``"finetune"`` and
    the feature-based meta algorithms (``"proto"``), ``finetune`` the new head's settings."""

    algorithms: Sequence[str]
    finetune: FinetuneConfig = FinetuneConfig()
    distance: str = "euclidean"


def flow_cams(embed: Callable[[jnp.ndarray], jnp.ndarray], support_x, support_y, query_x, n_way: int,
              scorer: FlowScorer, layer: str, key: jax.Array) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """``(maps [Q, H, W] in [0, 1], predicted class [Q])`` of the queries: Grad-CAM on the output of
    the submodule ``layer`` of the predicted class's score under the flow's test-time head, built
    on ``embed(support_x)`` (``embed(x) -> [B, D]`` features; the support side is held fixed)."""
    fs = jax.lax.stop_gradient(embed(support_x))

    def logits_of(fq):
        out = []
        for algo in scorer.algorithms:
            if algo == "finetune":
                out.append(finetune_logits(key, fs, support_y, fq, n_way, scorer.finetune))
            else:
                out.append(proto_logits(fs, support_y, fq, n_way, scorer.distance))
        return out

    # the head's prediction: its probabilities averaged over the flow's algorithms (as the Evaluator)
    probs = jnp.mean(jnp.stack([jax.nn.softmax(lg) for lg in logits_of(embed(query_x))]), axis=0)
    predicted = jnp.argmax(probs, axis=-1)

    def score():
        return sum(jnp.take_along_axis(lg, predicted[:, None], axis=-1)[:, 0] for lg in logits_of(embed(query_x)))

    a, grads = layer_gradients(score, layer)
    return normalise(grad_cam(a, grads, size=query_x.shape[1:3])), predicted
