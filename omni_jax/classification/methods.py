"""The compared methods as Omni-Net + Omni-Loss configurations (paper §6.1, §7.1, Table 6).

==============  ==========  ===========  =========================================
method          network     meta algo    Omni-Loss terms (Eq. 15)
==============  ==========  ===========  =========================================
baseline        plain       -            joint_pre (cross-entropy, Chen et al.)
baseline_pp     plain       -            joint_pre with Baseline++'s cosine head
protonet        plain       ProtoNet     joint_meta
maml            plain       MAML         joint_meta
matchingnet     plain       MatchingNet  joint_meta
relationnet     plain       RelationNet  joint_meta
gnn             plain       GNN          joint_meta
joint           plain       ProtoNet     joint_pre + joint_meta (Joint-Training)
ensemble        two plain   ProtoNet     pre (net 1) + meta (net 2), trained side by side
omni_proto      Omni        ProtoNet     all six (Omni-Training∘Proto)
omni_maml       Omni        MAML         all six (Omni-Training∘MAML)
omni_matching   Omni        MatchingNet  all six (Omni-Training∘MatchingNet)
omni_relation   Omni        RelationNet  all six (Omni-Training∘RelationNet)
omni_gnn        Omni        GNN          all six (Omni-Training∘GNN)
==============  ==========  ===========  =========================================

The pre-training algorithm (the pre-training loss and the test-time new head
of every method that has one) is Baseline's linear classifier or Baseline++'s
cosine classifier (``MethodSpec.pretrain``; the config's ``train.pretrain``,
``baseline_pp`` always cosine).

Inference (§4.3) trains a new Omni-Head per test task: each flow's new head
follows the algorithm(s) that trained that flow — a fine-tuned linear head
(Baseline) for the pre-training loss, prototypes (or MAML adaptation) for the
meta-training loss (the meta algorithm itself on the new task: MatchingNet's
attention, RelationNet's relation scores, the GNN; no fine-tuning), both averaged when a flow was trained by both (the joint
flow of Joint-Training and Omni-Training). ``ensemble`` averages the
probabilities of every flow that was trained; a flow whose losses are off is
not used (Table 6).

Open registries. Every meta-training algorithm is registered once by name
(:func:`register_meta_algorithm`, a :class:`MetaAlgorithm`) and gives two
methods: itself alone (``MetaAlgorithm.method``, e.g. ``protonet``) and
Omni-Training over it, ``omni_<name>`` (``omni_proto``), never listed by hand;
every pre-training algorithm likewise (:func:`register_pretrain`, a
:class:`PretrainAlgorithm`: ``baseline`` for ``linear``, ``baseline_pp`` for
``cosine``). ``joint`` and ``ensemble`` (ProtoNet's) are the two fixed
comparisons of §3.3. A user's algorithm, registered from the user's own module
(imported by a ``--config`` file), runs through
:func:`omni_jax.classification.train_and_evaluate` and ``omni-jax classify
--method omni_<name>`` with no edit to the package.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import jax

from omni_jax.algorithms.gnn import GraphNetwork, gnn
from omni_jax.algorithms.maml import maml
from omni_jax.algorithms.matchingnet import FullContextEmbedding, matchingnet
from omni_jax.algorithms.pretrain import cross_entropy
from omni_jax.algorithms.protonet import protonet
from omni_jax.algorithms.relationnet import RelationModule, relationnet
from omni_jax.nn import FLOWS
from omni_jax.omni import METHOD_WEIGHTS, OmniLossWeights

JOINT = FLOWS[0]
HEADS = FLOWS + ("ensemble",)
OMNI_PREFIX = "omni_"
TEST_HEADS = ("features", "maml", "episode")   # how a meta algorithm scores a new task (MetaAlgorithm.test)


# ---------------------------------------------------------------------------- the registries


@dataclasses.dataclass(frozen=True)
class MetaAlgorithm:
    """A meta-training algorithm, registered by name (:func:`register_meta_algorithm`).

    Attributes:
      name: its name; Omni-Training over it is the method ``omni_<name>``.
      method: the method name of the algorithm trained alone (default: ``name``).
      build: ``build(thread, tc, outputs) -> algorithm``: the pure algorithm ``(params, episode,
        flow) -> (loss, outputs)`` on the apply functions of ``thread``
        (:class:`~omni_jax.classification.model.StatsThread`: ``thread.fn(output)`` is
        ``(params, x, flow) -> the backbone's output``, ``output`` one of ``"features"``,
        ``"feature_map"``, ``"logits"``, ``"episode"``; ``thread.module(params, flow, *args)``
        applies the flow's copy of the algorithm's module), with the training config ``tc``
        (:class:`~omni_jax.classification.train.TrainConfig`; ``tc.n_way`` ways) and ``outputs``
        (``"logits"`` or ``"probs"``: what the algorithm returns per query, ``[T, Q, n_way]``).
      test: how a test task is scored: ``"episode"`` (the algorithm itself on the new task, its
        ``probs``; the default), ``"features"`` (nearest prototype on the flow's features, as
        ProtoNet) or ``"maml"`` (adapt the episode head on the support set).
      input: the backbone output the algorithm embeds (``"features"`` or ``"feature_map"``).
      module: ``module(model) -> flax module or None``: the algorithm's learnable module (one copy
        per flow it trains), from the config's ``model`` group; ``None``: no module.
      fixed_ways: its test-time head has the training episodes' number of ways (MAML, the GNN).
      episode_head: the network needs an ``n_way``-way episode head (MAML's).
      tasks_per_step: the episodes of one training step from ``tc`` (default ``tc.meta_batch``).
      conv4_unpooled: Conv-4 leaves out the max-pool of this many last blocks (RelationNet's Conv4NP).
    """

    name: str
    build: Callable[[Any, Any, str], Callable]
    method: str = ""
    test: str = "episode"
    input: str = "features"
    module: Optional[Callable[[Mapping], Any]] = None
    fixed_ways: bool = False
    episode_head: bool = False
    tasks_per_step: Optional[Callable[[Any], int]] = None
    conv4_unpooled: int = 0

    def __post_init__(self):
        object.__setattr__(self, "method", self.method or self.name)
        if self.test not in TEST_HEADS:
            raise ValueError(f"meta algorithm {self.name}: test must be one of {', '.join(TEST_HEADS)}, "
                             f"got {self.test!r}")
        if self.input not in ("features", "feature_map"):
            raise ValueError(f"meta algorithm {self.name}: input must be features or feature_map, got {self.input!r}")


@dataclasses.dataclass(frozen=True)
class PretrainAlgorithm:
    """A pre-training algorithm (:func:`register_pretrain`): cross-entropy on the flow's
    classifier head of kind ``head`` (``omni_jax.nn.convnets.HEAD_KINDS``: ``"linear"``, Eq. 16,
    or Baseline++'s ``"cosine"``), and the same kind of new head fine-tuned on each test task's
    support set (Chen et al.). ``method`` names it trained alone."""

    name: str
    method: str
    head: str


META_ALGORITHMS: Dict[str, MetaAlgorithm] = {}
PRETRAIN_ALGORITHMS: Dict[str, PretrainAlgorithm] = {}


def _check_new(name: str, kind: str, replace: bool, registry: Mapping) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a {kind} name must be an identifier, got {name!r}")
    if name in registry and not replace:
        raise ValueError(f"a {kind} named {name!r} is already registered (replace=True to replace it)")


def register_meta_algorithm(algorithm: MetaAlgorithm, *, replace: bool = False) -> MetaAlgorithm:
    """Registers a meta-training algorithm: the methods ``algorithm.method`` and
    ``omni_<algorithm.name>`` exist from then on. Returns it (usable as a decorator's result)."""
    _check_new(algorithm.name, "meta algorithm", replace, META_ALGORITHMS)
    taken = _method_names()
    for m in (algorithm.method, OMNI_PREFIX + algorithm.name):
        owner = taken.get(m)
        if owner is not None and not (owner[0] in ("meta", "omni") and owner[1] == algorithm.name):
            raise ValueError(f"meta algorithm {algorithm.name}: the method name {m!r} is taken")
    META_ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def register_pretrain(algorithm: PretrainAlgorithm, *, replace: bool = False) -> PretrainAlgorithm:
    """Registers a pre-training algorithm (``train.pretrain=<name>``; the method ``algorithm.method``)."""
    from omni_jax.nn.convnets import HEAD_KINDS
    _check_new(algorithm.name, "pre-training algorithm", replace, PRETRAIN_ALGORITHMS)
    if algorithm.head not in HEAD_KINDS:
        raise ValueError(f"pre-training algorithm {algorithm.name}: head must be one of {', '.join(HEAD_KINDS)}, "
                         f"got {algorithm.head!r}")
    PRETRAIN_ALGORITHMS[algorithm.name] = algorithm
    return algorithm


def _method_names() -> Dict[str, Tuple[str, str]]:
    """Every method: name -> (kind, algorithm); kind is ``pretrain``, ``meta``, ``omni`` or ``fixed``."""
    out = {p.method: ("pretrain", p.name) for p in PRETRAIN_ALGORITHMS.values()}
    for a in META_ALGORITHMS.values():
        out[a.method] = ("meta", a.name)
        out[OMNI_PREFIX + a.name] = ("omni", a.name)
    out.update(joint=("fixed", "proto"), ensemble=("fixed", "proto"))
    return out


def method_names() -> Tuple[str, ...]:
    """The methods of the registered algorithms, Omni-Training's first."""
    names = _method_names()
    return tuple(sorted(names, key=lambda m: (names[m][0] != "omni", m)))


def omni_methods() -> Tuple[str, ...]:
    return tuple(m for m, (kind, _) in _method_names().items() if kind == "omni")


def pretrain_names() -> Tuple[str, ...]:
    return tuple(PRETRAIN_ALGORITHMS)


def meta_algorithm_of(spec: "MethodSpec") -> MetaAlgorithm:
    return META_ALGORITHMS[spec.meta]


# ---------------------------------------------------------------------------- the package's algorithms


def softmax_outputs(algorithm: Callable, outputs: str) -> Callable:
    """An algorithm returning logits, made to return softmax probabilities when ``outputs="probs"``."""
    if outputs == "logits":
        return algorithm

    def probs(params, data, flow):
        loss, logits = algorithm(params, data, flow)
        return loss, jax.nn.softmax(logits)

    return probs


register_meta_algorithm(MetaAlgorithm(
    "proto", method="protonet", test="features",
    build=lambda th, tc, out: protonet(th.fn("features"), tc.n_way, outputs=out, distance=tc.proto_distance)))
register_meta_algorithm(MetaAlgorithm(
    "maml", test="maml", fixed_ways=True, episode_head=True, tasks_per_step=lambda tc: tc.maml_tasks,
    build=lambda th, tc, out: softmax_outputs(
        maml(th.fn("episode"), cross_entropy, inner_lr=tc.maml_inner_lr, num_steps=tc.maml_steps,
             first_order=tc.maml_first_order, task_chunk=tc.maml_task_chunk or None, unroll=True), out)))
register_meta_algorithm(MetaAlgorithm(
    "matching", method="matchingnet", module=lambda m: FullContextEmbedding() if m["fce"] else None,
    build=lambda th, tc, out: matchingnet(th.fn("features"), th.module if tc.matching_fce else None, tc.n_way,
                                          scale=tc.matching_scale, outputs=out)))
register_meta_algorithm(MetaAlgorithm(
    "relation", method="relationnet", input="feature_map", conv4_unpooled=2,
    module=lambda m: RelationModule(hidden=m["relation_hidden"], bn=m["head_bn"]),
    build=lambda th, tc, out: relationnet(th.fn("feature_map"), th.module, tc.n_way, outputs=out)))
register_meta_algorithm(MetaAlgorithm(
    "gnn", fixed_ways=True,
    module=lambda m: GraphNetwork(embed_dim=m["gnn_embed_dim"], nf=m["gnn_features"], graph=m["gnn_graph"],
                                  bn=m["head_bn"]),
    build=lambda th, tc, out: gnn(th.fn("features"), th.module, tc.n_way, outputs=out)))
register_pretrain(PretrainAlgorithm("linear", method="baseline", head="linear"))
register_pretrain(PretrainAlgorithm("cosine", method="baseline_pp", head="cosine"))


# ---------------------------------------------------------------------------- a method


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    omni: bool            # Omni-Net (three flows) or a plain network
    twin: bool            # two independent plain networks (Ensemble)
    meta: str             # a registered meta algorithm (META_ALGORITHMS)
    weights: OmniLossWeights
    default_head: str
    pretrain: str = "linear"   # a registered pre-training algorithm: its head, and the test-time new head

    def flow_of(self, head: str) -> str:
        """The network flow a head reads (a plain network has only one)."""
        if self.omni or (self.twin and head != JOINT):
            return head
        return JOINT

    def head_algorithms(self, head: str) -> Tuple[Tuple[str, str], ...]:
        """``((flow, algorithm), ...)`` whose probabilities are averaged for ``head``;
        algorithm is ``"finetune"`` (the pre-training algorithm's new head) or a registered meta algorithm."""
        w = self.weights
        if not (self.omni or self.twin):
            # One flow trained by the joint terms: "pre" and "meta" name the test-time algorithm.
            if head == "pre":
                return ((JOINT, "finetune"),)
            if head == "meta":
                return ((JOINT, self.meta),)
        trained = dict(zip(FLOWS, (tuple(a for a, on in (("finetune", w.joint_pre), (self.meta, w.joint_meta)) if on),
                                   ("finetune",) if w.pre else (), (self.meta,) if w.meta else ())))
        if head == "ensemble":
            return tuple((self.flow_of(f), a) for f in FLOWS for a in trained[f])
        if not trained[head]:
            ok = [h for h in FLOWS if trained[h]]
            raise ValueError(f"the {head} flow of method {self.name} is not trained by any loss term; "
                             f"use one of the heads {', '.join(ok + ['ensemble'])}")
        return tuple((self.flow_of(head), a) for a in trained[head])

    def trained_heads(self) -> Tuple[str, ...]:
        out = []
        for h in HEADS:
            try:
                self.head_algorithms(h)
                out.append(h)
            except ValueError:
                pass
        return tuple(out)

    def head_groups(self, head: str) -> Tuple[Tuple[Tuple[str, str], ...], ...]:
        """For ``ensemble``, the components grouped by flow (each flow's head is one vote)."""
        comps = self.head_algorithms(head)
        if head != "ensemble":
            return (comps,)
        groups = {}
        for flow, algo in comps:
            groups.setdefault(flow, []).append((flow, algo))
        return tuple(tuple(v) for v in groups.values())


def method_spec(name: str, loss_overrides: Optional[dict] = None, pretrain: str = "linear") -> MethodSpec:
    """The spec of a method (:func:`method_names`); ``loss_overrides`` (e.g. ``{"distill_pre":
    False}``) switch Omni-Loss terms of the Omni methods on or off (the ablation of Table 6) and set
    λ; ``pretrain`` is the pre-training algorithm (a method named after one is always that one)."""
    names = _method_names()
    if name not in names:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(method_names())}")
    if pretrain not in PRETRAIN_ALGORITHMS:
        raise ValueError(f"unknown pre-training algorithm {pretrain!r}; expected one of {', '.join(PRETRAIN_ALGORITHMS)}")
    kind, algorithm = names[name]
    omni = kind == "omni"
    meta = "proto" if kind == "pretrain" else algorithm
    if kind == "pretrain":
        pretrain = algorithm
    if omni:
        weights = METHOD_WEIGHTS["omni"]
    elif name == "ensemble":
        weights = OmniLossWeights(joint_pre=False, joint_meta=False, pre=True, meta=True,
                                  distill_pre=False, distill_meta=False)
    elif kind == "pretrain":
        weights = METHOD_WEIGHTS["baseline"]
    elif name == "joint":
        weights = METHOD_WEIGHTS["joint"]
    else:  # a meta algorithm alone: the joint meta term
        weights = METHOD_WEIGHTS["maml"]
    overrides = dict(loss_overrides or {})
    if overrides:
        if not omni:
            lam = overrides.pop("lam", None)
            if overrides:
                raise ValueError(f"loss terms can only be switched for the Omni methods ({', '.join(omni_methods())}), "
                                 f"not {name}")
            if lam is not None:
                weights = dataclasses.replace(weights, lam=float(lam))
        else:
            weights = dataclasses.replace(weights, **overrides)
    default_head = "pre" if kind == "pretrain" else "ensemble" if omni or kind == "fixed" else "meta"
    return MethodSpec(name, omni, name == "ensemble", meta, weights, default_head, pretrain)
