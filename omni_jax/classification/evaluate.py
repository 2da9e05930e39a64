"""Few-shot evaluation (paper §6.1): new Omni-Heads on sampled test tasks, mean accuracy ± 95% CI.

Task ``i`` of a setting is drawn from ``fold_in(key, i)``, so every method and
every head is scored on the very same tasks (the runner's keys come from the
``test`` and ``validation`` PRNG streams of ``eval.seed``). Tasks are processed
in jitted chunks; images of a chunk are embedded once per flow in use.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax.algorithms.finetune import FinetuneConfig, finetune_backbone_logits, finetune_logits
from omni_jax.algorithms.maml import sgd_adapt
from omni_jax.algorithms.pretrain import cross_entropy
from omni_jax.algorithms.protonet import proto_logits
from omni_jax.classification.augment import to_float
from omni_jax.classification.episodes import DeviceSplit, sample_episode
from omni_jax.classification.methods import META_ALGORITHMS, PRETRAIN_ALGORITHMS, MethodSpec
from omni_jax.classification.model import eval_apply, eval_module
from omni_jax.classification.train import TrainConfig, meta_algorithm
from omni_jax.nn.convnets import FewShotNet
from omni_jax.training.metrics import mean_ci95


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    finetune: FinetuneConfig = FinetuneConfig()
    maml_lr: float = 0.01
    maml_steps: int = 5          # Chen et al.'s MAML: the training inner steps at test too
    images_per_call: int = 2048   # how many images one jitted chunk embeds
    maml_tasks_per_call: int = 1  # with a MAML head, at most this many tasks per call (0: images_per_call decides)
    proto_for_finetune: bool = False  # score fine-tuned heads by nearest prototype (cheap; for validation)




def test_kind(algorithm: str) -> str:
    """How a (flow, algorithm) pair scores a new task: ``"finetune"`` (the pre-training
    algorithm's new head), else the registered meta algorithm's ``test`` (``"features"``,
    ``"maml"`` or ``"episode"``, see :class:`~omni_jax.classification.methods.MetaAlgorithm`)."""
    return "finetune" if algorithm == "finetune" else META_ALGORITHMS[algorithm].test


class _EvalThread:
    """``fn(output)`` / ``module(params, flow, *args)`` at test time (running averages; the meta module's
    BatchNorm as ``model.head_bn`` says), the interface
    :func:`omni_jax.classification.train.meta_algorithm` builds an algorithm on."""

    def __init__(self, net: FewShotNet, stats):
        self.net, self.stats = net, stats

    def fn(self, output: str):
        return lambda params, x, flow: eval_apply(self.net, {"params": params, "batch_stats": self.stats}, x, flow,
                                                  output)

    def module(self, params, flow, *args):
        return eval_module(self.net, {"params": params, "batch_stats": self.stats}, flow, *args)


class Evaluator:
    """Scores new tasks with each head's (flow, algorithm) pairs (``MethodSpec.head_algorithms``).

    ``tc`` is the training config (MatchingNet's FCE and scale; the GNN's way count is the
    training ``n_way``). The fine-tuned head is the pre-training algorithm's (``spec.pretrain``:
    linear or cosine), trained as ``cfg.finetune`` says (backbone too with ``backbone_steps > 0``).
    MatchingNet, RelationNet and the GNN classify with their own algorithm on the new task
    (RelationNet's scores normalised to sum to one for the ensemble's average).
    """

    def __init__(self, net: FewShotNet, spec: MethodSpec, cfg: EvalConfig = EvalConfig(), tc=None):
        self.net, self.spec, self.tc = net, spec, tc or TrainConfig()
        head = PRETRAIN_ALGORITHMS[spec.pretrain].head
        self.cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, head=head))
        self._fns = {}

    def _chunk_fn(self, heads: tuple, n_way: int, k_shot: int, n_query: int):
        key = (heads, n_way, k_shot, n_query)
        if key in self._fns:
            return self._fns[key]
        spec, cfg, net = self.spec, self.cfg, self.net
        groups = {h: spec.head_groups(h) for h in heads}
        comps = sorted({c for h in heads for g in groups[h] for c in g})
        feat_flows = sorted({f for f, a in comps if test_kind(a) in ("features", "finetune")})
        tune_backbone = cfg.finetune.backbone_steps > 0 and not cfg.proto_for_finetune
        tc = dataclasses.replace(self.tc, n_way=n_way)

        def one_task_probs(variables, feats, ep, key):
            out = {}
            for flow, algo in comps:
                kind = test_kind(algo)
                if kind == "maml":
                    out[(flow, algo)] = jax.nn.softmax(self._maml_logits(variables, ep, flow, n_way))
                    continue
                if kind == "episode":
                    continue
                fs, fq = feats[flow]
                if kind == "features" or cfg.proto_for_finetune:
                    logits = proto_logits(fs, ep["support"]["y"], fq, n_way, tc.proto_distance)
                elif tune_backbone:
                    embed = lambda p, x: eval_apply(net, {"params": p, "batch_stats": variables["batch_stats"]},
                                                    x, flow, "features")
                    logits = finetune_backbone_logits(key, embed, variables["params"], ep["support"]["x"],
                                                      ep["support"]["y"], ep["query"]["x"], n_way, cfg.finetune)
                else:
                    logits = finetune_logits(key, fs, ep["support"]["y"], fq, n_way, cfg.finetune)
                out[(flow, algo)] = jax.nn.softmax(logits)
            return out

        @jax.jit
        def chunk(variables, split: DeviceSplit, keys):
            eps = jax.vmap(lambda k: sample_episode(k, split, n_way, k_shot, n_query))(keys)
            t = keys.shape[0]
            s, q = n_way * k_shot, n_way * n_query
            x = jnp.concatenate([eps["support"]["x"].reshape((t * s,) + eps["support"]["x"].shape[2:]),
                                 eps["query"]["x"].reshape((t * q,) + eps["query"]["x"].shape[2:])])
            x = to_float(x)
            feats = {}
            for flow in feat_flows:
                f = eval_apply(net, variables, x, flow, "features")
                feats[flow] = (f[:t * s].reshape(t, s, -1), f[t * s:].reshape(t, q, -1))
            eps_f = {"support": {"x": to_float(eps["support"]["x"]), "y": eps["support"]["y"]},
                     "query": {"x": to_float(eps["query"]["x"]), "y": eps["query"]["y"]}}
            probs = jax.vmap(one_task_probs, in_axes=(None, 0, 0, 0))(
                variables, feats, eps_f, jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
            thread = _EvalThread(net, variables["batch_stats"])
            for flow, algo in comps:
                if test_kind(algo) == "episode":   # the algorithm itself on the new tasks, its probabilities
                    _, out = meta_algorithm(thread, spec, tc, outputs="probs")(variables["params"], eps_f, flow)
                    # scores normalised to sum to one for the ensemble's average (RelationNet's are not)
                    probs[(flow, algo)] = out / jnp.maximum(jnp.sum(out, axis=-1, keepdims=True), 1e-12)
            accs = {}
            for h in heads:
                votes = [jnp.mean(jnp.stack([probs[c] for c in g]), axis=0) for g in groups[h]]
                p = jnp.mean(jnp.stack(votes), axis=0)                       # [T, Q, N]
                accs[h] = jnp.mean(jnp.argmax(p, -1) == eps["query"]["y"], axis=-1)
            return accs

        self._fns[key] = chunk
        return chunk

    def _maml_logits(self, variables, ep, flow, n_way):
        net, cfg = self.net, self.cfg
        stats = variables["batch_stats"]
        apply = lambda p, x: eval_apply(net, {"params": p, "batch_stats": stats}, x, flow, "episode",
                                        batch_statistics=True)
        loss = lambda p: cross_entropy(apply(p, ep["support"]["x"]), ep["support"]["y"])
        adapted, _ = sgd_adapt(loss, variables["params"], lr=cfg.maml_lr, num_steps=cfg.maml_steps,
                               first_order=True, unroll=True)   # unrolled: see sgd_adapt
        return apply(adapted, ep["query"]["x"])

    def accuracies(self, variables, split: DeviceSplit, *, n_way: int, k_shot: int, n_query: int,
                   num_tasks: int, key: jax.Array, heads: Sequence[str]) -> Dict[str, np.ndarray]:
        """Per-task query accuracies ``{head: [num_tasks]}`` (in [0, 1])."""
        heads = tuple(heads)
        for h in heads:
            self.spec.head_algorithms(h)  # raises for an untrained head
        per_task = n_way * (k_shot + n_query)
        t = max(1, min(num_tasks, self.cfg.images_per_call // per_task))
        if self.cfg.maml_tasks_per_call and any(test_kind(a) == "maml" for h in heads
                                                for g in self.spec.head_groups(h) for _, a in g):
            # MAML's test-time steps vmapped over tasks give each task's convolutions their own
            # kernels: XLA:CPU runs those batched convolutions slower than one task's (docs/benchmarks.md)
            t = min(t, self.cfg.maml_tasks_per_call)
        chunk = self._chunk_fn(heads, n_way, k_shot, n_query)
        base = key
        out = {h: [] for h in heads}
        for start in range(0, num_tasks, t):
            keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(start, start + t))
            accs = jax.device_get(chunk(variables, split, keys))
            for h in heads:
                out[h].append(np.asarray(accs[h]))
        return {h: np.concatenate(v)[:num_tasks] for h, v in out.items()}


def summarize(accs: np.ndarray) -> tuple[float, float]:
    """Mean accuracy and 95% CI half-width, both in percent."""
    m, ci = mean_ci95(np.asarray(accs) * 100.0)
    return float(m), float(ci)
