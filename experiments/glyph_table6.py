"""Table 6 on the glyph benchmark (paper §7.2): the ablation of the Omni-Loss terms (Omni∘Proto, Conv-4).

    python -m experiments.glyph_table6 --data-dir data/glyphs [--workdir runs/glyph_table6] \\
        [--protocol cross_task] [--steps 1000] [--rows 1,2,3,4,5,6] [--report-only] \\
        [--extra --config.eval.num_tasks=600 ...]

Each row of Table 6 trains Omni∘Proto with a subset of the Omni-Loss terms (pre, meta, joint,
R_pre, R_meta; the config's omni.* flags) through omni_jax.classification.train_and_evaluate in
WORKDIR/row<i>, as the glyph claims' Omni∘Proto (the same steps and episodes); flows whose loss is
off are left out at inference. Rerunning resumes a row, and a row already evaluated with the same
config is restored in seconds. Outputs: WORKDIR/table6.json (every row's records; they accumulate
over invocations, a row's own replaced) and table6.md (every setting and head; the paper reports
5-way 5-shot).
"""
from __future__ import annotations

from pathlib import Path

from experiments import _common as common

# (pre, meta, joint, R_pre, R_meta), the rows of Table 6
ROWS = [(1, 0, 0, 0, 0), (0, 1, 0, 0, 0), (0, 0, 1, 0, 0), (1, 1, 0, 0, 0), (1, 1, 1, 0, 0), (1, 1, 1, 1, 1)]
TERMS = ("pre", "meta", "joint", "R_pre", "R_meta")


def row_overrides(pre, meta, joint, r_pre, r_meta) -> list:
    """A row's ``omni.*`` overrides (joint sets both joint terms)."""
    flags = {"pre": pre, "meta": meta, "joint_pre": joint, "joint_meta": joint,
             "distill_pre": r_pre, "distill_meta": r_meta}
    return [f"omni.{k}={bool(v)}" for k, v in flags.items()]


def row_order(records: list):
    protocols = common.first_seen(records, "protocol")
    return lambda r: (protocols[r.get("protocol")], r.get("row", 0))


def table6(records) -> str:
    """Markdown: one line per row, setting and head, the row's terms ticked."""
    return common.markdown_table(
        [*TERMS, "protocol", "setting", "head", "accuracy"],
        [["✓" if v else "-" for v in ROWS[r["row"] - 1]]
         + [r["protocol"], f"{r['n_way']}-way {r['k_shot']}-shot", r["head"], common.mean_ci(r["accuracy"], r["ci95"])]
         for r in records])


def write_table6(records, wd: Path) -> list:
    """Writes ``table6.json`` (``records`` merged with its other rows) and ``table6.md``; returns every record."""
    from omni_jax import files
    records = common.write_records(wd / "table6.json", records, ("protocol", "row"), row_order)
    files.write_atomic(wd / "table6.md", table6(records))
    return records


def build_parser():
    p = common.parser("glyph_table6", __doc__)
    p.add_argument("--data-dir", default=None, help="the glyph benchmark's folder (omni-jax data glyphs --out DIR)")
    p.add_argument("--workdir", default="runs/glyph_table6", help="(default: %(default)s)")
    p.add_argument("--protocol", default="cross_task", help="cross_task, cross_domain, loo_<group>; synthetic: "
                                                            "in-memory images (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of each row (default: %(default)s)")
    p.add_argument("--rows", default=",".join(str(i + 1) for i in range(len(ROWS))), help="(default: %(default)s)")
    common.add_report_only(p, "table")
    common.add_extra(p)
    common.add_progress(p)
    return p


def main(argv=None) -> int:
    return common.main("glyph_table6", build_parser, _main, argv)


def _main(args, extra) -> int:
    from omni_jax.classification import experiment
    from omni_jax.errors import OmniJaxError
    rows = [int(r) for r in common.split_list(args.rows, "--rows", [str(i + 1) for i in range(len(ROWS))])]
    if args.steps <= 0:
        raise OmniJaxError(f"--steps must be positive, got {args.steps}")
    common.check_data_dir([args.protocol], args.data_dir)
    wd = common.workdir(args.workdir)
    plan = []
    for i in rows:   # every config checked before anything trains
        cfg = common.glyph_config(args.protocol, "omni_proto", args.data_dir,
                                  [f"train.num_steps={args.steps}", *row_overrides(*ROWS[i - 1]), *extra])
        experiment.check(cfg)
        terms = [t for t, v in zip(TERMS, ROWS[i - 1]) if v]
        plan.append(common.Run(f"row {i} ({', '.join(terms)})", wd / f"row{i}", cfg,
                               {"protocol": args.protocol, "row": i, "terms": terms,
                                "train_steps": cfg.train.num_steps}))
    return common.run_and_write(plan, experiment.train_and_evaluate, args, lambda recs: write_table6(recs, wd),
                                table6, [wd / "table6.json", wd / "table6.md"])


if __name__ == "__main__":
    raise SystemExit(main())
