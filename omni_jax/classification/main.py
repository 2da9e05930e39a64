"""Few-shot classification, paper §6.1: train one method, select it on validation, test on 600 tasks.

    omni-jax classify --dataset glyphs --method omni_proto --backbone conv4 --data-dir DIR [--workdir W]

Writes to the work directory (default ``runs/classify/<dataset>/<method>_<backbone>``):
``checkpoints/`` (orbax; rerunning resumes), ``metrics.jsonl`` (training losses
and validation accuracy) and ``results.json``: one record per test setting
and head, ``{"dataset", "method", "backbone", "n_way", "k_shot", "head",
"accuracy", "ci95", ...}`` with accuracy and CI in percent.

Model selection: every ``train.val_every`` steps the model is scored on
``train.val_tasks`` validation episodes of the training setting, with the
first reported head's flows; fine-tuned (Baseline) heads are scored there by
nearest prototype, since fine-tuning 100 epochs per task is the costly part
of testing. The best-scoring parameters and BatchNorm statistics are kept in
the checkpoint and are the ones tested.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from omni_jax import config as config_lib
from omni_jax.algorithms.finetune import FinetuneConfig
from omni_jax.classification import episodes
from omni_jax.classification.augment import AugmentConfig
from omni_jax.classification.datasets import load_splits
from omni_jax.classification.evaluate import EvalConfig, Evaluator, summarize
from omni_jax.classification.methods import HEADS, METHODS, method_spec
from omni_jax.classification.model import build_net
from omni_jax.classification.train import TrainConfig, create_train_state, make_train_chunk
from omni_jax.data.splits import check_episodes
from omni_jax.errors import OmniJaxError
from omni_jax.nn.convnets import BACKBONES, count_params
from omni_jax.training import CheckpointStore, MetricsWriter, train_loop, write_atomic

LOSS_TERMS = ("joint_pre", "joint_meta", "pre", "meta", "distill_pre", "distill_meta")


def add_arguments(parser) -> None:
    from omni_jax.cli import add_common
    add_common(parser, default_config="classify_fewshot")
    parser.add_argument("--dataset", default="synthetic",
                        help="glyphs[:cross_task|cross_domain|loo_<group>], miniimagenet, cub, mini2cub, "
                             "crossdomain_<cub|cars|places|plantae>, tfds:<builder>, or synthetic (no files)")
    parser.add_argument("--method", default="omni_proto", help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--backbone", default="conv4", help=f"one of {', '.join(BACKBONES)}")
    parser.add_argument("--data-dir", default=None, help="the dataset's folder (never downloaded)")


def resolve(cfg, dataset: str, presets: dict):
    """Fills the fields left at "auto"/-1 from the dataset's preset."""
    key = dataset.split(":")[0]
    p = presets.get(key, presets["default"])
    d, t, e = cfg.data, cfg.train, cfg.eval
    if d.image_size == -1:
        d.image_size = p["image_size"]
    if d.crop_padding == -1:
        d.crop_padding = p["crop_padding"]
    if d.flip == "auto":
        d.flip = "true" if p["flip"] else "false"
    if d.jitter < 0:
        d.jitter = p["jitter"]
    if t.n_query == -1:
        t.n_query = p["n_query"]
    if e.n_query == -1:
        e.n_query = t.n_query
    if not e.settings:
        e.settings = tuple(tuple(s) for s in p["eval_settings"])
    return cfg


