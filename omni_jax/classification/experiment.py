"""Few-shot classification (paper §6.1) on the shared pipeline: :func:`train_and_evaluate`.

Trains each method of ``train.methods`` on ``data.dataset`` with
``model.backbone``, selects each on validation episodes, tests every
``eval.settings`` on ``eval.num_tasks`` tasks of each test dataset
(``data.test_dataset``: one, or several after one training, Table 4), and
writes ``results.json``: one record per method, test dataset, setting and
head, ``{"dataset", "test_dataset", "val_dataset", "method", "backbone",
"n_way", "k_shot", "head", "accuracy", "ci95", ...}`` with accuracy and CI
in percent, and ``accuracy.png``.

Model selection (:func:`omni_jax.training.selection.validation_hook`): every
``train.val_every`` steps the model is scored on ``train.val_tasks`` validation
episodes of the training setting (``train.n_way``, ``k_shot``, ``n_query``;
MAML heads adapt with the training inner loop) of the validation split of
``data.select_on``'s dataset (the training dataset's by default, as Tseng et
al.), drawn from the training seed's ``validation`` stream, with the first reported head's flows; fine-tuned
(Baseline) heads are scored there by nearest prototype, since fine-tuning 100
epochs per task is the costly part of testing. It reads only fields of the
checkpoint's fingerprint, so a resumed run selects exactly as an uninterrupted
one whatever ``eval.*`` says. The best-scoring parameters and BatchNorm
statistics are kept in the checkpointed state and are the ones tested.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Dict, Mapping, Optional

import jax
import numpy as np

from omni_jax import config as config_lib
from omni_jax.algorithms.finetune import FinetuneConfig
from omni_jax.algorithms.episodic import HEAD_BN
from omni_jax.algorithms.gnn import GRAPHS as GNN_GRAPHS
from omni_jax.algorithms.protonet import DISTANCES
from omni_jax.classification import episodes
from omni_jax.classification import plots
from omni_jax.classification.augment import AugmentConfig
from omni_jax.classification.datasets import load_protocol, parse_dirs, protocol
from omni_jax.classification.evaluate import EvalConfig, Evaluator, summarize
from omni_jax.classification.methods import (HEADS, META_ALGORITHMS, MethodSpec, method_names, method_spec,
                                             omni_methods, pretrain_names)
from omni_jax.classification.model import BACKBONES, build_net
from omni_jax.classification.train import TrainConfig, create_train_state, make_train_chunk
from omni_jax.data.splits import check_episodes
from omni_jax.errors import OmniJaxError
from omni_jax.nn.convnets import count_params
from omni_jax.nn.layers import conv_initializer
from omni_jax.training import Hook, prng_stream, runner, selected, validation_hook

DEFAULT_HEAD = "default"


# ---------------------------------------------------------------------------- config


def check(cfg, mesh=None) -> None:
    """Checks the config's values; raises OmniJaxError naming the field."""
    config_lib.check_fields(cfg, "classify", config_lib.experiment_references("classify"))
    req = config_lib.require
    config_lib.check_choices(cfg.train.methods, method_names(), "train.methods")
    req(len(set(cfg.train.methods)) == len(cfg.train.methods),
        f"config field train.methods lists a method twice: {tuple(cfg.train.methods)}")
    req(cfg.model.backbone in BACKBONES,
        f"config field model.backbone={cfg.model.backbone!r} is unknown; expected one of {', '.join(BACKBONES)}")
    config_lib.check_positive(cfg, "train.num_steps", "train.batch_size", "train.n_way", "train.k_shot",
                              "train.n_query", "train.meta_batch", "train.maml_tasks", "train.maml_steps",
                              "train.maml_inner_lr", "train.matching_scale", "model.relation_hidden",
                              "model.gnn_embed_dim", "model.gnn_features", "train.lr", "train.chunk_size",
                              "train.ckpt_every", "train.val_every", "train.val_tasks", "eval.num_tasks",
                              "eval.n_query", "eval.finetune_epochs", "eval.finetune_batch", "eval.finetune_lr",
                              "eval.maml_steps", "eval.maml_lr", "eval.images_per_call", "model.width", "model.depth")
    config_lib.check_positive(cfg, "model.num_plain", "data.max_per_class", "data.crop_padding", "data.jitter",
                              "data.image_size", "model.drop_rate", "eval.finetune_momentum",
                              "eval.finetune_dampening", "eval.finetune_weight_decay",
                              "eval.finetune_backbone_steps", "eval.maml_tasks_per_call", allow_zero=True)
    config_lib.check_positive(cfg, "eval.finetune_backbone_lr")
    config_lib.check_test_tasks(cfg)
    req(cfg.eval.finetune_dampening <= 1.0,
        f"config field eval.finetune_dampening must be in [0, 1], got {cfg.eval.finetune_dampening!r}")
    protocol_of(cfg)   # raises naming the field
    req(cfg.data.domain_episodes in DOMAIN_EPISODES, f"config field data.domain_episodes must be one of "
        f"{', '.join(DOMAIN_EPISODES)}, got {cfg.data.domain_episodes!r}")
    parse_dirs(cfg.data.dirs)
    req(isinstance(cfg.data.flip, bool), f"config field data.flip must be True or False, got {cfg.data.flip!r}")
    req(cfg.data.on_error in ("skip", "raise"), f"config field data.on_error must be skip or raise, got {cfg.data.on_error!r}")
    req(cfg.train.pretrain in pretrain_names(),
        f"config field train.pretrain must be one of {', '.join(pretrain_names())}, got {cfg.train.pretrain!r}")
    for field in ("train.maml_first_order", "model.fce"):
        group, name = field.split(".")
        req(isinstance(cfg[group][name], bool), f"config field {field} must be True or False, got {cfg[group][name]!r}")
    req(cfg.model.gnn_features >= 2, f"config field model.gnn_features must be >= 2, got {cfg.model.gnn_features!r}")
    req(cfg.model.gnn_graph in GNN_GRAPHS,
        f"config field model.gnn_graph must be one of {', '.join(GNN_GRAPHS)}, got {cfg.model.gnn_graph!r}")
    req(cfg.model.head_bn in HEAD_BN,
        f"config field model.head_bn must be one of {', '.join(HEAD_BN)}, got {cfg.model.head_bn!r}")
    req(cfg.train.distill_on in ("probs", "logits"),
        f"config field train.distill_on must be probs or logits, got {cfg.train.distill_on!r}")
    config_lib.check_omni_group(cfg.omni)
    config_lib.check_multiples(cfg.train, "train", ("num_steps", "ckpt_every", "val_every"), of="chunk_size")
    bad = [h for h in cfg.eval.heads if h not in HEADS + (DEFAULT_HEAD,)]
    req(not bad and len(cfg.eval.heads) > 0,
        f"config field eval.heads has unknown head(s) {bad}; expected some of {', '.join(HEADS + (DEFAULT_HEAD,))}")
    req(len(cfg.eval.settings) > 0, "config field eval.settings must hold at least one (n_way, k_shot) pair")
    for s in cfg.eval.settings:
        req(len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s),
            f"config field eval.settings must hold (n_way, k_shot) pairs, got {s!r}")
    req(cfg.train.proto_distance in DISTANCES, f"config field train.proto_distance must be one of "
        f"{', '.join(DISTANCES)}, got {cfg.train.proto_distance!r}")
    conv_initializer(cfg.model.conv_init)   # an unknown name is an error naming model.conv_init
    req(cfg.model.pool in ("reshape", "window"), f"config field model.pool must be reshape or window, got {cfg.model.pool!r}")
    for method in cfg.train.methods:
        spec = spec_for(cfg, method)
        req(not (cfg.model.star and spec.omni),
            "config field model.star=True is the plain backbone with the Omni parameter count; use it with a plain method")
        for h in heads_of(cfg, spec):
            try:
                algos = {a for _, a in spec.head_algorithms(h)}
            except ValueError as e:
                raise OmniJaxError(f"config field eval.heads: {e}") from None
            fixed = {a for a in algos if a in META_ALGORITHMS and META_ALGORITHMS[a].fixed_ways}
            for n_way, _ in cfg.eval.settings:
                req(not fixed or n_way == cfg.train.n_way,
                    f"config field eval.settings: {method}'s {h} head ({'/'.join(sorted(fixed))}) has "
                    f"train.n_way={cfg.train.n_way} outputs and cannot score {n_way}-way tasks")


