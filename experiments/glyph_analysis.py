"""§7 of the paper on the glyph benchmark: why Omni-Training works (Figures 9a, 10, 11, 12; Tables 6, 7).

    python -m experiments.glyph_analysis --data-dir data/glyphs [--workdir runs/glyph_analysis] \\
        [--parts curves,finetune,cam,layers,lambda,params,table6,fig9a] [--seeds 0,1,2] [--steps 1000] \\
        [--way 20 --shot 1] [--protocols cross_task,cross_domain] [--algorithms relation] \\
        [--report-only] [--extra --config.eval.num_tasks=600 ...]

One command for the whole of §7, Conv-4, every training --steps steps on --way-way --shot-shot
episodes (20-way 1-shot by default: 5-way 5-shot sits near 99% on glyphs) and mini-batches of 64,
validated every --val-every steps on the validation split, tested on the packaged glyph settings
(5/20-way, 1/5-shot, 600 tasks each). Parts:

  curves    Figure 10a/b: validation accuracy of every head of Omni∘Proto and Omni∘X (X from
            --algorithms) against Baseline and X trained alone, and each flow's training loss
            against the algorithm alone (from each run's metrics.jsonl); curves_<protocol>.png,
            curves.md (final validation accuracy and training loss per head; the test accuracy).
  finetune  Figure 10c: test accuracy of Omni∘Proto's pre head and of Baseline against the epochs
            of the test-time new head (--finetune-epochs), the backbone fine-tuned too or not
            (--backbone-steps); the test split, as the paper; finetune.png, finetune.md.
  cam       Figure 11: Grad-CAM of the predicted class's score on the last convolutional block,
            each flow of Omni∘Proto, Baseline and ProtoNet, for a few test glyphs; cam_<protocol>.png.
  layers    Figure 12a/b: Omni∘Proto with the first n blocks plain (model.num_plain; --num-plain);
            layers.png, layers.md.
  lambda    Figure 12c: Omni∘Proto's λ (omni.lam; --lambdas); lambda.png, lambda.md.
  params    Table 7: ProtoNet* and Baseline* (model.star: the plain backbone with the Omni
            parameter count) against ProtoNet, Baseline and Omni∘Proto; table7.md (#params).
  table6    Table 6: the Omni-Loss terms (experiments.glyph_table6's rows); table6.md.
  fig9a     Figure 9a: Omni∘Proto against Ensemble and Joint-Training (and Baseline, ProtoNet);
            fig9a.png, fig9a.md.

Every training is one omni_jax.classification.train_and_evaluate in
WORKDIR/<protocol>/<way>way<shot>shot/<run>/seed<s>, the run named by its method and the fields it
sets apart from the packaged config (omni_proto, omni_proto+lam=0.3, protonet+star=True, ...), so
parts share a training whenever the config is the same: λ=3, num_plain=0, Table 6's last row and
the curves' Omni∘Proto are one run. Rerunning resumes unfinished trainings and reads finished
evaluations back (each run keeps every evaluation it had in evaluations/). Each table gives, per
training seed, the mean accuracy ± 95% CI over the test tasks, then the mean over seeds ± 95% CI
over seeds (Student's t) and the seed spread (min–max of the seed means), for every head of the
Omni methods (joint, pre, meta, ensemble). Records: WORKDIR/analysis.json (they accumulate over
invocations; a run's own replaced).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from experiments import _common as common
from experiments import glyph_table6, glyph_tables

PARTS = ("curves", "finetune", "cam", "layers", "lambda", "params", "table6", "fig9a")
LAMBDAS = "0,0.3,1,3,10"
NUM_PLAIN = "0,1,2,3,4"
FINETUNE_EPOCHS = "1,10,25,50,100"
BACKBONE_STEPS = "0,50"
PROTO = "proto"
CAM_GLYPHS = 4   # test glyphs in Figure 11, one per class of a 5-way 1-shot support set


# ---------------------------------------------------------------------------- the runs


@dataclasses.dataclass(frozen=True)
class Variant:
    """A training: a method and the ``field=value`` overrides that set it apart from the packaged
    config (only those that differ from it: see :func:`variant`)."""

    method: str
    overrides: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The run's folder: the method, then ``+field=value`` per override (its group left out)."""
        return "+".join([self.method, *(o.split(".", 1)[1] for o in self.overrides)])


def _default(field: str):
    cfg = common.config("classify_glyphs")
    group, name = field.split(".")
    return cfg[group][name]