def validate(cfg, method: str, backbone: str) -> None:
    req = config_lib.require
    req(method in METHODS, f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    req(backbone in BACKBONES, f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    config_lib.check_positive(cfg, "train.num_steps", "train.batch_size", "train.n_way", "train.k_shot",
                              "train.n_query", "train.meta_batch", "train.lr", "train.chunk_size",
                              "train.ckpt_every", "train.val_every", "train.val_tasks", "eval.num_tasks",
                              "eval.n_query", "eval.finetune_epochs", "eval.finetune_batch", "eval.finetune_lr",
                              "eval.maml_steps", "eval.maml_lr", "eval.images_per_call", "model.width", "model.depth")
    config_lib.check_positive(cfg, "loss.lam", "model.num_plain", "data.max_per_class", "data.crop_padding", "data.jitter",
                              "model.drop_rate", allow_zero=True)
    req(str(cfg.data.flip).lower() in ("true", "false"), f"config field data.flip must be true/false/auto, got {cfg.data.flip!r}")
    req(cfg.data.on_error in ("skip", "raise"), f"config field data.on_error must be skip or raise, got {cfg.data.on_error!r}")
    req(cfg.loss.distill_on in ("probs", "logits"), f"config field loss.distill_on must be probs or logits, got {cfg.loss.distill_on!r}")
    req(0.0 <= cfg.loss.ema_decay <= 1.0, f"config field loss.ema_decay must be in [0, 1], got {cfg.loss.ema_decay}")
    for f in ("num_steps", "ckpt_every", "val_every"):
        req(cfg.train[f] % cfg.train.chunk_size == 0,
            f"config field train.{f}={cfg.train[f]} must be a multiple of train.chunk_size={cfg.train.chunk_size}")
    bad = [h for h in cfg.eval.heads if h not in HEADS]
    req(not bad, f"config field eval.heads has unknown head(s) {bad}; expected some of {', '.join(HEADS)}")
    for s in cfg.eval.settings:
        req(len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s),
            f"config field eval.settings must hold (n_way, k_shot) pairs, got {s!r}")
    req(cfg.model.pool in ("reshape", "window"), f"config field model.pool must be reshape or window, got {cfg.model.pool!r}")
    req(not (cfg.model.star and method in ("omni_proto", "omni_maml")),
        "config field model.star=True is the plain backbone with the Omni parameter count; use it with a plain method")


def spec_for(cfg, method: str):
    overrides = {"lam": float(cfg.loss.lam)}
    if method in ("omni_proto", "omni_maml"):
        overrides.update({t: bool(cfg.loss[t]) for t in LOSS_TERMS})
    try:
        return method_spec(method, overrides)
    except ValueError as e:
        raise OmniJaxError(f"config group loss: {e}") from None


def configs(cfg):
    t, e, d = cfg.train, cfg.eval, cfg.data
    tc = TrainConfig(batch_size=t.batch_size, n_way=t.n_way, k_shot=t.k_shot, n_query=t.n_query,
                     meta_batch=t.meta_batch, lr=t.lr, ema_decay=cfg.loss.ema_decay,
                     maml_inner_lr=t.maml_inner_lr, maml_steps=t.maml_steps, maml_first_order=t.maml_first_order,
                     distill_on=cfg.loss.distill_on)
    aug = AugmentConfig(crop_padding=d.crop_padding, flip=str(d.flip).lower() == "true", jitter=float(d.jitter))
    ec = EvalConfig(finetune=FinetuneConfig(e.finetune_epochs, e.finetune_batch, e.finetune_lr,
                                            e.finetune_momentum, e.finetune_weight_decay),
                    maml_lr=e.maml_lr, maml_steps=e.maml_steps, images_per_call=e.images_per_call)
    return tc, aug, ec


def fingerprint(cfg, dataset, method, backbone) -> dict:
    out = config_lib.select(cfg, ["seed", "data", "model", "loss", "train"])
    out.update(seed=cfg.seed, dataset=dataset, method=method, backbone=backbone)
    return out


def results_table(records) -> str:
    lines = [f"{'dataset':<22} {'method':<11} {'backbone':<9} {'setting':<14} {'head':<9} accuracy",
             "-" * 76]
    for r in records:
        lines.append(f"{r['dataset']:<22} {r['method']:<11} {r['backbone']:<9} "
                     f"{str(r['n_way']) + '-way ' + str(r['k_shot']) + '-shot':<14} {r['head']:<9} "
                     f"{r['accuracy']:.2f} ± {r['ci95']:.2f}")
    return "\n".join(lines)


def run(args, overrides) -> int:
    cfg = config_lib.load_config(args.config, quick=args.quick)
    cfg = config_lib.apply_overrides(cfg, overrides)
    if args.seed is not None:
        cfg.seed = args.seed
    dataset, method, backbone = args.dataset, args.method, args.backbone
    presets = getattr(_load_module(args.config), "PRESETS", None) or _load_module("classify_fewshot").PRESETS
    cfg = resolve(cfg, dataset, presets)
    validate(cfg, method, backbone)
    spec = spec_for(cfg, method)
    heads = tuple(cfg.eval.heads) or (spec.default_head,)
    for h in heads:
        try:
            spec.head_algorithms(h)
        except ValueError as e:
            raise OmniJaxError(f"config field eval.heads: {e}") from None
    tc, aug, ec = configs(cfg)
    workdir = Path(args.workdir or f"runs/classify/{dataset.replace(':', '_')}/{method}_{backbone}")

    # Data: load, check every split against the episodes it must give, then upload.
    kw = {} if dataset == "synthetic" else {"on_error": cfg.data.on_error}
    if dataset.startswith("glyphs") and cfg.data.max_per_class > 0:
        kw["max_per_class"] = cfg.data.max_per_class
    kw["split_names"] = {"train": cfg.data.train_split, "val": cfg.data.val_split, "test": cfg.data.test_split}
    syn = {"classes": tuple(cfg.data.synthetic_classes), "per_class": cfg.data.synthetic_per_class,
           "size": cfg.data.synthetic_size}
    splits = load_splits(dataset, args.data_dir, cfg.data.image_size or None, synthetic=syn, **kw)
    check_episodes(splits["train"], tc.n_way, tc.k_shot, tc.n_query)
    check_episodes(splits["val"], tc.n_way, tc.k_shot, cfg.eval.n_query)
    for n_way, k_shot in cfg.eval.settings:
        check_episodes(splits["test"], n_way, k_shot, cfg.eval.n_query)
    shapes = {s: ds.images.shape[1:] for s, ds in splits.items()}
    if len(set(shapes.values())) != 1:
        raise OmniJaxError(f"dataset {dataset}: the splits have different image shapes {shapes}; set data.image_size")
    image_shape = shapes["train"]
    dev = {s: episodes.to_device(ds) for s, ds in splits.items()}

    net = build_net(spec, backbone, splits["train"].num_classes, tc.n_way, num_plain=cfg.model.num_plain,
                    star=cfg.model.star, width=cfg.model.width, pool=cfg.model.pool, drop_rate=cfg.model.drop_rate,
                    depth=cfg.model.depth)
    state = create_train_state(net, spec, tc, image_shape, cfg.seed)
    store = CheckpointStore(workdir / "checkpoints", fingerprint(cfg, dataset, method, backbone))
    metrics = MetricsWriter(workdir / "metrics.jsonl")
    n_params = count_params(state.params)
    print(f"omni-jax classify: {dataset} ({' / '.join(f'{s} {ds.num_classes} classes, {len(ds.labels)} images' for s, ds in splits.items())}), "
          f"{method} on {backbone} ({n_params / 1e6:.3f}M params), {len(jax.devices())} {jax.devices()[0].platform} device(s), "
          f"workdir {workdir}", flush=True)

    chunk = make_train_chunk(net, spec, tc, aug, cfg.train.chunk_size)
    val_eval = Evaluator(net, spec, dataclasses.replace(ec, proto_for_finetune=True))
    val_head = heads[0]

    def chunk_fn(state):
        state, m = chunk(state, dev["train"])
        step = int(state.step)
        if step % cfg.train.val_every == 0 or step == cfg.train.num_steps:
            variables = {"params": state.params, "batch_stats": state.extra["batch_stats"]}
            acc = val_eval.accuracies(variables, dev["val"], n_way=tc.n_way, k_shot=tc.k_shot,
                                      n_query=cfg.eval.n_query, num_tasks=cfg.train.val_tasks,
                                      seed=cfg.eval.seed + 1, heads=(val_head,))[val_head]
            val = float(np.mean(acc) * 100)
            m = dict(m, **{"val/accuracy": val})
            if val > float(state.extra["best_val"]):
                extra = dict(state.extra, best_params=state.params, best_batch_stats=state.extra["batch_stats"],
                             best_val=jnp.asarray(val, jnp.float32), best_step=jnp.asarray(step, jnp.int32))
                state = state.replace(extra=extra)
        return state, m

    t0 = time.perf_counter()
    state = train_loop(state, chunk_fn, total_steps=cfg.train.num_steps, chunk_size=cfg.train.chunk_size,
                       store=store, metrics=metrics, ckpt_every=cfg.train.ckpt_every, desc=f"{method}",
                       show_progress=not args.no_progress)
    store.close()
    train_time = time.perf_counter() - t0
    best = {"params": state.extra["best_params"], "batch_stats": state.extra["best_batch_stats"]}
    print(f"selected step {int(state.extra['best_step'])} (validation {val_head} head, {tc.n_way}-way {tc.k_shot}-shot: "
          f"{float(state.extra['best_val']):.2f}%)", flush=True)

    evaluator = Evaluator(net, spec, ec)
    records = []
    t1 = time.perf_counter()
    for n_way, k_shot in cfg.eval.settings:
        accs = evaluator.accuracies(best, dev["test"], n_way=n_way, k_shot=k_shot, n_query=cfg.eval.n_query,
                                    num_tasks=cfg.eval.num_tasks, seed=cfg.eval.seed + 1000 * n_way + k_shot,
                                    heads=heads)
        for h in heads:
            acc, ci = summarize(accs[h])
            records.append({"dataset": dataset, "method": method, "backbone": backbone, "n_way": n_way,
                            "k_shot": k_shot, "head": h, "accuracy": round(acc, 3), "ci95": round(ci, 3),
                            "num_tasks": cfg.eval.num_tasks, "n_query": cfg.eval.n_query,
                            "selected_step": int(state.extra["best_step"]),
                            "val_accuracy": round(float(state.extra["best_val"]), 3),
                            "params": n_params, "seed": cfg.seed})
    write_atomic(workdir / "results.json", json.dumps(records, indent=1))
    print()
    print(f"Few-shot classification: mean accuracy (%) ± 95% CI over {cfg.eval.num_tasks} test tasks, "
          f"{cfg.eval.n_query} queries per class")
    print(results_table(records))
    print(f"\ntraining {train_time:.0f}s this run, evaluation {time.perf_counter() - t1:.0f}s; "
          f"wrote {workdir / 'results.json'}")
    return 0


def _load_module(path):
    """The config file's module (for its PRESETS)."""
    import importlib.util
    p = Path(path)
    if not p.suffix and not p.exists():
        p = config_lib.EXPERIMENTS_DIR / f"{path}.py"
    spec = importlib.util.spec_from_file_location(f"omni_jax_classify_cfg_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