DOMAIN_EPISODES = ("balanced", "pooled")


def protocol_of(cfg):
    """The run's :class:`~omni_jax.classification.datasets.Protocol`: training, test and selection datasets."""
    d = cfg.data
    return protocol(d.dataset, d.test_dataset, tuple(d.domains), d.select_on)


def spec_for(cfg, method: str) -> MethodSpec:
    """The method's network and Omni-Loss terms; the Omni methods take theirs from the ``omni`` group."""
    config_lib.check_choices((method,), method_names(), "train.methods")
    terms = {t: cfg.omni[t] for t in config_lib.TERMS} if method in omni_methods() else {}
    try:
        return method_spec(method, dict(terms, lam=float(cfg.omni.lam)), pretrain=cfg.train.pretrain)
    except ValueError as e:
        raise OmniJaxError(f"config group omni: {e}") from None


def heads_of(cfg, spec: MethodSpec) -> tuple:
    """The heads a method is tested with: ``eval.heads``, ``"default"`` being the method's own."""
    return tuple(dict.fromkeys(spec.default_head if h == DEFAULT_HEAD else h for h in cfg.eval.heads))


def configs(cfg):
    """The typed settings of training, augmentation and evaluation."""
    t, e, d = cfg.train, cfg.eval, cfg.data
    tc = TrainConfig(batch_size=t.batch_size, n_way=t.n_way, k_shot=t.k_shot, n_query=t.n_query,
                     meta_batch=t.meta_batch, lr=t.lr, ema_decay=cfg.omni.ema_decay,
                     maml_inner_lr=t.maml_inner_lr, maml_steps=t.maml_steps, maml_tasks=t.maml_tasks,
                     maml_first_order=t.maml_first_order, maml_task_chunk=t.maml_task_chunk,
                     matching_fce=cfg.model.fce,
                     matching_scale=float(t.matching_scale), distill_on=t.distill_on,
                     proto_distance=t.proto_distance)
    aug = AugmentConfig(crop_padding=d.crop_padding, flip=d.flip, jitter=float(d.jitter))
    ec = EvalConfig(finetune=FinetuneConfig(e.finetune_epochs, e.finetune_batch, e.finetune_lr, e.finetune_momentum,
                                            e.finetune_dampening, e.finetune_weight_decay,
                                            backbone_steps=e.finetune_backbone_steps,
                                            backbone_lr=e.finetune_backbone_lr),
                    maml_lr=e.maml_lr, maml_steps=e.maml_steps, images_per_call=e.images_per_call,
                    maml_tasks_per_call=e.maml_tasks_per_call)
    return tc, aug, ec


