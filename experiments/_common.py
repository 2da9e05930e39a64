"""What the experiment drivers share: their command line, the records they keep, their tables.

* :func:`parser` / :func:`parse`: a driver's argument parser; ``--config.FIELD=VALUE`` arguments
  are collected as config overrides (as ``omni-jax`` does), anything else unknown is an error.
* :func:`run`: runs a driver's body; a user error (:class:`~omni_jax.errors.OmniJaxError`) is one
  line on stderr and exit status 2, as on the ``omni-jax`` command line.
* :func:`config`: a packaged config, its quick variant, the overrides.
* :func:`glyph_config`: the config of one few-shot run of the glyph drivers (what
  ``omni-jax classify --dataset glyphs:<protocol> --method M --backbone conv4`` runs).
* :class:`Run` / :func:`run_plan`: the runs of a driver, one ``train_and_evaluate`` each, in
  order; with ``--report-only`` nothing runs, and :func:`finished_records` reads each run's
  evaluation with its config from the runner's own ``evaluations/<key>.json``.
* :func:`read_records` / :func:`merge_records` / :func:`write_records`: a driver's records JSON,
  which accumulates over invocations (a run's own records replaced, the others kept).
* :func:`markdown_table`, :func:`mean_ci`: the drivers' markdown tables; :func:`over_seeds`: the
  mean of a number over training seeds, its 95% CI (Student's t) and its spread (min–max).

Every file goes through :mod:`omni_jax.files` (atomic writes); the training, its resumption and
the reuse of a finished evaluation are the runner's (:mod:`omni_jax.training.runner`).
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from omni_jax import config as config_lib
from omni_jax import files
from omni_jax.errors import OmniJaxError

PROG = "python -m experiments.{}"
CONFIG_PREFIX = "--config."


# ---------------------------------------------------------------------------- command line


def parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m experiments.<name>``: the module docstring's first line as its
    description, the rest as its epilog."""
    first, _, rest = doc.strip().partition("\n")
    from omni_jax.cli import Parser
    return Parser(prog=PROG.format(name), description=first, epilog=rest.strip("\n") or None,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action="store_true",
                   help="progress bars while training (off by default: these drivers run for long, logged)")


def add_report_only(p: argparse.ArgumentParser, what: str = "tables and figures") -> None:
    p.add_argument("--report-only", action="store_true",
                   help=f"run nothing: the {what} of the runs already evaluated with these configs")


def add_extra(p: argparse.ArgumentParser) -> None:
    """``--extra --config.FIELD=VALUE ...``: the glyph drivers' recorded commands' form of the overrides."""
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="--config.FIELD=VALUE overrides of every run (also accepted before --extra)")


def overrides_of(items: Iterable[str], where: str) -> List[str]:
    """``field=value`` overrides from ``--config.field=value`` arguments; anything else is an error."""
    out = []
    for item in items:
        if not item.startswith(CONFIG_PREFIX) or "=" not in item:
            raise OmniJaxError(f"{where}: expected --config.FIELD=VALUE arguments, got {item!r}")
        out.append(item[len(CONFIG_PREFIX):])
    return out


def parse(p: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> Tuple[argparse.Namespace, List[str]]:
    """``(args, overrides)``: the known arguments and the ``--config.FIELD=VALUE`` ones (as
    ``field=value``); any other argument is argparse's usage error (exit status 2)."""
    args, unknown = p.parse_known_args(argv)
    rest = [u for u in unknown if not (u.startswith(CONFIG_PREFIX) and "=" in u)]
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)} (config fields are set with --config.FIELD=VALUE)")
    return args, overrides_of(unknown, "arguments")


def split_list(text: str, option: str, allowed: Optional[Sequence[str]] = None, empty_ok: bool = False) -> List[str]:
    """The items of a comma-separated option; an unknown or repeated item (or none at all) is an
    error naming the option."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items and not empty_ok:
        raise OmniJaxError(f"{option} names nothing")
    bad = [t for t in items if allowed is not None and t not in allowed]
    if bad:
        raise OmniJaxError(f"{option}: unknown {', '.join(map(repr, bad))}; expected some of {', '.join(allowed)}")
    if len(set(items)) != len(items):
        raise OmniJaxError(f"{option} names an item twice: {text}")
    return items


def main(name: str, build_parser: Callable[[], argparse.ArgumentParser],
         body: Callable[[argparse.Namespace, List[str]], Optional[int]], argv: Optional[Sequence[str]]) -> int:
    """A driver's ``main``: parses ``argv`` and runs ``body(args, overrides)`` under :func:`run`;
    ``overrides`` are the ``--config.FIELD=VALUE`` arguments, then those after ``--extra``."""
    args, overrides = parse(build_parser(), argv)
    return run(name, lambda: body(args, overrides + overrides_of(getattr(args, "extra", []), "--extra")), argv)


def run(name: str, body: Callable[[], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Runs a driver's ``body``; an :class:`OmniJaxError` is one line on stderr and exit status 2.
    Run as a program (``argv is None``), Ctrl-C ends it as ``omni-jax``'s does (every file is
    written atomically and a rerun resumes from the last checkpoint)."""
    if argv is None:
        from omni_jax import cli
        signal.signal(signal.SIGINT, cli.exit_on_interrupt)
    try:
        return int(body() or 0)
    except OmniJaxError as e:
        print(f"{PROG.format(name)}: error: {e}", file=sys.stderr)
        return 2


