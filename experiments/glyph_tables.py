"""Tables 2-3 and Figure 9c on the offline glyph benchmark (paper §6.1, §7.1; Conv-4, CPU).

    python -m experiments.glyph_tables claims --data-dir data/glyphs [--workdir runs/glyph_claims] \\
        [--protocols cross_task,cross_domain] [--methods protonet,baseline,omni_proto] [--steps 1000] \\
        [--train-way 20] [--report-only] [--extra --config.eval.num_tasks=600 ...]
    python -m experiments.glyph_tables algorithms --data-dir data/glyphs [--workdir runs/glyph_claims] \\
        [--protocols cross_task,cross_domain] [--algorithms proto,matching,relation,gnn,maml] \\
        [--baselines baseline,baseline_pp] [--report-only] [--extra --config.eval.num_tasks=600 ...]

claims (Tables 2-3: Omni-Training∘Proto against ProtoNet and Baseline, per protocol): every method
trains for --steps steps, each step one mini-batch of 64 and one 5-way 5-shot episode with 15
queries, and is tested on the same 600 tasks per setting (5-way and 20-way, 1-shot and 5-shot).
--train-way N trains the episodic methods (all but Baseline, the same N for each) on N-way
episodes, as Snell et al. train ProtoNet with more ways than the test; Baseline has no training
episodes and keeps the 5-way validation episodes it selects its step with.
Outputs: WORKDIR/claims.json (every record), claims.md, claims.png (accuracy ± 95% CI, a panel per
protocol).

algorithms (Figure 9c: each meta algorithm X alone against Omni-Training∘X): X and Omni∘X train
for the same steps on the same episodes (ALGORITHMS: 1,000 steps for ProtoNet and MatchingNet, 500
for RelationNet, 400 for the GNN, whose graphs hold one query of each class, 150 with 5 queries per
class for first-order MAML), plus the Baseline and Baseline++ rows, each tested on the same 600
tasks per setting (5-way 1-shot, 5-way 5-shot, 20-way 1-shot). The GNN's and MAML's heads score
only tasks with their training episodes' number of ways, so those two also train a 20-way 1-shot
pair (run <method>_w20) for the 20-way column. The Omni runs keep every head (joint, pre, meta,
ensemble); the table reports X's own head against Omni∘X's ensemble head and names them.
Outputs: WORKDIR/algorithms.json, algorithms.md (and every head of the Omni runs), algorithms.png
(X against Omni∘X, a panel per protocol and setting).

Each run is one omni_jax.classification.train_and_evaluate in WORKDIR/<protocol>/<run>: rerunning
resumes it, and a run already evaluated with the same config is restored in seconds (the runner
keeps it); ProtoNet's and Baseline's runs are the same in both tables and shared. The records JSON
accumulate over invocations: the records of the runs an invocation covers are replaced, the
others' (other --protocols, --methods, --algorithms) kept. --report-only runs nothing: the tables
and figures from the runs already evaluated with these configs. --protocols synthetic runs on
in-memory images (no --data-dir; for tests).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import List, Optional, Sequence

from experiments import _common as common

NON_EPISODIC = {"baseline", "baseline_pp"}   # train on mini-batches only; their episodes are the validation ones
CLAIMS_METHODS = ("protonet", "baseline", "omni_proto")
# the algorithms table's columns (ProtoNet's and Baseline's runs also test 20-way 5-shot)
SETTINGS_SHOWN = ((5, 1), (5, 5), (20, 1))
SETTINGS = str(SETTINGS_SHOWN).replace(" ", "")   # as eval.settings: "((5,1),(5,5),(20,1))"
ALL_HEADS = "('joint','pre','meta','ensemble')"
OMNI_HEAD = "ensemble"                         # the head the table reports for Omni∘X (chosen before any run)
# X -> (method alone, Omni method, training steps, extra training overrides, the 20-way pair's overrides or None)
ALGORITHMS = {
    "proto": ("protonet", "omni_proto", 1000, [], None),
    "matching": ("matchingnet", "omni_matching", 1000, [], None),
    "relation": ("relationnet", "omni_relation", 500, [], None),
    # Tseng et al.'s graphs, one query of each class per graph (at 200 steps of one graph per query the GNN
    # was still at chance; docs/glyph_algorithms.md)
    "gnn": ("gnn", "omni_gnn", 400, ["model.gnn_graph=class_set", "train.n_query=15"],
            ["train.n_way=20", "train.k_shot=1", "train.n_query=2"]),
    "maml": ("maml", "omni_maml", 150, ["train.maml_first_order=True", "train.n_query=5", "train.chunk_size=50"],
             ["train.n_way=20", "train.k_shot=1", "train.n_query=2"]),
}
BASELINES = {"baseline": 1000, "baseline_pp": 1000}
NAMES = {"proto": "ProtoNet", "matching": "MatchingNet", "relation": "RelationNet", "gnn": "GNN", "maml": "MAML"}


@dataclasses.dataclass(frozen=True)
class TableRun:
    """One run of a table: its directory name, its method, its config overrides, its ALGORITHMS key."""

    name: str
    method: str
    overrides: tuple
    algorithm: Optional[str] = None


# ---------------------------------------------------------------------------- the runs


def claims_runs(methods: Sequence[str], steps: int, train_way: int = 0) -> List[TableRun]:
    """The runs of the claims table: each method ``steps`` steps, the episodic ones on
    ``train_way``-way episodes when it is given."""
    out = []
    for m in methods:
        way = [f"train.n_way={train_way}"] if train_way and m not in NON_EPISODIC else []
        out.append(TableRun(m, m, (f"train.num_steps={steps}", *way)))
    return out


def algorithm_runs(algorithms: Sequence[str], baselines: Sequence[str]) -> List[TableRun]:
    """The runs of the algorithms table: the baselines, then X and Omni∘X for each algorithm, the
    20-way pairs last."""
    out = [TableRun(b, b, (f"train.num_steps={BASELINES[b]}", *_settings(b))) for b in baselines]
    for x in algorithms:
        alone, omni, steps, extra, w20 = ALGORITHMS[x]
        for method in (alone, omni):
            train = (f"train.num_steps={steps}", *extra)
            heads = (f"eval.heads={ALL_HEADS}",) if method == omni else ()
            if w20 is None:
                out.append(TableRun(method, method, train + heads + tuple(_settings(method)), x))
            else:
                out.append(TableRun(method, method, train + heads + ("eval.settings=((5,1),(5,5))",), x))
                out.append(TableRun(f"{method}_w20", method, train + tuple(w20) + heads + ("eval.settings=((20,1),)",),
                                    x))
    return sorted(out, key=lambda r: r.name.endswith("_w20"))   # the 20-way pairs last


def _settings(method: str) -> list:
    # ProtoNet and Baseline keep the claims table's config (four settings), so that their runs are shared
    return [] if method in ("protonet", "baseline") else [f"eval.settings={SETTINGS}"]


def run_order(records: list):
    """The tables' order: protocols as first seen, then the runs in the claims' and algorithms' order."""
    protocols = common.first_seen(records, "protocol")
    names = [r.name for r in claims_runs(CLAIMS_METHODS, 0) + algorithm_runs(list(ALGORITHMS), list(BASELINES))]
    runs = {n: i for i, n in enumerate(dict.fromkeys(names))}
    return lambda r: (protocols[r.get("protocol")], runs.get(r.get("run"), len(runs)))