# The built-in meta algorithms whose module (if any) has no BatchNorm: model.head_bn does not change them.
UNNORMALISED_MODULES = ("proto", "maml", "matching")


def fingerprint(cfg, method: str) -> dict:
    """What a method's checkpoint depends on: not the evaluation settings, the test split or where
    the dataset lives, nor the test datasets unless model selection reads one of them.

    Selected on the training dataset's validation split (``data.select_on="train"``), a run tested
    on other datasets has the fingerprint of the same training with no test dataset: one
    checkpoint, tested on each (``--eval-only``). Selected on the test dataset's (``"test"``, the
    behaviour before the field) or with one dataset, the fingerprint is the one from before
    ``select_on`` and ``domain_episodes`` existed, so those work directories resume; so do merged
    training sets with ``domain_episodes="pooled"``."""
    p = protocol_of(cfg)
    fp = config_lib.fingerprint(cfg, method, ["data", "model", "train"],
                                drop=("data.dir", "data.dirs", "data.test_split", "train.methods",
                                      "train.ckpt_every", "train.maml_task_chunk"),
                                added={"model.gnn_graph": "query", "data.domain_episodes": "pooled",
                                       "model.head_bn": "running"},
                                omni=spec_for(cfg, method).omni)
    d = fp["data"]
    if p.train == p.tests == (p.val,) or cfg.data.select_on == "test":
        d.pop("select_on", None)             # selected on the test dataset: it is part of the training
    else:
        d["test_dataset"] = ""               # selected on the training dataset: the tests are not
        if len(p.train) == 1:
            d.pop("select_on", None)         # the training of data.dataset alone
    if len(p.train) == 1:
        d.pop("domain_episodes", None)       # one training dataset: no domains to draw from
    if spec_for(cfg, method).meta in UNNORMALISED_MODULES:
        fp["model"].pop("head_bn", None)     # no BatchNorm in its meta module: work directories from before resume
    return fp


