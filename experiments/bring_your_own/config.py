"""Bring your own model and algorithm: a ResNet written as the Flax examples write theirs, made
tri-flow by ``omni_jax.omnify``, and a cosine prototype classifier the package does not ship,
plugged into the Omni-Loss; on the synthetic images (no files).

    omni-jax classify --config experiments/bring_your_own/config.py

trains Omni-Training over the new algorithm (``omni_cosproto``), the algorithm alone
(``cosproto``) and the package's own Omni∘ProtoNet (``omni_proto``), all on this ResNet, and
prints one table. Nothing in the package is edited: this file registers both.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from omni_jax.algorithms.episodic import embed_episode
from omni_jax.classification import MetaAlgorithm, omnified_backbone, register_backbone, register_meta_algorithm
from omni_jax.configs import classify_synthetic


class ResNetBlock(nn.Module):                      # plain Flax layers: nn.Conv, nn.BatchNorm, nothing else
    filters: int
    strides: int = 1

    @nn.compact
    def __call__(self, x, train: bool):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9)
        y = nn.relu(norm()(nn.Conv(self.filters, (3, 3), self.strides, use_bias=False)(x)))
        y = norm()(nn.Conv(self.filters, (3, 3), use_bias=False)(y))
        if x.shape != y.shape:
            x = norm()(nn.Conv(self.filters, (1, 1), self.strides, use_bias=False)(x))
        return nn.relu(x + y)


class ResNet(nn.Module):                           # a feature extractor: [B, H, W, C] -> [B, d]
    stages: tuple = (1, 1, 1)
    filters: int = 16

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(
            nn.Conv(self.filters, (3, 3), use_bias=False)(x)))
        for i, blocks in enumerate(self.stages):
            for j in range(blocks):
                x = ResNetBlock(self.filters * 2 ** i, strides=2 if i > 0 and j == 0 else 1)(x, train)
        return jnp.mean(x, axis=(1, 2))


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


# registered by name; replace=True: this file may be loaded more than once in one process
register_backbone("flax_resnet", omnified_backbone(ResNet), replace=True)
register_meta_algorithm(MetaAlgorithm(
    "cosproto", build=lambda thread, tc, outputs: cosine_protos(thread.fn("features"), tc.n_way, outputs)),
    replace=True)


def get_config():
    c = classify_synthetic.get_config()
    c.model.backbone = "flax_resnet"
    c.train.methods = ("omni_cosproto", "cosproto", "omni_proto")
    return c