def plan(todo: Sequence[TableRun], protocols: Sequence[str], args, extra: Sequence[str]) -> list:
    """The runs of every protocol, as :func:`experiments._common.run_plan` takes them; every config
    is checked before anything runs."""
    from omni_jax.classification import experiment
    common.check_data_dir(protocols, args.data_dir)
    out = []
    for protocol in protocols:
        for run in todo:
            cfg = common.glyph_config(protocol, run.method, args.data_dir, [*run.overrides, *extra])
            experiment.check(cfg)
            out.append(common.Run(f"{protocol}/{run.name}", Path(args.workdir) / protocol / run.name, cfg,
                                  {"protocol": protocol, "run": run.name, "algorithm": NAMES.get(run.algorithm),
                                   "train_way": cfg.train.n_way, "train_steps": cfg.train.num_steps}))
    return out


# ---------------------------------------------------------------------------- claims


def labeller(records):
    """Names a record's series: its method, its head where the method has several, its training episodes."""
    heads = {}
    for r in records:
        heads.setdefault(r["method"], set()).add(r["head"])

    def label(r):
        name = r["method"] + (f"/{r['head']}" if len(heads[r["method"]]) > 1 else "")
        return name if r["method"] in NON_EPISODIC else f"{name} ({r['train_way']}-way train)"
    return label


