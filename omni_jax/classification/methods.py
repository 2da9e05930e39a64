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
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from omni_jax.nn import FLOWS
from omni_jax.omni import METHOD_WEIGHTS, OmniLossWeights

META_OF = {"omni_proto": "proto", "protonet": "proto", "joint": "proto", "ensemble": "proto", "baseline": "proto",
           "baseline_pp": "proto", "maml": "maml", "omni_maml": "maml", "matchingnet": "matching",
           "omni_matching": "matching", "relationnet": "relation", "omni_relation": "relation", "gnn": "gnn",
           "omni_gnn": "gnn"}
METHODS = ("omni_proto", "protonet", "baseline", "maml", "omni_maml", "ensemble", "joint", "baseline_pp",
           "matchingnet", "omni_matching", "relationnet", "omni_relation", "gnn", "omni_gnn")
OMNI_METHODS = ("omni_proto", "omni_maml", "omni_matching", "omni_relation", "omni_gnn")
META_ALGORITHMS = ("proto", "maml", "matching", "relation", "gnn")
PRETRAIN = ("linear", "cosine")
JOINT = FLOWS[0]
HEADS = FLOWS + ("ensemble",)


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    name: str
    omni: bool            # Omni-Net (three flows) or a plain network
    twin: bool            # two independent plain networks (Ensemble)
    meta: str             # one of META_ALGORITHMS
    weights: OmniLossWeights
    default_head: str
    pretrain: str = "linear"   # the pre-training head and test-time new head: "linear" (Baseline), "cosine" (B++)

    def flow_of(self, head: str) -> str:
        """The network flow a head reads (a plain network has only one)."""
        if self.omni or (self.twin and head != JOINT):
            return head
        return JOINT

    def head_algorithms(self, head: str) -> Tuple[Tuple[str, str], ...]:
        """``((flow, algorithm), ...)`` whose probabilities are averaged for ``head``;
        algorithm is ``"finetune"`` (the pre-training algorithm's new head) or one of ``META_ALGORITHMS``."""
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
    """The spec of a method; ``loss_overrides`` (e.g. ``{"distill_pre": False}``) switch Omni-Loss
    terms of the Omni methods on or off (the ablation of Table 6) and set λ; ``pretrain`` is the
    pre-training algorithm (``baseline_pp`` is always ``"cosine"``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {', '.join(METHODS)}")
    if pretrain not in PRETRAIN:
        raise ValueError(f"unknown pre-training algorithm {pretrain!r}; expected one of {', '.join(PRETRAIN)}")
    omni = name in OMNI_METHODS
    meta = META_OF[name]
    if name == "baseline_pp":
        pretrain = "cosine"
    if omni:
        weights = METHOD_WEIGHTS["omni"]
    elif name == "ensemble":
        weights = OmniLossWeights(joint_pre=False, joint_meta=False, pre=True, meta=True,
                                  distill_pre=False, distill_meta=False)
    elif name in ("baseline", "baseline_pp"):
        weights = METHOD_WEIGHTS["baseline"]
    elif name == "joint":
        weights = METHOD_WEIGHTS["joint"]
    else:  # protonet, maml, matchingnet, relationnet, gnn: the joint meta term alone
        weights = METHOD_WEIGHTS["maml"]
    overrides = dict(loss_overrides or {})
    if overrides:
        if not omni:
            lam = overrides.pop("lam", None)
            if overrides:
                raise ValueError(f"loss terms can only be switched for the Omni methods ({', '.join(OMNI_METHODS)}), "
                                 f"not {name}")
            if lam is not None:
                weights = dataclasses.replace(weights, lam=float(lam))
        else:
            weights = dataclasses.replace(weights, **overrides)
    default_head = ("pre" if name in ("baseline", "baseline_pp") else "ensemble" if omni or name in ("joint", "ensemble")
                    else "meta")
    return MethodSpec(name, omni, name == "ensemble", meta, weights, default_head, pretrain)