# ---------------------------------------------------------------------------- data


@dataclasses.dataclass
class Data:
    """The run's splits on the host (``splits``) and on the device (``device``)."""

    splits: Dict[str, object]
    device: Dict[str, episodes.DeviceSplit]
    image_shape: tuple
    tests: Dict[str, str] = dataclasses.field(default_factory=lambda: {"": "test"})   # test dataset -> split key
    val_dataset: str = ""   # the dataset whose validation split selection reads


def load_data(cfg) -> Data:
    """Loads the three splits, checks each against the episodes it must give, uploads them."""
    d, t, e = cfg.data, cfg.train, cfg.eval
    p = protocol_of(cfg)
    names = p.train + p.tests + (p.val,)
    kw = {} if set(names) == {"synthetic"} else {"on_error": d.on_error}
    if any(n.startswith("glyphs") for n in names) and d.max_per_class > 0:
        kw["max_per_class"] = d.max_per_class
    synthetic = d.synthetic.to_dict() if "synthetic" in d else None
    splits = load_protocol(d.dataset, d.dir or None, d.image_size or None, test_dataset=d.test_dataset,
                           select_on=d.select_on, dirs=parse_dirs(d.dirs), domains=tuple(d.domains),
                           synthetic=synthetic,
                           split_names={"train": d.train_split, "val": d.val_split, "test": d.test_split}, **kw)
    tests = {p.tests[0]: "test"} if len(p.tests) == 1 else {n: f"test/{n}" for n in p.tests}
    check_episodes(splits["train"], t.n_way, t.k_shot, t.n_query)
    check_episodes(splits["val"], t.n_way, t.k_shot, t.n_query)
    for key in tests.values():
        for n_way, k_shot in e.settings:
            check_episodes(splits[key], n_way, k_shot, e.n_query)
    by_domain = d.domain_episodes == "balanced" and len(p.train) > 1
    if by_domain:   # every training domain gives episodes of its own
        train = splits["train"]
        for i, name in enumerate(train.domain_names):
            n = int((np.asarray(train.class_domain) == i).sum())
            if n < t.n_way:
                raise OmniJaxError(f"training domain {name} has {n} classes, fewer than train.n_way={t.n_way}: "
                                   "data.domain_episodes='balanced' draws each episode from one domain "
                                   "(set it to 'pooled' to draw from all together)")
    shapes = {s: ds.images.shape[1:] for s, ds in splits.items()}
    if len(set(shapes.values())) != 1:
        raise OmniJaxError(f"dataset {d.dataset}: the splits have different image shapes {shapes}; "
                           "set data.image_size")
    device = {s: episodes.to_device(ds, by_domain=by_domain and s == "train") for s, ds in splits.items()}
    return Data(splits, device, shapes["train"], tests=tests, val_dataset=p.val)


# ---------------------------------------------------------------------------- one method


@dataclasses.dataclass(frozen=True)
class Model:
    """What the evaluation of one method needs beside its trained state."""

    net: object
    spec: MethodSpec
    heads: tuple
    num_params: int


def validation_eval_config(cfg) -> EvalConfig:
    """The evaluation settings of model selection, from ``train`` fields only (the checkpoint's
    fingerprint covers them): MAML heads adapt as in training (``train.maml_steps`` steps at
    ``train.maml_inner_lr``) and fine-tuned heads are scored by nearest prototype. Only
    ``eval.images_per_call`` and ``eval.maml_tasks_per_call`` are read from ``eval``: they batch
    the work and do not change the scores."""
    t, e = cfg.train, cfg.eval
    return EvalConfig(maml_lr=t.maml_inner_lr, maml_steps=t.maml_steps, images_per_call=e.images_per_call,
                      maml_tasks_per_call=e.maml_tasks_per_call, proto_for_finetune=True)