def claims_table(records) -> str:
    """Markdown: one row per (protocol, method, head, training ways), a column per setting."""
    settings = sorted({(r["n_way"], r["k_shot"]) for r in records})
    rows = {}
    for r in records:
        key = (r["protocol"], r["method"], r["head"], r.get("train_way", 5))
        rows.setdefault(key, {})[(r["n_way"], r["k_shot"])] = r
    return common.markdown_table(
        ["protocol", "method", "head", "train way"] + [f"{n}-way {k}-shot" for n, k in settings],
        [[protocol, method, head, "-" if method in NON_EPISODIC else way]
         + [common.mean_ci(cells[s]["accuracy"], cells[s]["ci95"]) if s in cells else "-" for s in settings]
         for (protocol, method, head, way), cells in rows.items()])


def write_claims(records, wd: Path) -> list:
    """Writes ``claims.json`` (``records`` merged with its other runs), ``claims.md`` and ``claims.png``."""
    from omni_jax import files
    from omni_jax.classification.plots import plot_fewshot_accuracy
    records = common.write_records(wd / "claims.json", records, ("protocol", "run"), run_order)
    files.write_atomic(wd / "claims.md", claims_table(records))
    if records:
        plot_fewshot_accuracy(records, wd / "claims.png", label=labeller(records))
    return records


# ---------------------------------------------------------------------------- algorithms


def reported_head(r) -> str:
    """The head the table reports for a record's method: Omni∘X's ensemble; every other method's own head."""
    return OMNI_HEAD if r["method"].startswith("omni_") else r["head"]


def algorithms_table(records, every_head: bool = False) -> str:
    """Markdown: one row per (protocol, method), the reported head, the training steps and ways, a column per
    setting; ``every_head``: instead one row per head of each Omni method."""
    settings = list(SETTINGS_SHOWN)
    rows = {}
    for r in records:
        if (r["n_way"], r["k_shot"]) not in settings or (
                not r["method"].startswith("omni_") if every_head else r["head"] != reported_head(r)):
            continue
        row = rows.setdefault((r["protocol"], r["method"], r["head"]), {"head": r["head"], "steps": r["train_steps"],
                                                                         "ways": set(), "cells": {}})
        row["cells"][(r["n_way"], r["k_shot"])] = r
        if r["method"] not in NON_EPISODIC:
            row["ways"].add(str(r["train_way"]))
    return common.markdown_table(
        ["split", "method", "head", "steps", "train way"] + [f"{n}-way {k}-shot" for n, k in settings],
        [[protocol, method, row["head"], row["steps"], "/".join(sorted(row["ways"], key=int)) or "-"]
         + [common.mean_ci(c["accuracy"], c["ci95"]) if (c := row["cells"].get(s)) else "-" for s in settings]
         for (protocol, method, _), row in rows.items()])