def variant(method: str, **fields) -> Variant:
    """The variant of ``method`` with config ``fields`` (``omni__lam=0.3`` is ``omni.lam``); a
    field equal to the packaged config's value is left out, so that equal configs share a run."""
    out = []
    for key, value in fields.items():
        field = key.replace("__", ".")
        if value != _default(field):
            out.append(f"{field}={value}")
    return Variant(method, tuple(out))


def pair(algorithm: str) -> Tuple[Variant, Variant]:
    """X alone and Omni∘X, with glyph_tables' training overrides of X (MAML's first order, ...)."""
    alone, omni, _, extra, _ = glyph_tables.ALGORITHMS[algorithm]
    return Variant(alone, tuple(extra)), Variant(omni, tuple(extra))


BASELINE, PROTONET, OMNI = Variant("baseline"), Variant("protonet"), Variant("omni_proto")


def part_variants(part: str, args) -> List[Variant]:
    """The trainings of a part (``args``: its --algorithms, --num-plain, --lambdas)."""
    if part == "curves":
        out = [BASELINE, PROTONET, OMNI]
        for x in args.algorithms:
            out += list(pair(x))
        return out
    if part in ("finetune", "cam"):
        return [BASELINE, OMNI] + ([PROTONET] if part == "cam" else [])
    if part == "layers":
        return [variant("omni_proto", model__num_plain=n) for n in args.num_plain]
    if part == "lambda":
        return [variant("omni_proto", omni__lam=v) for v in args.lambdas]
    if part == "params":
        return [PROTONET, variant("protonet", model__star=True), BASELINE, variant("baseline", model__star=True), OMNI]
    if part == "table6":
        return [table6_variant(row) for row in glyph_table6.ROWS]
    if part == "fig9a":
        return [BASELINE, PROTONET, Variant("ensemble"), Variant("joint"), OMNI]
    raise ValueError(part)


def table6_variant(row) -> Variant:
    flags = dict(o.split("=") for o in glyph_table6.row_overrides(*row))
    return variant("omni_proto", **{k.replace(".", "__"): v == "True" for k, v in flags.items()})


def heads_of(spec) -> tuple:
    """Every head a method has (never hide one): the Omni methods' and Ensemble's trained heads,
    Joint-Training's pre, meta and ensemble (its one flow with each test-time algorithm and both),
    each other method's own."""
    if spec.omni or spec.twin:
        return spec.trained_heads()
    if spec.weights.joint_pre and spec.weights.joint_meta:
        return ("pre", "meta", "ensemble")
    return (spec.default_head,)


def run_config(protocol: str, v: Variant, seed: int, args, extra: Sequence[str]):
    """A training's config: the glyph config, the shared training setting, the variant's fields,
    every head, then ``extra``; a method whose head has the training ways only (MAML, the GNN) is
    tested on the settings of those ways."""
    from omni_jax.classification import experiment
    base = [f"train.num_steps={args.steps}", f"train.n_way={args.way}", f"train.k_shot={args.shot}",
            f"train.val_every={args.val_every}", f"seed={seed}"]
    cfg = common.glyph_config(protocol, v.method, args.data_dir, [*base, *v.overrides, *extra])
    cfg.eval.heads = heads_of(experiment.spec_for(cfg, v.method))
    algo = experiment.META_ALGORITHMS[experiment.spec_for(cfg, v.method).meta]
    if algo.fixed_ways:
        cfg.eval.settings = tuple(s for s in cfg.eval.settings if s[0] == cfg.train.n_way) or ((args.way, args.shot),)
    experiment.check(cfg)
    return cfg


def run_dir(wd: Path, protocol: str, v: Variant, seed: int, args) -> Path:
    return wd / protocol / f"{args.way}way{args.shot}shot" / v.name / f"seed{seed}"


def finetune_config(cfg, epochs: int, backbone_steps: int):
    """The evaluation of Figure 10c: the training setting, the pre head (Omni) or Baseline's own,
    ``epochs`` epochs of the new head, then ``backbone_steps`` steps of backbone and head."""
    import copy
    c = copy.deepcopy(cfg)
    c.eval.finetune_epochs = epochs
    c.eval.finetune_backbone_steps = backbone_steps
    c.eval.heads = ("pre",)
    c.eval.settings = ((c.train.n_way, c.train.k_shot),)
    return c