def selection_hook(cfg, net, spec, data: Data, head: Optional[str] = None) -> Hook:
    """Validation-based model selection: scores the state on ``train.val_tasks`` validation episodes
    of the training setting (:func:`validation_eval_config`; the training seed's ``validation``
    stream) with the method's own head (``spec.default_head``; never ``eval.heads``, which is no
    part of the checkpoint's fingerprint: a resumed run selects as it began), or ``head``; the best
    parameters and statistics are kept in ``state.best``.

    Logged (``metrics.jsonl``, TensorBoard): ``val/accuracy``, the selecting head's; and for a
    method with several heads (Omni-Training's joint, pre, meta and ensemble; the Ensemble's) each
    trained head's on the same episodes, ``val/accuracy/<head>``: the per-flow validation curves of
    paper §7.1 (Figure 10a/b). Every flow's training loss is logged by the Omni-Loss
    (``loss/joint_pre``, ``loss/pre``, ``loss/meta``, ..., :func:`omni_jax.omni.omni_loss`)."""
    tc, _, _ = configs(cfg)
    val_eval = Evaluator(net, spec, validation_eval_config(cfg), tc)
    head = head or spec.default_head
    logged = spec.trained_heads() if spec.omni or spec.twin else ()
    scored = tuple(dict.fromkeys((head, *logged)))
    key = prng_stream(cfg.seed, "validation")

    def validate(params, batch_stats):
        acc = val_eval.accuracies({"params": params, "batch_stats": batch_stats}, data.device["val"],
                                  n_way=tc.n_way, k_shot=tc.k_shot, n_query=tc.n_query,
                                  num_tasks=cfg.train.val_tasks, key=key, heads=scored)
        val = float(np.mean(acc[head]) * 100)
        return val, {"val/accuracy": val, **{f"val/accuracy/{h}": float(np.mean(acc[h]) * 100) for h in logged}}

    return validation_hook(validate, cfg.train.val_every)


def setup(cfg, method: str, data: Data, mesh=None) -> runner.Program:
    """One method set up to train, with its model-selection hook."""
    m = cfg.model
    spec = spec_for(cfg, method)
    tc, aug, _ = configs(cfg)
    net = build_net(spec, m.backbone, data.splits["train"].num_classes, tc.n_way, num_plain=m.num_plain,
                    star=m.star, width=m.width, pool=m.pool, drop_rate=m.drop_rate, depth=m.depth, fce=m.fce,
                    relation_hidden=m.relation_hidden, gnn_embed_dim=m.gnn_embed_dim, gnn_features=m.gnn_features,
                    gnn_graph=m.gnn_graph, conv_init=m.conv_init, head_bn=m.head_bn)
    try:
        state = create_train_state(net, spec, tc, data.image_shape, cfg.seed)
    except ValueError as e:   # e.g. RelationNet on feature maps too small for its relation module
        raise OmniJaxError(f"config field model.backbone={m.backbone!r} with method {method} on "
                           f"{'x'.join(map(str, data.image_shape))} images: {e}") from None
    heads = heads_of(cfg, spec)
    return runner.Program(state=state, chunk=make_train_chunk(net, spec, tc, aug, cfg.train.chunk_size),
                          num_steps=cfg.train.num_steps, ckpt_every=cfg.train.ckpt_every, data=data.device["train"],
                          hook=selection_hook(cfg, net, spec, data),
                          model=Model(net, spec, heads, count_params(state.params)))


# ---------------------------------------------------------------------------- evaluation and report


class _Evaluator(runner.Evaluator):
    def __init__(self, cfg, data: Data):
        self.cfg, self.data = cfg, data

    def __call__(self, trained: Mapping[str, runner.Trained]):
        cfg, e = self.cfg, self.cfg.eval
        tc, _, ec = configs(cfg)
        records = []
        for method, t in trained.items():
            model, chosen = t.program.model, selected(t.state)
            best = {"params": chosen.params, "batch_stats": chosen.batch_stats}
            evaluator = Evaluator(model.net, model.spec, ec, tc)
            for (test, key), (n_way, k_shot) in itertools.product(self.data.tests.items(), e.settings):
                accs = evaluator.accuracies(best, self.data.device[key], n_way=n_way, k_shot=k_shot,
                                            n_query=e.n_query, num_tasks=e.num_tasks,
                                            key=prng_stream(e.seed, "test", n_way, k_shot), heads=model.heads)
                for h in model.heads:
                    acc, ci = summarize(accs[h])
                    records.append({"dataset": cfg.data.dataset, "method": method, "backbone": cfg.model.backbone,
                                    "n_way": n_way, "k_shot": k_shot, "head": h, "accuracy": round(acc, 3),
                                    "ci95": round(ci, 3), "num_tasks": e.num_tasks, "n_query": e.n_query,
                                    "test_split": cfg.data.test_split, "test_dataset": test,
                                    "val_dataset": self.data.val_dataset,
                                    "selected_step": chosen.step,
                                    "val_accuracy": round(chosen.score, 3),
                                    "head_algorithms": [f"{f}:{a}" for f, a in model.spec.head_algorithms(h)],
                                    "meta_algorithm": model.spec.meta, "pretrain": model.spec.pretrain,
                                    "params": model.num_params, "seed": cfg.seed})
        return records


