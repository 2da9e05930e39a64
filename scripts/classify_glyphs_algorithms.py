"""Tables 2 and 3 on the offline glyph benchmark: each meta algorithm X alone against Omni-Training∘X (Conv-4, CPU).

    python scripts/classify_glyphs_algorithms.py --data-dir data/glyphs --workdir runs/glyph_claims \\
        [--protocols cross_task,cross_domain] [--algorithms proto,matching,relation,gnn,maml] \\
        [--baselines baseline,baseline_pp] [--extra --config.eval.num_tasks=600 ...]

For each protocol and each algorithm X this trains X and Omni∘X with the
same number of steps and the same training episodes (:data:`ALGORITHMS`:
1,000 steps for ProtoNet and MatchingNet, 500 for RelationNet; 400 for the GNN, whose
graphs hold one query of each class, and 150 with 5 queries per class for
first-order MAML, whose steps cost 4-5x ProtoNet's even so), plus the Baseline and Baseline++ rows,
and tests every run on the same 600 tasks per setting (5-way 1-shot,
5-way 5-shot, 20-way 1-shot). The GNN's and MAML's heads score only tasks
with their training episodes' number of ways, so those two also train a
20-way 1-shot pair (run ``<method>_w20``) for the 20-way column.

Each run is one ``omni-jax classify`` command in ``WORKDIR/<protocol>/<run>``
(rerunning resumes it, or reuses its ``results.json`` when the command is
the same; a changed evaluation re-evaluates the finished checkpoint, since
evaluation fields are not in the checkpoint's fingerprint). The Omni runs
keep every head (joint, pre, meta, ensemble) in their ``results.json``; the
table reports X's own head against Omni∘X's ensemble head and names them.
Outputs: ``WORKDIR/algorithms.json`` (every record), ``algorithms.md`` (the
table) and ``algorithms.png`` (X against Omni∘X, one panel per protocol and
setting). They accumulate: the records of runs this invocation does not cover
(other ``--protocols`` or ``--algorithms``) are kept from ``algorithms.json``,
those of the runs it covers are replaced. The ProtoNet and Baseline runs are the same commands as
``scripts/classify_glyphs_claims.py``'s and share its work directory;
Omni∘Proto's is not (every head, three settings), so running the two
scripts in turn re-evaluates that run each time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classify_glyphs_claims import finished, run_classify, train_way
from omni_jax.classification.plots import plot_omni_pairs

SETTINGS_SHOWN = ((5, 1), (5, 5), (20, 1))    # the table's columns (ProtoNet's and Baseline's runs also test 20-way 5-shot)
SETTINGS = str(SETTINGS_SHOWN).replace(" ", "")   # as --config.eval.settings: "((5,1),(5,5),(20,1))"
ALL_HEADS = "('joint','pre','meta','ensemble')"
OMNI_HEAD = "ensemble"                         # the head the table reports for Omni∘X (chosen before any run)
# X -> (method alone, Omni method, training steps, extra training arguments, the 20-way pair's arguments or None)
ALGORITHMS = {
    "proto": ("protonet", "omni_proto", 1000, [], None),
    "matching": ("matchingnet", "omni_matching", 1000, [], None),
    "relation": ("relationnet", "omni_relation", 500, [], None),
    # Tseng et al.'s graphs, one query of each class per graph (at 200 steps of one graph per query the GNN
    # was still at chance; docs/glyph_algorithms.md)
    "gnn": ("gnn", "omni_gnn", 400, ["--config.model.gnn_graph=class_set", "--config.train.n_query=15"],
            ["--config.train.n_way=20", "--config.train.k_shot=1", "--config.train.n_query=2"]),
    "maml": ("maml", "omni_maml", 150, ["--config.train.maml_first_order=True", "--config.train.n_query=5",
                                        "--config.train.chunk_size=50"],
             ["--config.train.n_way=20", "--config.train.k_shot=1", "--config.train.n_query=2"]),
}
BASELINES = {"baseline": 1000, "baseline_pp": 1000}
NAMES = {"proto": "ProtoNet", "matching": "MatchingNet", "relation": "RelationNet", "gnn": "GNN", "maml": "MAML"}


def runs(algorithms, baselines):
    """``[(run name, method, steps, arguments, the ALGORITHMS key or None)]``: every run of the table."""
    out = []
    for name in baselines:
        out.append((name, name, BASELINES[name], _settings(name), None))
    for x in algorithms:
        alone, omni, steps, extra, w20 = ALGORITHMS[x]
        for method in (alone, omni):
            heads = [f"--config.eval.heads={ALL_HEADS}"] if method == omni else []
            if w20 is None:
                out.append((method, method, steps, extra + heads + _settings(method), x))
            else:
                out.append((method, method, steps, extra + heads + ["--config.eval.settings=((5,1),(5,5))"], x))
                out.append((f"{method}_w20", method, steps, extra + w20 + heads + ["--config.eval.settings=((20,1),)"], x))
    return sorted(out, key=lambda r: r[0].endswith("_w20"))   # the 20-way pairs last


def _settings(method):
    # ProtoNet and Baseline keep the claims script's commands (four settings), so that their runs are reused as they are
    return [] if method in ("protonet", "baseline") else [f"--config.eval.settings={SETTINGS}"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--workdir", default="runs/glyph_claims")
    p.add_argument("--protocols", default="cross_task,cross_domain")
    p.add_argument("--algorithms", default=",".join(ALGORITHMS))
    p.add_argument("--baselines", default=",".join(BASELINES))
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: the table and figure of the runs already finished with these commands")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more omni-jax classify arguments")
    args = p.parse_args()
    wd = Path(args.workdir)
    todo = runs([a for a in args.algorithms.split(",") if a], [b for b in args.baselines.split(",") if b])
    records = []
    for protocol in args.protocols.split(","):
        for run, method, steps, extra, x in todo:
            run_dir = wd / protocol / run
            cmd = [sys.executable, "-m", "omni_jax.cli", "classify", "--dataset", f"glyphs:{protocol}",
                   "--method", method, "--backbone", "conv4", "--data-dir", args.data_dir,
                   "--workdir", str(run_dir), "--no-progress", f"--config.train.num_steps={steps}",
                   *extra, *args.extra]
            if args.report_only:
                results = finished(cmd, run_dir)
                if results is None:
                    print(f"{protocol}/{run}: not finished with this command", flush=True)
                    continue
            else:
                results = run_classify(cmd, run_dir, label=f"{protocol}/{run}")
                if results is None:
                    continue
            for r in results:
                records.append(dict(r, protocol=protocol, run=run, algorithm=NAMES.get(x), train_way=train_way(cmd),
                                    train_steps=steps))
            if not args.report_only:
                write(records, wd)      # after every run: the outputs follow a long run as it goes
    print(table(write(records, wd)))
    print(f"wrote {wd / 'algorithms.json'}, {wd / 'algorithms.md'} and {wd / 'algorithms.png'}")


def merged(records, previous) -> list:
    """``records`` with those of ``previous`` whose (protocol, run) ``records`` does not hold, in the
    table's order (protocols as first seen, then the runs in :func:`runs`' order)."""
    done = {(r["protocol"], r["run"]) for r in records}
    out = [r for r in previous if (r["protocol"], r["run"]) not in done] + list(records)
    protocols = list(dict.fromkeys(r["protocol"] for r in out))
    order = {name: i for i, (name, *_rest) in enumerate(runs(list(ALGORITHMS), list(BASELINES)))}
    return sorted(out, key=lambda r: (protocols.index(r["protocol"]), order.get(r["run"], len(order))))


def previous_records(wd: Path) -> list:
    path = wd / "algorithms.json"
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SystemExit(f"{path}: not valid JSON ({e}); move it away to start the table afresh")


def write(records, wd: Path) -> list:
    """Writes the outputs of ``records`` merged with ``algorithms.json``'s other runs; returns them all."""
    records = merged(records, previous_records(wd))
    tmp = wd / "algorithms.json.tmp"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(wd / "algorithms.json")
    (wd / "algorithms.md").write_text(table(records) + "\nEvery head of the Omni runs:\n\n" + table(records, every_head=True))
    shown = [r for r in records if r["head"] == reported_head(r) and (r["n_way"], r["k_shot"]) in SETTINGS_SHOWN]
    if shown:
        plot_omni_pairs(shown, wd / "algorithms.png")
    return records