def plan(args, extra, wd: Path) -> Tuple[list, Dict[str, List[Variant]]]:
    """Every training of the parts (each once, however many parts share it), then the fine-tuning
    evaluations; and each part's variants. Every config is checked before anything runs."""
    by_part = {p: part_variants(p, args) for p in args.parts}
    variants = list(dict.fromkeys(v for vs in by_part.values() for v in vs))
    runs = []
    for protocol in args.protocols:
        for seed in args.seeds:
            for v in variants:
                cfg = run_config(protocol, v, seed, args, extra)
                runs.append(common.Run(f"{protocol}/{v.name}/seed{seed}", run_dir(wd, protocol, v, seed, args), cfg,
                                       _fields(protocol, v, seed, cfg)))
    if "finetune" in args.parts:
        for protocol in args.protocols:
            for seed in args.seeds:
                for v in (BASELINE, OMNI):
                    cfg = run_config(protocol, v, seed, args, extra)
                    for steps in args.backbone_steps:
                        for epochs in args.finetune_epochs:
                            c = finetune_config(cfg, epochs, steps)
                            label = f"finetune {epochs} epochs, backbone {steps} steps"
                            runs.append(common.Run(f"{protocol}/{v.name}/seed{seed} ({label})",
                                                   run_dir(wd, protocol, v, seed, args), c,
                                                   dict(_fields(protocol, v, seed, c), eval=label,
                                                        finetune_epochs=epochs, backbone_steps=steps)))
    return runs, by_part


def _fields(protocol, v: Variant, seed, cfg) -> dict:
    return {"protocol": protocol, "run": v.name, "seed": seed, "eval": "test", "train_steps": cfg.train.num_steps,
            "train_setting": f"{cfg.train.n_way}-way {cfg.train.k_shot}-shot"}


# ---------------------------------------------------------------------------- records and tables

KEY = ("protocol", "train_setting", "run", "seed", "eval")


def record_order(records):
    protocols = common.first_seen(records, "protocol")
    runs = common.first_seen(records, "run")
    return lambda r: (protocols[r.get("protocol")], runs[r.get("run")], r.get("eval") != "test",
                      r.get("backbone_steps", 0), r.get("finetune_epochs", 0), r.get("seed", 0))


def seed_rows(records: Sequence[dict], label, value="accuracy") -> Tuple[List[str], list]:
    """A long table over seeds: one row per (protocol, label(r), head, test setting); a column per
    training seed (``accuracy ± ci95`` over the test tasks), the mean over seeds ± 95% CI over
    seeds, and the seed spread (min–max of the seed means)."""
    seeds = sorted({r["seed"] for r in records})
    groups: Dict[tuple, Dict[int, dict]] = {}
    for r in records:
        groups.setdefault((r["protocol"], label(r), r["head"], f"{r['n_way']}-way {r['k_shot']}-shot"),
                          {})[r["seed"]] = r
    rows = []
    for key, by_seed in groups.items():
        s = common.over_seeds([by_seed[k][value] for k in sorted(by_seed)])
        cells = [common.mean_ci(by_seed[k][value], by_seed[k]["ci95"]) if k in by_seed else "-" for k in seeds]
        rows.append([*key, *cells, common.seed_mean(s), common.spread(s)])
    header = ["protocol", "run", "head", "test setting", *[f"seed {k}" for k in seeds], "mean over seeds ± 95% CI",
              "seed spread"]
    return header, rows


def seed_table(records, label=lambda r: r["run"]) -> str:
    if not records:
        return "(no records yet)\n"
    header, rows = seed_rows(records, label)
    return common.markdown_table(header, rows)


def seed_means(records, key) -> Dict[tuple, dict]:
    """``{key(r): over_seeds(accuracies)}``."""
    groups: Dict[tuple, list] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r["accuracy"])
    return {k: common.over_seeds(v) for k, v in groups.items()}


def of_runs(records, variants: Sequence[Variant], test_only: bool = True) -> list:
    names = {v.name for v in variants}
    return [r for r in records if r["run"] in names and (r.get("eval") == "test" or not test_only)]


HEADER_NOTE = ("Mean accuracy (%) on the test split; per seed ± 95% CI over the test tasks, then the mean over "
               "training seeds ± 95% CI over seeds (Student's t) and the seed spread (min–max of the seed means). "
               "head: the test-time head the number uses (joint, pre, meta flow, or the ensemble of the trained "
               "flows' heads; a plain method's own head: pre = fine-tuned linear head, meta = its meta algorithm).")


# ---------------------------------------------------------------------------- figures