def results_table(records, width: int = 100) -> str:
    """One row per method and head, one ``accuracy ± ci`` column per setting (100 columns for 4);
    records of several test datasets (Table 4) get one column group per dataset, the groups in
    blocks one under the other so that no line is wider than ``width``."""
    tests = list(dict.fromkeys(r.get("test_dataset", "") for r in records))
    settings = list(dict.fromkeys((r["n_way"], r["k_shot"]) for r in records))
    rows = list(dict.fromkeys((r["method"], r["head"]) for r in records))
    by = {(r.get("test_dataset", ""), r["method"], r["head"], r["n_way"], r["k_shot"]): r for r in records}
    w, label = 16, 25
    per_block = max(1, (width - label) // (w * len(settings)))
    blocks = []
    for b in range(0, len(tests), per_block):
        group = tests[b:b + per_block]
        lines = [] if len(tests) == 1 else [" " * label + "".join(f"{t:^{w * len(settings)}.{w * len(settings) - 2}}"
                                                                   for t in group).rstrip()]
        lines.append(f"{'method':<15}{'head':<10}" + "".join(f"{f'{n}-way {k}-shot':>{w}}"
                                                            for _ in group for n, k in settings))
        for method, head in rows:
            cells = []
            for t in group:
                for n, k in settings:
                    r = by.get((t, method, head, n, k))
                    cells.append(f"{r['accuracy']:.2f} ± {r['ci95']:.2f}" if r else "-")
            lines.append(f"{method:<15}{head:<10}" + "".join(f"{c:>{w}}" for c in cells))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class ClassificationExperiment(runner.Experiment):
    name = "classify"
    score_name = "accuracy (%)"
    check = staticmethod(check)
    fingerprint = staticmethod(fingerprint)
    setup = staticmethod(setup)

    def prepare(self, cfg, mesh):
        return load_data(cfg)

    def describe(self, cfg, data: Data, mesh):
        sizes = " / ".join(f"{s} {ds.num_classes} classes, {len(ds.labels)} images" for s, ds in data.splits.items())
        return (f"omni-jax classify: {cfg.data.dataset} ({sizes}), {', '.join(cfg.train.methods)} on "
                f"{cfg.model.backbone}, {mesh.devices.size} {jax.devices()[0].platform} device(s)")

    def evaluator(self, cfg, programs, data, mesh):
        return _Evaluator(cfg, data)

    def table(self, cfg, records):
        e, p = cfg.eval, protocol_of(cfg)
        tests = ", ".join(p.tests)
        where = cfg.data.dataset if p.tests == (cfg.data.dataset,) else f"{tests}, trained on {cfg.data.dataset}"
        selected_on = "" if p.val == p.tests[0] and len(p.tests) == 1 else f", selected on {p.val}'s validation split"
        return (f"Few-shot classification on {where} ({cfg.data.test_split} split{selected_on}), "
                f"{cfg.model.backbone}: mean accuracy (%) ± 95% CI\nover {e.num_tasks} test tasks, "
                f"{e.n_query} queries per class; head = the Omni-Head the number uses\n" + results_table(records))

    def plots(self, cfg, records, trained, data, workdir: Path):
        return [plots.plot_fewshot_accuracy(records, workdir / "accuracy.png",
                                            label=lambda r: f"{r['method']} ({r['head']} head)", panel="test_dataset")]


def train_and_evaluate(config, workdir, **kwargs):
    """Trains and evaluates every method of ``config`` in ``workdir`` (resuming); returns the
    ``results.json`` records. Keyword arguments go to :func:`omni_jax.training.runner.train_and_evaluate`."""
    return runner.train_and_evaluate(ClassificationExperiment(), config, workdir, **kwargs)
