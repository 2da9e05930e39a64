"""The ``omni-jax`` command line.

    omni-jax sinusoid [--workdir DIR] [--seed N] [--quick] [--config FILE] [--config.FIELD=VALUE ...]
    omni-jax rl --env navigation2d|halfcheetah_vel|halfcheetah_dir [...]
    omni-jax classify --dataset ... [...]
    omni-jax data glyphs --out DIR

Each subcommand lives in its own module, which provides
``add_arguments(parser)`` and ``run(args, overrides) -> int``; experiment
subcommands use :func:`add_common` for the shared flags and
:func:`load_config` for the config, then call their experiment's
``train_and_evaluate(config, workdir)``. A user error
(:class:`~omni_jax.errors.OmniJaxError`) is printed as one line, with exit
status 2 and no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from omni_jax.errors import OmniJaxError

# Packages some subcommands need beyond the core install, and how to install them.
OPTIONAL = {
    "brax": "install it with `pip install 'omni-jax[rl]'` (or `pip install brax`)",
    "PIL": "install the data extras with `pip install 'omni-jax[data]'` (or `pip install pillow`)",
    "tensorflow_datasets": "install the data extras with `pip install 'omni-jax[data]'`",
    "importlib_resources": "install the data extras with `pip install 'omni-jax[data]'`",
    "fontTools": "install it with `pip install fonttools` (the glyph builder reads fonts with it)",
}

SUBCOMMANDS = {
    "sinusoid": ("omni_jax.sinusoid.main", "sinusoid regression (paper §6.2, Figures 5, 6, 9b)"),
    "rl": ("omni_jax.rl.main", "reinforcement learning on Brax (paper §6.3, Figure 8)"),
    "classify": ("omni_jax.classification.main", "few-shot classification (paper §6.1)"),
    "data": ("omni_jax.data.main", "build datasets (the offline glyph benchmark)"),
}


def _workdir(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty work directory name; name a folder (leave --workdir out for "
                                         "the default)")
    return text


def add_common(parser: argparse.ArgumentParser, *, config: str, workdir: str, examples: str) -> None:
    """Flags shared by the experiment subcommands, with this experiment's defaults and examples."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "examples:\n" + examples
    parser.add_argument("--workdir", default=None, type=_workdir,
                        help=f"checkpoints, metrics.jsonl, results.json and plots; rerunning resumes "
                             f"(default: {workdir}; with --quick, the same name ending in _quick)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (overrides config.seed)")
    parser.add_argument("--quick", action="store_true",
                        help="a short smoke run: the config's _quick variant (omni_jax/configs/NAME_quick.py)")
    parser.add_argument("--config", default=None,
                        help=f"a packaged config name or a .py file with get_config() (default: {config}); "
                             "override any field with --config.FIELD=VALUE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate finished methods only, never train (e.g. with other eval.* settings or "
                             "another test split); each evaluation is kept in WORKDIR/evaluations/")
    parser.add_argument("--train-only", action="store_true",
                        help="train (or resume) the methods, evaluate nothing; for example one process per "
                             "method of one work directory, then one run with --eval-only for the table")
    parser.add_argument("--distributed", action="store_true",
                        help="join a multi-process run first (jax.distributed.initialize): with the three options "
                             "below, or detected from the cluster (SLURM, Open MPI, Cloud TPU) without them")
    parser.add_argument("--coordinator", metavar="HOST:PORT", default=None,
                        help="with --distributed: process 0's address, the same for every process")
    parser.add_argument("--num-processes", metavar="N", type=int, default=None,
                        help="with --distributed: how many processes the run has")
    parser.add_argument("--process-id", metavar="I", type=int, default=None,
                        help="with --distributed: this process's number, 0 .. N-1 (0 writes the results)")


def default_workdir(args, default: str) -> str:
    """``--workdir``, else ``default``; a ``--quick`` run's default gets ``_quick`` appended, so a
    smoke run never meets the full run's checkpoints in the same folder."""
    if args.workdir:
        return args.workdir
    return default + ("_quick" if args.quick and not default.endswith("_quick") else "")


def run_options(args) -> dict:
    """The keyword arguments of ``train_and_evaluate`` that the shared flags set."""
    if args.eval_only and args.train_only:
        raise OmniJaxError("--eval-only and --train-only exclude each other")
    return {"show_progress": not args.no_progress, "evaluate_only": args.eval_only, "train_only": args.train_only}