def sweep_figure(records, x_of, xlabel: str, path: Path, setting: Tuple[int, int], title: str,
                 series=lambda r: f"{r['head']} head", xscale: str = "linear") -> Optional[Path]:
    """Accuracy against a swept value: a panel per protocol, a line per series (mean over seeds,
    a band from the lowest to the highest seed), at the test setting ``setting``; a head keeps its
    marker (:data:`omni_jax.plotting.HEAD_STYLES`)."""
    from omni_jax.plotting import HEAD_STYLES, new_figure, save_figure
    rs = [r for r in records if (r["n_way"], r["k_shot"]) == tuple(setting)]
    if not rs:
        return None
    protocols = list(dict.fromkeys(r["protocol"] for r in rs))
    markers = {series(r): HEAD_STYLES.get(r["head"], ("o",))[0] for r in rs}
    fig, axes = new_figure(1, len(protocols), panel_size=(4.6, 3.6), extra_width=2.6)
    for ax, protocol in zip(axes[0], protocols):
        stats = seed_means([r for r in rs if r["protocol"] == protocol], lambda r: (series(r), x_of(r)))
        for s in dict.fromkeys(k[0] for k in stats):
            xs = sorted(x for (t, x) in stats if t == s)
            st = [stats[(s, x)] for x in xs]
            (line,) = ax.plot(xs, [v["mean"] for v in st], marker=markers[s], ms=4, label=s)
            ax.fill_between(xs, [v["min"] for v in st], [v["max"] for v in st], alpha=0.15, color=line.get_color())
        ax.set_xscale(xscale)
        ax.set_title(f"{protocol}, {setting[0]}-way {setting[1]}-shot test", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)\nmean over seeds, band min–max")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def read_metrics(path: Path) -> list:
    """The records of a run's ``metrics.jsonl`` (``[]`` when there is none), the last per step."""
    from omni_jax.training.metrics import MetricsWriter
    if not path.is_file():
        return []
    by_step = {}
    for r in MetricsWriter(path, tensorboard=False).read():
        by_step.setdefault(r["step"], {}).update(r)
    return [by_step[s] for s in sorted(by_step)]


def curve(seeds_metrics: Sequence[list], key: str) -> Optional[Tuple[list, list, list, list]]:
    """``(steps, mean, min, max)`` of a metric over seeds, at the steps every seed logged it."""
    import numpy as np
    per_seed = [{r["step"]: r[key] for r in m if r.get(key) is not None} for m in seeds_metrics]
    per_seed = [p for p in per_seed if p]
    if not per_seed:
        return None
    steps = sorted(set.intersection(*(set(p) for p in per_seed)))
    if not steps:
        return None
    v = np.array([[p[s] for s in steps] for p in per_seed], dtype=float)
    return steps, list(v.mean(0)), list(v.min(0)), list(v.max(0))


# the curves' colours: the algorithms alone in the colours of omni_jax.plotting, each Omni head its own
CURVE_COLORS = {"baseline": "#1f77b4", "alone": "#2ca02c", "joint": "#d62728", "pre": "#ff7f0e", "meta": "#9467bd",
                "ensemble": "#000000"}


def curve_series(x: str) -> list:
    """Figure 10a/b's series of algorithm X: ``(panel, variant, metric, label, colour key, head)``."""
    alone, omni = pair(x)
    name = glyph_tables.NAMES[x]
    acc = [("val", BASELINE, "val/accuracy", "Baseline alone", "baseline", None),
           ("val", alone, "val/accuracy", f"{name} alone", "alone", None)]
    acc += [("val", omni, f"val/accuracy/{h}", f"Omni∘{name} {h} head", h, h)
            for h in ("joint", "pre", "meta", "ensemble")]
    pre = [("pre", BASELINE, "loss/joint_pre", "Baseline alone", "baseline", None),
           ("pre", omni, "loss/pre", f"Omni∘{name} pre flow", "pre", "pre"),
           ("pre", omni, "loss/joint_pre", f"Omni∘{name} joint flow (pre loss)", "joint", "joint")]
    meta = [("meta", alone, "loss/joint_meta", f"{name} alone", "alone", None),
            ("meta", omni, "loss/meta", f"Omni∘{name} meta flow", "meta", "meta"),
            ("meta", omni, "loss/joint_meta", f"Omni∘{name} joint flow (meta loss)", "joint", "joint")]
    return acc + pre + meta


PANELS = {"val": "validation accuracy (%)", "pre": "training loss: pre-training", "meta": "training loss: meta-training"}