def reported_head(r) -> str:
    """The head the table reports for a record's method: Omni∘X's ensemble; every other method's own head."""
    return OMNI_HEAD if r["method"].startswith("omni_") else r["head"]


def table(records, every_head: bool = False) -> str:
    """Markdown: one row per (protocol, method), the reported head, the training steps and ways, a column per
    setting; ``every_head``: instead one row per head of each Omni method."""
    settings = list(SETTINGS_SHOWN)
    lines = ["| split | method | head | steps | train way | " + " | ".join(f"{n}-way {k}-shot" for n, k in settings)
             + " |", "|" + "---|" * (5 + len(settings))]
    rows = {}
    for r in records:
        if (r["n_way"], r["k_shot"]) not in settings or (
                not r["method"].startswith("omni_") if every_head else r["head"] != reported_head(r)):
            continue
        row = rows.setdefault((r["protocol"], r["method"], r["head"]), {"head": r["head"], "steps": r["train_steps"],
                                                             "ways": set(), "cells": {}})
        row["cells"][(r["n_way"], r["k_shot"])] = r
        if r["method"] not in BASELINES:
            row["ways"].add(str(r["train_way"]))
    for (protocol, method, _), row in rows.items():
        vals = [f"{c['accuracy']:.2f} ± {c['ci95']:.2f}" if (c := row["cells"].get(s)) else "-" for s in settings]
        ways = "/".join(sorted(row["ways"], key=int)) or "-"
        lines.append(f"| {protocol} | {method} | {row['head']} | {row['steps']} | {ways} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