def write_algorithms(records, wd: Path) -> list:
    """Writes ``algorithms.json`` (``records`` merged with its other runs), ``algorithms.md`` and
    ``algorithms.png``; returns every record."""
    from omni_jax import files
    from omni_jax.classification.plots import plot_omni_pairs
    records = common.write_records(wd / "algorithms.json", records, ("protocol", "run"), run_order)
    files.write_atomic(wd / "algorithms.md", algorithms_table(records) + "\nEvery head of the Omni runs:\n\n"
                       + algorithms_table(records, every_head=True))
    shown = [r for r in records if r["head"] == reported_head(r) and (r["n_way"], r["k_shot"]) in SETTINGS_SHOWN]
    if shown:
        plot_omni_pairs(shown, wd / "algorithms.png")
    return records


# ---------------------------------------------------------------------------- command line

TABLES = {"claims": (write_claims, claims_table, "claims"),
          "algorithms": (write_algorithms, algorithms_table, "algorithms")}


def build_parser():
    p = common.parser("glyph_tables", __doc__)
    shared = argparse.ArgumentParser(add_help=False)   # the options of both tables
    shared.add_argument("--data-dir", default=None,
                        help="the glyph benchmark's folder (omni-jax data glyphs --out DIR)")
    shared.add_argument("--workdir", default="runs/glyph_claims",
                        help="run directories and outputs (default: %(default)s)")
    shared.add_argument("--protocols", default="cross_task,cross_domain",
                        help="glyph protocols: cross_task, cross_domain, loo_<group>; synthetic: in-memory images "
                             "(default: %(default)s)")
    common.add_report_only(shared, "table and figure")
    common.add_extra(shared)
    common.add_progress(shared)
    sub = p.add_subparsers(dest="table", required=True, metavar="TABLE")
    c = sub.add_parser("claims", parents=[shared], help="Tables 2-3: Omni∘Proto vs ProtoNet vs Baseline",
                       description="Tables 2-3: Omni-Training∘Proto against ProtoNet and Baseline, per protocol")
    c.add_argument("--methods", default=",".join(CLAIMS_METHODS), help="methods (default: %(default)s)")
    c.add_argument("--steps", type=int, default=1000, help="training steps of every method (default: %(default)s)")
    c.add_argument("--train-way", type=int, default=0,
                   help="n_way of the training episodes of the episodic methods (0: the config's, 5)")
    a = sub.add_parser("algorithms", parents=[shared], help="Figure 9c: each meta algorithm X against Omni∘X",
                       description="Figure 9c (Tables 2-3's algorithms): each meta algorithm X alone against "
                                   "Omni-Training∘X, plus Baseline and Baseline++")
    a.add_argument("--algorithms", default=",".join(ALGORITHMS), help="(default: %(default)s)")
    a.add_argument("--baselines", default=",".join(BASELINES), help="(default: %(default)s; '' for none)")
    return p


def main(argv=None) -> int:
    return common.main("glyph_tables", build_parser, _main, argv)


def _main(args, extra) -> int:
    from omni_jax.classification.methods import method_names
    from omni_jax.errors import OmniJaxError
    protocols = common.split_list(args.protocols, "--protocols")
    if args.table == "claims":
        if args.steps <= 0 or args.train_way < 0:
            raise OmniJaxError(f"--steps must be positive and --train-way at least 0, got {args.steps} and "
                               f"{args.train_way}")
        todo = claims_runs(common.split_list(args.methods, "--methods", method_names()), args.steps, args.train_way)
    else:
        algorithms = common.split_list(args.algorithms, "--algorithms", list(ALGORITHMS), empty_ok=True)
        baselines = common.split_list(args.baselines, "--baselines", list(BASELINES), empty_ok=True)
        if not algorithms and not baselines:
            raise OmniJaxError("--algorithms and --baselines name nothing")
        todo = algorithm_runs(algorithms, baselines)
    write, table, name = TABLES[args.table]
    wd = common.workdir(args.workdir)
    from omni_jax.classification import train_and_evaluate
    return common.run_and_write(plan(todo, protocols, args, extra), train_and_evaluate, args,
                                lambda recs: write(recs, wd), table,
                                [wd / f"{name}.{e}" for e in ("json", "md", "png")])


if __name__ == "__main__":
    raise SystemExit(main())