def load_config(args, overrides, default: str):
    """The run's config: ``--config`` (or ``default``), its quick variant with ``--quick``, the
    ``--config.FIELD=VALUE`` overrides, then ``--seed``."""
    from omni_jax import config as config_lib
    cfg = config_lib.apply_overrides(config_lib.load_config(args.config or default, quick=args.quick), overrides)
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def _available():
    """The subcommands whose module is installed, found without importing their packages (importing
    ``omni_jax.rl`` imports Brax to register its environments: seconds ``omni-jax sinusoid`` need not spend)."""
    root = Path(__file__).resolve().parent
    out = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        rel = Path(*module.split(".")[1:])
        if (root / rel.with_suffix(".py")).is_file() or (root / rel / "__init__.py").is_file():
            out[name] = (module, help_text)
    return out


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (the error and where the usage is), as
    every other error of the command line; ``--help`` prints the usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def build_parser(command: Optional[str] = None):
    """The parser; only the chosen subcommand's module is imported (startup stays fast)."""
    parser = Parser(prog="omni-jax", description="Omni-Training in JAX/Flax")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    module = None
    for name, (module_name, help_text) in _available().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
    return parser, module


INTERRUPTED = "omni-jax: interrupted; run the same command again to resume from the last checkpoint\n"
# what Ctrl-C means for commands that do not train (and have no checkpoints to resume from)
INTERRUPTED_BY_COMMAND = {
    "data": "omni-jax: interrupted; nothing half-written is left (a benchmark's manifest is written last, "
            "atomically); run the same command again to start it over\n",
}
_interrupted = INTERRUPTED


def exit_on_interrupt(signum, frame):
    """The command line's Ctrl-C handler (also the ``experiments/`` drivers'): say so and end the process now, as a kill would (every file the
    run writes is atomic, and the rerun resumes from the last intact checkpoint). Raising
    KeyboardInterrupt instead can be lost: while orbax saves a checkpoint through asyncio, asyncio's
    runner turns a SIGINT into the cancellation of its task, which orbax catches (the likely cause of
    a test run that ignored Ctrl-C and ended with exit 0)."""
    try:
        sys.stdout.flush()
    except Exception:   # the main thread may be inside a write to stdout
        pass
    os.write(2, _interrupted.encode())
    import multiprocessing
    for child in multiprocessing.active_children():   # e.g. the glyph builder's workers: stop them too
        child.terminate()
    os._exit(130)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv_given = argv
    if argv_given is None:
        signal.signal(signal.SIGINT, exit_on_interrupt)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    global _interrupted
    _interrupted = INTERRUPTED_BY_COMMAND.get(command, INTERRUPTED)
    parser, module = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    overrides = [u for u in unknown if u.startswith("--config.")]
    rest = [u for u in unknown if not u.startswith("--config.")]
    for i, u in enumerate(unknown[:-1]):   # --config.FIELD VALUE: the value was left for argparse
        if u.startswith("--config.") and "=" not in u and unknown[i + 1] in rest:
            parser.error(f"{u} {unknown[i + 1]}: write it as {u}={unknown[i + 1]} (a config override "
                         "takes its value after '=')")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        parser.error(f"config overrides must look like --config.FIELD=VALUE, got {' '.join(bad)}")
    try:
        explicit = [getattr(args, a, None) for a in ("coordinator", "num_processes", "process_id")]
        if any(v is not None for v in explicit) and not getattr(args, "distributed", False):
            raise OmniJaxError("--coordinator, --num-processes and --process-id need --distributed")
        if getattr(args, "distributed", False):
            from omni_jax.training.sharding import initialize_distributed
            initialize_distributed(*explicit)
        return int(module.run(args, overrides) or 0)
    except OmniJaxError as e:
        print(f"omni-jax: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in OPTIONAL:
            raise
        print(f"omni-jax: error: {command or 'this command'} needs the package {top!r}, which is not installed; "
              f"{OPTIONAL[top]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted, end="", file=sys.stderr, flush=True)
        if argv_given is None:
            # a KeyboardInterrupt not from our SIGINT handler (a library may have put Python's default back):
            # end now. Tearing the interpreter down while XLA's compile threads and orbax's writers are
            # still running can crash it (exit 139) after the message.
            sys.stdout.flush()
            os._exit(130)
        return 130


if __name__ == "__main__":
    sys.exit(main())