def curves_figure(wd: Path, protocol: str, algorithms: Sequence[str], seeds, args, path: Path) -> Optional[Path]:
    """Figure 10a/b for one protocol: a row per algorithm X (ProtoNet first), panels: validation
    accuracy of every head, the pre-training losses, the meta-training losses; mean over seeds,
    band min–max."""
    from omni_jax.plotting import HEAD_STYLES, new_figure, save_figure
    rows = [PROTO] + [x for x in algorithms if x != PROTO]
    fig, axes = new_figure(len(rows), 3, panel_size=(4.4, 3.3), extra_width=0.5)
    drawn = False
    for row, x in zip(axes, rows):
        for ax, panel in zip(row, PANELS):
            for p, v, key, label, colour, head in curve_series(x):
                if p != panel:
                    continue
                ms = [read_metrics(run_dir(wd, protocol, v, s, args) / v.method / "metrics.jsonl") for s in seeds]
                c = curve(ms, key)
                if c is None:
                    continue
                steps, mean, lo, hi = c
                color = CURVE_COLORS[colour]
                ax.plot(steps, mean, color=color, marker=HEAD_STYLES[head][0] if head else "o", ms=3,
                        linestyle="-" if head is None else "--", label=label)
                ax.fill_between(steps, lo, hi, color=color, alpha=0.12)
                drawn = True
            ax.set_title(f"{glyph_tables.NAMES[x]}: {PANELS[panel]}", fontsize=9)
            ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=6)
    if not drawn:
        return None
    fig.suptitle(f"{protocol}: each flow against the algorithm trained alone (mean over seeds {list(seeds)}, "
                 "band min–max; validation on the training setting, fine-tuned heads by nearest prototype)",
                 fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def curves_tables(wd: Path, records, args) -> str:
    """curves.md: final validation accuracy and the last-tenth mean training loss of every head and
    flow over seeds, then the test accuracy of every head of the curves' runs."""
    rows_acc, rows_loss, seen = [], [], set()
    for protocol in args.protocols:
        for x in [PROTO] + [a for a in args.algorithms if a != PROTO]:
            for p, v, key, label, _, _ in curve_series(x):
                if (protocol, v, key) in seen:   # Baseline is in every algorithm's panels
                    continue
                seen.add((protocol, v, key))
                vals = []
                for s in args.seeds:
                    m = [r for r in read_metrics(run_dir(wd, protocol, v, s, args) / v.method / "metrics.jsonl")
                         if r.get(key) is not None]
                    if m:
                        tail = m[-max(1, len(m) // 10):] if p != "val" else m[-1:]
                        vals.append(sum(r[key] for r in tail) / len(tail))
                if not vals:
                    continue
                st = common.over_seeds(vals)
                row = [protocol, label, key, " / ".join(f"{v:.3f}" if p != "val" else f"{v:.2f}" for v in vals),
                       common.seed_mean(st, 2 if p == "val" else 3),
                       common.spread(st, 2 if p == "val" else 3)]
                (rows_acc if p == "val" else rows_loss).append(row)
    header = ["protocol", "series", "metric", f"per seed ({', '.join(map(str, args.seeds))})",
              "mean over seeds ± 95% CI", "seed spread"]
    names = {v.name for x in args.algorithms for v in pair(x)} | {BASELINE.name, PROTONET.name, OMNI.name}
    test = [r for r in records if r["run"] in names and r.get("eval") == "test"]
    return ("## Figure 10a/b: final validation accuracy (%) per head\n\nThe last validation of each run (the "
            "training setting, fine-tuned heads scored by nearest prototype, as model selection).\n\n"
            + common.markdown_table(header, rows_acc)
            + "\n## Training loss per flow (mean of the last tenth of the logged chunks)\n\n"
            + common.markdown_table(header, rows_loss)
            + "\n## Test accuracy of the same runs, every head\n\n" + HEADER_NOTE + "\n\n" + seed_table(test))


def cam_figure(wd: Path, protocol: str, seed: int, args, extra, path: Path) -> Optional[Path]:
    """Figure 11 for one protocol and seed: a row per test glyph, the glyph then the Grad-CAM of
    Baseline, ProtoNet and each flow of Omni∘Proto (the run's selected parameters)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from omni_jax.classification import cam, experiment
    from omni_jax.classification.augment import to_float
    from omni_jax.classification.episodes import sample_episode
    from omni_jax.classification.methods import PRETRAIN_ALGORITHMS
    from omni_jax.classification.model import eval_apply
    from omni_jax.plotting import new_figure, save_figure
    from omni_jax.training import prng_stream, selected
    from omni_jax.training.runner import trained_models
    panels = [(BASELINE, "joint", "Baseline"), (PROTONET, "joint", "ProtoNet")] + [
        (OMNI, f, f"Omni∘Proto {f} flow") for f in ("joint", "pre", "meta")]
    models = {}
    for v in (BASELINE, PROTONET, OMNI):
        cfg = run_config(protocol, v, seed, args, extra)
        try:
            models[v] = (cfg, trained_models(experiment.ClassificationExperiment(), cfg,
                                             run_dir(wd, protocol, v, seed, args))[v.method])
        except Exception as e:   # noqa: BLE001 (an unfinished run: no figure, said in one line)
            common.say(f"cam: {protocol}/{v.name}/seed{seed}: {e}")
            return None
    cfg = models[OMNI][0]
    data = experiment.load_data(cfg)
    split = data.device["test"]
    n_way = CAM_GLYPHS + 1
    ep = sample_episode(prng_stream(cfg.eval.seed, "figure", "cam"), split, n_way, 1, 1)
    sx, sy = to_float(ep["support"]["x"]), ep["support"]["y"]
    qx = to_float(ep["query"]["x"])[:CAM_GLYPHS]
    layer = f"block{cfg.model.depth - 1}"
    maps = []
    for v, flow, _ in panels:
        c, t = models[v]
        model, chosen = t.program.model, selected(t.state)
        variables = {"params": chosen.params, "batch_stats": chosen.batch_stats}
        spec = model.spec
        algos = [a for f, a in spec.head_algorithms("ensemble" if spec.omni else spec.default_head)
                 if f == flow] if spec.omni else [a for _, a in spec.head_algorithms(spec.default_head)]
        tc, _, ec = experiment.configs(c)
        scorer = cam.FlowScorer(algos, dataclasses.replace(ec.finetune, head=PRETRAIN_ALGORITHMS[spec.pretrain].head,
                                                           backbone_steps=0), tc.proto_distance)
        embed = lambda x, n=model.net, vs=variables, fl=flow: eval_apply(n, vs, x, fl, "features")
        m, pred = cam.flow_cams(embed, sx, sy, qx, n_way, scorer, layer, jax.random.PRNGKey(0))
        maps.append((np.asarray(m), np.asarray(pred)))
    truth = np.asarray(ep["query"]["y"])[:CAM_GLYPHS]
    fig, axes = new_figure(CAM_GLYPHS, len(panels) + 1, panel_size=(1.7, 1.8))
    for i in range(CAM_GLYPHS):
        glyph = np.asarray(qx[i])[..., 0] if qx.shape[-1] == 1 else np.asarray(qx[i]).mean(-1)
        axes[i][0].imshow(glyph, cmap="gray")
        axes[i][0].set_title("test glyph" if i == 0 else "", fontsize=8)
        for j, ((v, flow, title), (m, pred)) in enumerate(zip(panels, maps), 1):
            axes[i][j].imshow(glyph, cmap="gray")
            axes[i][j].imshow(m[i], cmap="jet", alpha=0.5, vmin=0.0, vmax=1.0)
            ok = "✓" if pred[i] == truth[i] else "✗"
            axes[i][j].set_title((title + "\n" if i == 0 else "") + f"pred {ok}", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Grad-CAM on {layer} ({protocol}, seed {seed}; {n_way}-way 1-shot support, predicted class's "
                 "score)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def backbone_params(variants: Sequence[Variant], args, extra) -> Dict[str, int]:
    """The backbone's parameter count of each variant (the network as set up for training on the
    first protocol; the heads' counts depend on its number of training classes)."""
    from omni_jax.classification import experiment
    from omni_jax.nn.convnets import count_params
    if not args.protocols:
        return {}
    cfg = run_config(args.protocols[0], variants[0], args.seeds[0], args, extra)
    data = experiment.load_data(cfg)
    out = {}
    for v in variants:
        program = experiment.setup(run_config(args.protocols[0], v, args.seeds[0], args, extra), v.method, data)
        out[v.name] = count_params(program.state.params["body"])
    return out


# ---------------------------------------------------------------------------- the parts' outputs


def write_outputs(records, wd: Path, args, extra, by_part) -> List[Path]:
    """Every table and figure of the parts asked for, from ``records`` (all the driver's)."""
    from omni_jax import files
    from omni_jax.classification.plots import plot_fewshot_accuracy
    out = []
    setting = (args.way, args.shot)

    def md(name, title, text):
        files.write_atomic(wd / name, f"# {title}\n\n{text}")
        out.append(wd / name)

    if "curves" in args.parts:
        for protocol in args.protocols:
            p = curves_figure(wd, protocol, args.algorithms, args.seeds, args, wd / f"curves_{protocol}.png")
            out += [p] if p else []
        md("curves.md", "Figure 10a/b: each flow against the algorithm trained alone", curves_tables(wd, records, args))
    if "finetune" in args.parts:
        rs = [r for r in records if r.get("eval") != "test" and r["run"] in (BASELINE.name, OMNI.name)]
        label = lambda r: f"{r['run']} {r['head']}, backbone {r['backbone_steps']} steps"
        text = (f"Test accuracy (%) against the epochs of the test-time new head (eval.finetune_epochs), then "
                f"eval.finetune_backbone_steps steps of backbone and head; Omni∘Proto's pre head against Baseline "
                f"(its own head, pre). Test split, as the paper's Figure 10c.\n\n")
        rows = [dict(r, run=f"{label(r)}, {r['finetune_epochs']} epochs") for r in rs]
        md("finetune.md", "Figure 10c: the pre flow against Baseline under test-time fine-tuning",
           text + HEADER_NOTE + "\n\n" + seed_table(rows))
        p = sweep_figure(rs, lambda r: r["finetune_epochs"], "epochs of the new head (log)", wd / "finetune.png",
                         setting, "Figure 10c: Omni∘Proto pre head vs Baseline", series=lambda r: (
                             f"{r['run']} ({r['head']} head), backbone {r['backbone_steps']} steps"), xscale="log")
        out += [p] if p else []
    def sweep(part, values, label, title, xlabel, figure_title, xscale="linear"):
        """A sweep part's table (``<part>.md``) and figure (``<part>.png``): one run per value."""
        rs = of_runs(records, by_part[part])
        value = {v.name: x for v, x in zip(by_part[part], values)}
        rows = [dict(r, run=f"{label}={value[r['run']]:g} ({r['run']})") for r in rs]
        md(f"{part}.md", title, HEADER_NOTE + "\n\n" + seed_table(rows))
        p = sweep_figure(rs, lambda r: value[r["run"]], xlabel, wd / f"{part}.png", setting, figure_title,
                         xscale=xscale)
        out.extend([p] if p else [])

    if "layers" in args.parts:
        sweep("layers", args.num_plain, "num_plain", "Figure 12a/b: the first n blocks plain (model.num_plain), "
              "Omni∘Proto", "first n Conv-4 blocks plain (model.num_plain)", "Figure 12a/b: Omni-Layers from "
              "block n+1 on")
    if "lambda" in args.parts:
        sweep("lambda", args.lambdas, "λ", "Figure 12c: the trade-off λ of the self-distillation (omni.lam), "
              "Omni∘Proto", "λ (symmetric log scale)", "Figure 12c: λ", xscale="symlog")
    if "params" in args.parts:
        rs = of_runs(records, by_part["params"])
        counts = {r["run"]: r.get("params") for r in rs}
        bodies = backbone_params(by_part["params"], args, extra)
        rows = [dict(r, run=f"{r['run']} ({counts[r['run']] / 1e3:.1f}K params)") for r in rs]
        lines = "".join(f"- {name}: {n:,} parameters in all, {bodies.get(name, '?'):,} in the backbone\n"
                        for name, n in counts.items())
        md("table7.md", "Table 7: the model size (model.star: the plain backbone widened to the Omni parameter count)",
           "Parameters of each network as trained (backbone and heads: an Omni-Net has a pre-training head per "
           "flow; model.star matches the backbone's count, as the paper's ResNet-18*):\n\n" + lines + "\n"
           + HEADER_NOTE + "\n\n" + seed_table(rows))
    if "table6" in args.parts:
        rs = of_runs(records, by_part["table6"])
        terms = {table6_variant(row).name: row for row in glyph_table6.ROWS}
        tick = lambda row: " ".join(t if on else "-" for t, on in zip(glyph_table6.TERMS, row))
        rows = [dict(r, run=f"{tick(terms[r['run']])}") for r in rs]
        md("table6.md", "Table 6: the Omni-Loss terms (pre, meta, joint, R_pre, R_meta), Omni∘Proto",
           "run: the terms on (a flow whose loss is off is left out at inference).\n\n" + HEADER_NOTE + "\n\n"
           + seed_table(rows))
    if "fig9a" in args.parts:
        rs = of_runs(records, by_part["fig9a"])
        md("fig9a.md", "Figure 9a: Omni-Training against Ensemble and Joint-Training",
           HEADER_NOTE + "\n\n" + seed_table(rs))
        means = seed_means(rs, lambda r: (r["protocol"], r["method"], r["head"], r["n_way"], r["k_shot"]))
        shown = [{"protocol": p, "method": m, "head": h, "n_way": n, "k_shot": k, "accuracy": s["mean"],
                  "ci95": s["ci95"] or 0.0} for (p, m, h, n, k), s in means.items()]   # one seed: no bar
        if shown:
            out.append(plot_fewshot_accuracy(shown, wd / "fig9a.png", label=lambda r: f"{r['method']} ({r['head']})"))
    if "cam" in args.parts:
        for protocol in args.protocols:
            p = cam_figure(wd, protocol, args.seeds[0], args, extra, wd / f"cam_{protocol}.png")
            out += [p] if p else []
    return out


# ---------------------------------------------------------------------------- command line


def _numbers(text: str, option: str, kind=float) -> list:
    from omni_jax.errors import OmniJaxError
    try:
        out = [kind(t) for t in common.split_list(text, option)]
    except ValueError:
        raise OmniJaxError(f"{option} expects comma-separated {kind.__name__} values, got {text!r}") from None
    if any(v < 0 for v in out):
        raise OmniJaxError(f"{option} values must be at least 0, got {text!r}")
    return out


def build_parser():
    p = common.parser("glyph_analysis", __doc__)
    p.add_argument("--data-dir", default=None, help="the glyph benchmark's folder (omni-jax data glyphs --out DIR)")
    p.add_argument("--workdir", default="runs/glyph_analysis", help="(default: %(default)s)")
    p.add_argument("--parts", default=",".join(PARTS), help="(default: %(default)s)")
    p.add_argument("--protocols", default="cross_task,cross_domain",
                   help="cross_task, cross_domain, loo_<group>; synthetic: in-memory images (default: %(default)s)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of every run (default: %(default)s)")
    p.add_argument("--val-every", type=int, default=100,
                   help="validation period: the curves' resolution (default: %(default)s)")
    p.add_argument("--way", type=int, default=20, help="training episodes' ways (default: %(default)s)")
    p.add_argument("--shot", type=int, default=1, help="training episodes' shots (default: %(default)s)")
    p.add_argument("--algorithms", default="relation",
                   help=f"the curves' second algorithms X beside ProtoNet, from {','.join(glyph_tables.ALGORITHMS)} "
                        "(default: %(default)s)")
    p.add_argument("--num-plain", default=NUM_PLAIN, help="layers: model.num_plain values (default: %(default)s)")
    p.add_argument("--lambdas", default=LAMBDAS, help="lambda: omni.lam values (default: %(default)s)")
    p.add_argument("--finetune-epochs", default=FINETUNE_EPOCHS, help="finetune: eval.finetune_epochs values "
                                                                      "(default: %(default)s)")
    p.add_argument("--backbone-steps", default=BACKBONE_STEPS,
                   help="finetune: eval.finetune_backbone_steps values (default: %(default)s)")
    common.add_report_only(p)
    common.add_extra(p)
    common.add_progress(p)
    return p


def main(argv=None) -> int:
    return common.main("glyph_analysis", build_parser, _main, argv)


def _main(args, extra) -> int:
    from omni_jax import files
    from omni_jax.classification import train_and_evaluate
    from omni_jax.errors import OmniJaxError
    args.parts = common.split_list(args.parts, "--parts", PARTS)
    args.protocols = common.split_list(args.protocols, "--protocols")
    args.algorithms = common.split_list(args.algorithms, "--algorithms", list(glyph_tables.ALGORITHMS), empty_ok=True)
    args.seeds = [int(s) for s in _numbers(args.seeds, "--seeds", int)]
    args.num_plain = _numbers(args.num_plain, "--num-plain", int)
    args.lambdas = _numbers(args.lambdas, "--lambdas")
    args.finetune_epochs = _numbers(args.finetune_epochs, "--finetune-epochs", int)
    args.backbone_steps = _numbers(args.backbone_steps, "--backbone-steps", int)
    for option, v in (("--steps", args.steps), ("--val-every", args.val_every), ("--way", args.way),
                      ("--shot", args.shot)):
        if v <= 0:
            raise OmniJaxError(f"{option} must be positive, got {v}")
    if 0 in args.finetune_epochs:
        raise OmniJaxError("--finetune-epochs must be positive (eval.finetune_epochs): an untrained new head "
                           "scores nothing")
    common.check_data_dir(args.protocols, args.data_dir)
    wd = common.workdir(args.workdir)
    runs, by_part = plan(args, extra, wd)     # every config checked before anything runs
    files.mark_directory(files.ensure_dir(wd, "work directory"))
    path = wd / "analysis.json"

    def write(records):
        return common.write_records(path, records, KEY, record_order)

    records = common.run_plan(runs, train_and_evaluate, report_only=args.report_only, progress=args.progress,
                              write=write, reuse_evaluations=True)
    records = write(records) if not args.report_only else common.merge_records(records, common.read_records(path),
                                                                               KEY, record_order)
    outputs = write_outputs(records, wd, args, extra, by_part)
    common.say(f"{len(runs)} runs planned ({sum(r.fields['eval'] == 'test' for r in runs)} trainings); "
               f"wrote {', '.join(str(p) for p in [path, *outputs])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