def workdir(path) -> Path:
    """A driver's work directory, checked before any work as the runner checks its own: a place a run
    can use (:func:`omni_jax.files.check_place`), and new, empty or omni-jax's (an older driver
    folder is adopted). Creates nothing: :func:`run_and_write` makes and marks it."""
    from omni_jax.training.runner import written_by_omni_jax
    wd = Path(path)
    files.check_place(wd)
    files.claim_directory(wd, adopt=written_by_omni_jax)
    return wd


def say(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------- configs


def config(name: str, quick: bool = False, overrides: Sequence[str] = ()):
    """A packaged config (or a config file), its ``_quick`` variant with ``quick``, then ``overrides``."""
    return config_lib.apply_overrides(config_lib.load_config(name, quick=quick), overrides)


NAMED_DATASETS = ("synthetic",)   # datasets named as they are, not as a glyph protocol


def dataset_of(protocol: str) -> str:
    """The dataset of a glyph driver's protocol: ``glyphs:<protocol>`` for the glyph benchmark's
    protocols (``cross_task``, ``cross_domain``, ``loo_<group>``); ``synthetic`` (in-memory images,
    no files: tests and smoke runs) and anything with a ``:`` are taken as dataset names."""
    return protocol if ":" in protocol or protocol in NAMED_DATASETS else f"glyphs:{protocol}"


def glyph_config(protocol: str, method: str, data_dir: Optional[str], overrides: Sequence[str] = ()):
    """The config of one Conv-4 run of ``method`` on a protocol: what
    ``omni-jax classify --dataset glyphs:<protocol> --method <method> --backbone conv4 --data-dir DIR
    --config.<override> ...`` runs, so a run directory made by that command is resumed or reused."""
    from omni_jax.classification.main import config_for
    dataset = dataset_of(protocol)
    cfg = config(config_for(dataset), overrides=overrides)
    cfg.data.dataset = dataset
    cfg.train.methods = (method,)
    cfg.model.backbone = "conv4"
    if data_dir is not None:
        cfg.data.dir = data_dir
    return cfg


def check_data_dir(protocols: Sequence[str], data_dir: Optional[str]) -> None:
    """The glyph protocols read ``--data-dir``; only datasets made in memory do without it."""
    needs = [p for p in protocols if dataset_of(p) not in NAMED_DATASETS]
    if needs and not data_dir:
        raise OmniJaxError(f"--data-dir is required for {', '.join(needs)} (the folder `omni-jax data glyphs "
                           "--out DIR` wrote)")


def finished_records(run_dir: Path, cfg) -> Optional[list]:
    """The records of the runner's evaluation of ``cfg`` in ``run_dir``, or ``None``
    (:func:`omni_jax.training.runner.evaluated_records`)."""
    from omni_jax.training import runner
    return runner.evaluated_records(cfg, run_dir)


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a driver: its name in the log, its work directory, its config, and the fields
    added to each of its records."""

    label: str
    workdir: Path
    cfg: Any
    fields: dict


def run_plan(plan: Sequence[Run], train_and_evaluate, *, report_only: bool = False, progress: bool = False,
             write: Optional[Callable[[list], object]] = None, reuse_evaluations: bool = False) -> list:
    """Runs every run of ``plan`` with ``train_and_evaluate(cfg, workdir, show_progress=...)`` (the
    runner resumes it, or restores its finished evaluation of the same config) and returns their
    records with the run's fields; ``write(records)`` after each run, so that the outputs follow a
    long invocation as it goes. A run that fails (an :class:`OmniJaxError`) is said in one line and
    the others go on; then the error names them all. ``report_only``: nothing runs, the records
    are those of the runs already evaluated with their configs (:func:`finished_records`).
    ``reuse_evaluations``: a run whose evaluation of this very config is kept in its
    ``evaluations/`` is not run again, its records are read from there (the runner itself restores
    only its latest evaluation, and a driver that evaluates one run several ways, as
    ``glyph_analysis`` does, would evaluate it again each time)."""
    records, failed = [], []
    for run in plan:
        results = finished_records(run.workdir, run.cfg) if reuse_evaluations and not report_only else None
        if results is not None:
            say(f"{run.label}: restored its evaluation of this config ({run.workdir})")
        elif report_only:
            results = finished_records(run.workdir, run.cfg)
            if results is None:
                say(f"{run.label}: not evaluated with this config in {run.workdir}")
                continue
        else:
            say(f"=== {run.label} ({run.workdir})")
            try:
                results = train_and_evaluate(run.cfg, run.workdir, show_progress=progress)
            except OmniJaxError as e:
                say(f"{run.label}: failed: {e}")
                failed.append(run.label)
                continue
        records += [dict(r, **run.fields) for r in results]
        if write is not None and not report_only:
            write(records)
    if failed:
        raise OmniJaxError(f"{len(failed)} run(s) failed: {', '.join(failed)} (see above); the outputs hold the "
                           "others' records")
    return records


def run_and_write(plan: Sequence[Run], train_and_evaluate, args, write: Callable[[list], list],
                  table: Callable[[list], str], outputs: Sequence[Path]) -> int:
    """A multi-run driver's end: :func:`run_plan` (``args.report_only``, ``args.progress``),
    ``write(records)`` (which merges them into the driver's records and returns them all), then
    the table of them all and the files written. The folder of ``outputs`` (the driver's work
    directory, :func:`workdir`) is created and marked as omni-jax's first."""
    wd = files.ensure_dir(Path(outputs[0]).parent, "work directory")
    files.mark_directory(wd)
    records = run_plan(plan, train_and_evaluate, report_only=args.report_only, progress=args.progress, write=write)
    say(table(write(records)))
    say(f"wrote {', '.join(str(p) for p in outputs)}")
    return 0


# ---------------------------------------------------------------------------- records


def read_records(path: Path) -> list:
    """The records of a driver's JSON (``[]`` if there is none yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return files.read_json(path, expect=list, hint="move it away to start the table afresh")


def first_seen(records: Iterable[dict], field: str) -> dict:
    """``{value: rank}`` of a field's values in the order they first appear."""
    return {v: i for i, v in enumerate(dict.fromkeys(r.get(field) for r in records))}


def merge_records(new: Sequence[dict], previous: Sequence[dict], key: Sequence[str],
                  order: Callable[[list], Callable[[dict], object]]) -> list:
    """``new`` with the records of ``previous`` whose ``key`` (a tuple of fields) no record of
    ``new`` has: a run's own records are replaced, the others kept. Sorted (stably) by
    ``order(all records)``, a function making the sort key of one record."""
    done = {tuple(r.get(k) for k in key) for r in new}
    out = [r for r in previous if tuple(r.get(k) for k in key) not in done] + list(new)
    return sorted(out, key=order(out))


def write_records(path: Path, new: Sequence[dict], key: Sequence[str],
                  order: Callable[[list], Callable[[dict], object]]) -> list:
    """Merges ``new`` into the records of ``path`` (:func:`merge_records`), writes them atomically
    and returns them all."""
    records = merge_records(new, read_records(path), key, order)
    files.write_json(path, records)
    return records


# ---------------------------------------------------------------------------- tables


def mean_ci(mean: float, ci: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


# two-sided 95% quantiles of Student's t for 1..10 degrees of freedom (beyond: 1.96 + 2.5/df, within 0.002)
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def over_seeds(values: Sequence[float]) -> dict:
    """A number over training seeds: ``{"mean", "ci95", "min", "max", "n"}``, the 95% CI of the
    mean by Student's t with n-1 degrees of freedom (``None`` for one seed: undefined, never 0)."""
    import math
    v = [float(x) for x in values]
    if not v:
        raise ValueError("over_seeds: no values")
    n, mean = len(v), sum(v) / len(v)
    if n == 1:
        ci = None
    else:
        sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
        df = n - 1
        ci = (T95[df - 1] if df <= len(T95) else 1.96 + 2.5 / df) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": ci, "min": min(v), "max": max(v), "n": n}


def seed_mean(s: dict, digits: int = 2) -> str:
    """The mean over seeds of :func:`over_seeds` with its 95% CI and n; with one seed the CI is
    said to be undefined, not printed as ± 0."""
    if s["ci95"] is None:
        return f"{s['mean']:.{digits}f} (n=1: no CI over seeds)"
    return f"{mean_ci(s['mean'], s['ci95'], digits)} (n={s['n']})"


def spread(s: dict, digits: int = 2) -> str:
    """The seed spread of :func:`over_seeds`, ``min–max``."""
    return f"{s['min']:.{digits}f}–{s['max']:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table (with a trailing newline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
