"""One experiment pipeline: train every method, evaluate, write the results, report.

Sinusoid regression, RL and few-shot classification share everything but
what makes them different. Each is an :class:`Experiment`: its config check,
its methods, setting one method up as a :class:`Program` (initial state,
training chunk, data, validation hook), its :class:`Evaluator` and its
report. :func:`train_and_evaluate` owns the rest, the same for all three:

1. check the config, build the device mesh;
2. check every method's checkpoint against this config before training any
   (an incompatible work directory is an error and nothing is overwritten);
3. if every method is finished and the work directory already holds the
   evaluation of this very config, print its results and stop (seconds);
4. otherwise set every method up, compile the training chunks still to run
   and the evaluation in worker threads (XLA releases the GIL) while the
   main thread trains each method as soon as its program is ready, with
   checkpoints, ``metrics.jsonl``, the hook and a progress bar;
5. evaluate, write ``results.json`` atomically (the latest evaluation), a
   copy beside the earlier ones in ``evaluations/<key>.json`` (the records
   and the config they are for; each evaluation setting keeps its own), the
   plots, then ``evaluation.json`` (the config that was evaluated and the
   files written);
6. print the table and the timings.

Work directory: ``<method>/checkpoints/``, ``<method>/metrics.jsonl`` (and the same
metrics as TensorBoard event files beside it: ``tensorboard --logdir`` on the work directory, or
on a folder of them, shows every method side by side),
``results.json``, ``evaluation.json`` and the experiment's figures. Only
process 0 of a multi-process run writes files other than checkpoints.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, TypeVar

import jax

from omni_jax import config as config_lib
from omni_jax import files
from omni_jax.errors import OmniJaxError
from omni_jax.training import results as run_results
from omni_jax.training.checkpoint import CheckpointStore
from omni_jax.training.loop import Chunk, Hook, TrainState, train_loop
from omni_jax.training.metrics import MetricsWriter
from omni_jax.training.selection import selected
from omni_jax.training.sharding import task_mesh

RESULTS = "results.json"
EVALUATION = "evaluation.json"
EVALUATIONS = "evaluations"   # every evaluation's records, side by side: evaluations/<key>.json


Context = TypeVar("Context")   # what an experiment's methods share (datasets on the device, an environment)
Model = TypeVar("Model")       # what its evaluation applies to a trained state (a network, a policy)


@dataclasses.dataclass
class Program(Generic[Model]):
    """One method, set up to train.

    Attributes:
      state: the initial :class:`TrainState`, placed on the mesh.
      chunk: its training steps, ``chunk(state, data) -> (state, metrics)``.
      num_steps: the training length (``train.num_steps``); ``ckpt_every`` the checkpoint period.
      data: what every chunk call gets (a training set on the device, or ``None``).
      hook: validation and model selection during training
        (:func:`omni_jax.training.selection.validation_hook`).
      model: the network (or policy) the evaluation applies to the trained state.
    """

    state: TrainState
    chunk: Chunk
    num_steps: int
    ckpt_every: int
    data: Any = None
    hook: Optional[Hook] = None
    model: Optional[Model] = None


@dataclasses.dataclass
class Trained(Generic[Model]):
    """A method after training: its program and its final state (:func:`selection.selected
    <omni_jax.training.selection.selected>` gives what it is tested with)."""

    program: Program[Model]
    state: TrainState


class Evaluator:
    """Evaluates trained methods; owns its jitted functions.

    ``compile()`` compiles them ahead of time where that is possible before
    training ends (it runs in a worker thread while the methods train);
    ``__call__(trained)`` returns the ``results.json`` records.
    """

    def compile(self) -> None:
        pass

    def __call__(self, trained: Mapping[str, Trained]) -> List[dict]:
        raise NotImplementedError


class Experiment(Generic[Context, Model]):
    """What one experiment provides to :func:`train_and_evaluate`. Subclasses override.

    Every experiment's config shares the vocabulary the runner reads: ``train.methods``,
    ``train.num_steps`` (the training length), ``train.val_every`` and ``train.val_tasks``
    (validation and model selection), ``eval.seed`` (the test tasks) and ``seed``.
    ``check``, ``fingerprint`` and ``setup`` are often plain functions of the
    experiment's training module, set as ``check = staticmethod(train.check)``.
    """

    name: str = "experiment"
    score_name: str = "score"   # what a selecting run's validation score is (for the log line)

    def check(self, cfg, mesh) -> None:
        """Raises ``OmniJaxError`` naming the config field that is wrong."""

    def fingerprint(self, cfg, method: str) -> dict:
        """What a method's checkpoint depends on (never the evaluation settings)."""
        raise NotImplementedError

    def prepare(self, cfg, mesh) -> Context:
        """What every method of a run shares (datasets on the device, the environment)."""
        return None

    def describe(self, cfg, context: Context, mesh) -> str:
        """One line on what is about to run."""
        return f"omni-jax {self.name}: {mesh.devices.size} {jax.devices()[0].platform} device(s)"

    def setup(self, cfg, method: str, context: Context, mesh) -> Program[Model]:
        raise NotImplementedError

    def evaluator(self, cfg, programs: Mapping[str, Program[Model]], context: Context, mesh) -> Evaluator:
        raise NotImplementedError

    def table(self, cfg, records: List[dict]) -> str:
        """The results as text (a title line, then a table at most 100 columns wide)."""
        raise NotImplementedError

    def plots(self, cfg, records: List[dict], trained: Mapping[str, Trained[Model]], context: Context,
              workdir: Path) -> List[Path]:
        """Writes the experiment's figures; returns their paths."""
        return []


def _after_training(experiment: Experiment, method: str, state: TrainState, log: Callable[[str], None]) -> None:
    """One line on a finished method's selection, and one on its skipped updates, if it had any."""
    chosen = selected(state)
    if chosen.score is not None:
        log(f"{method}: selected step {chosen.step} (validation {experiment.score_name} {chosen.score:.4g})")
    skipped = run_results.skipped_count(state)
    if skipped:
        log(f"{method}: {skipped} non-finite update(s) skipped (see {method}/metrics.jsonl)")


def _log_warnings(experiment: Experiment, records: List[dict], log: Callable[[str], None]) -> None:
    for w in dict.fromkeys(r["warning"] for r in records if isinstance(r, dict) and r.get("warning")):
        log(f"omni-jax {experiment.name}: warning: {w}")


def _print(msg: str) -> None:
    print(msg, flush=True)


def evaluation_stamp(cfg, methods: Sequence[str]) -> dict:
    """What an evaluation depends on: the whole config and the methods evaluated."""
    return {"config": json.loads(config_lib.to_json(cfg)), "methods": list(methods)}


def evaluation_key(stamp: dict) -> str:
    """A short name for an evaluation: the first 12 hex digits of its stamp's SHA-256."""
    return hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:12]


def evaluated_records(cfg, workdir) -> Optional[List[dict]]:
    """The records of the evaluation of ``cfg`` (all of ``train.methods``) in ``workdir``, from
    ``evaluations/<key>.json``, which keeps every evaluation setting's records beside the others;
    ``None`` when this config was not evaluated there. Reads only; trains and evaluates nothing
    (a damaged file is an :class:`OmniJaxError` naming it)."""
    stamp = evaluation_stamp(cfg, tuple(cfg.train.methods))
    path = Path(workdir) / EVALUATIONS / f"{evaluation_key(stamp)}.json"
    if not path.is_file():
        return None
    saved = files.read_json(path, expect=dict)
    if saved.get("stamp") != json.loads(json.dumps(stamp)) or not isinstance(saved.get("records"), list):
        return None
    return saved["records"]


def _reusable_results(workdir: Path, stamp: dict) -> Optional[List[dict]]:
    """The records of ``results.json`` when ``evaluation.json`` says they are this config's and
    every file it lists is there with the bytes it was written with; ``None`` otherwise (a
    missing or damaged file means: evaluate again, from the checkpoints)."""
    try:
        written = files.read_json(workdir / EVALUATION, expect=dict)
        records = files.read_json(workdir / RESULTS, expect=list)
    except OmniJaxError:
        return None
    if written.get("stamp") != json.loads(json.dumps(stamp)):
        return None
    if run_results.has_null(records):   # a non-finite number written as null: evaluate again (the table shows it)
        return None
    digests = written.get("digests")
    listed = written.get("files")
    if not isinstance(listed, list) or not isinstance(digests, dict) or not all(isinstance(f, str) for f in listed):
        return None
    for f in set(listed) | set(digests):
        try:
            if not isinstance(f, str) or not (workdir / f).is_file() or files.digest(workdir / f) != digests.get(f):
                return None
        except OmniJaxError:
            return None
    return records


def _previous_methods(workdir: Path) -> List[str]:
    """The methods of the work directory's last evaluation (``[]`` if there is none or it is damaged)."""
    try:
        methods = files.read_json(workdir / EVALUATION, expect=dict).get("stamp", {}).get("methods", [])
    except (OmniJaxError, AttributeError):
        return []
    return [m for m in methods if isinstance(m, str)] if isinstance(methods, list) else []


def _keep_other_methods(experiment: "Experiment", cfg, workdir: Path, mesh, log) -> Any:
    """A rerun with fewer methods than the work directory's last evaluation keeps the others: those
    still finished under this config are restored and evaluated again with this run's, so
    ``results.json`` and the figures keep them. Returns the config with their names added to
    ``train.methods`` (``cfg`` itself when there is nothing to keep)."""
    methods = tuple(cfg.train.methods)
    others = [m for m in _previous_methods(workdir) if m not in methods]
    if not others:
        return cfg
    total = cfg.train.num_steps
    kept, dropped = [], []
    for m in others:
        try:
            step = CheckpointStore.peek(workdir / m / "checkpoints", experiment.fingerprint(cfg, m))
        except OmniJaxError:
            step = None
        (kept if step is not None and step >= total else dropped).append(m)
    if not kept:
        return cfg
    wider = copy.deepcopy(cfg)
    previous = _previous_methods(workdir)
    wider.train.methods = tuple([m for m in previous if m in kept or m in methods]
                                + [m for m in methods if m not in previous])
    try:
        experiment.check(wider, mesh)
    except OmniJaxError as e:
        log(f"omni-jax {experiment.name}: the earlier results of {', '.join(kept)} in {workdir} are not kept "
            f"({e})")
        return cfg
    log(f"omni-jax {experiment.name}: keeping the finished {', '.join(kept)} of the earlier evaluation in "
        f"{workdir} (evaluated again with this config)"
        + (f"; not kept (unfinished or from another config): {', '.join(dropped)}" if dropped else ""))
    return wider


def model_fingerprint(fingerprint: dict, state: TrainState) -> dict:
    """``fingerprint`` (a method's config, :meth:`Experiment.fingerprint`) and the model itself: the
    path, shape and dtype of every parameter and BatchNorm statistic of ``state``, so that a
    network changed in code (a user's own backbone, say) under an unchanged config does not
    resume from, or print the results of, the checkpoints of the old one."""
    leaves = jax.tree_util.tree_flatten_with_path({"params": state.params, "batch_stats": state.batch_stats})[0]
    name = lambda k: str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
    parameters = {"/".join(name(k) for k in path): f"{getattr(x, 'dtype', type(x).__name__)}{list(getattr(x, 'shape', ()))}"
                  for path, x in leaves}
    return dict(fingerprint, parameters=parameters)


def _check_checkpoints(workdir: Path, methods: Sequence[str], prints: Mapping[str, dict],
                       done: Mapping[str, int], verify: bool) -> Optional[str]:
    """Checks every started method's checkpoints against its model (:func:`model_fingerprint`: an
    :class:`OmniJaxError` for another model) and, with ``verify``, its last step's files against
    their record: why the first damaged one is not the one that was saved, or ``None``."""
    damage = None
    for method in (m for m in methods if done[m]):
        store = CheckpointStore(workdir / method / "checkpoints", prints[method])
        try:
            problem = store.verify(done[method]) if verify and damage is None else None
        finally:
            store.close()
        if problem is not None:
            damage = f"the finished checkpoint of {method} is damaged ({problem})"
    return damage


def written_by_omni_jax(workdir: Path) -> bool:
    """Whether ``workdir`` (a folder without omni-jax's marker file) is a work directory written
    before the marker existed: it holds an ``evaluation.json`` or a method folder with checkpoints
    or metrics, or folders of runs that have the marker (an ``experiments/`` driver's folder)."""
    if (workdir / EVALUATION).is_file():
        return True
    with contextlib.suppress(OSError):
        for d in workdir.iterdir():
            if d.is_dir() and ((d / "checkpoints" / "config.json").is_file() or (d / "metrics.jsonl").is_file()
                               or files.owned(d)):
                return True
    return False


def _check_layout(workdir: Path, methods: Sequence[str]) -> None:
    """Before any work: the work directory can be written, and nothing of the wrong kind (a
    directory where a file goes, or the reverse) stands where the run will write."""
    files.check_writable(workdir, "work directory", create=False)
    for name in (RESULTS, EVALUATION):
        files.check_file_slot(workdir / name)
    for d in [workdir / EVALUATIONS] + [workdir / m for m in methods] + [workdir / m / "checkpoints" for m in methods]:
        if (d.exists() or d.is_symlink()) and not d.is_dir():
            raise OmniJaxError(f"{d} is a file, not a directory; move it aside and run again")
    for m in methods:
        files.check_file_slot(workdir / m / "metrics.jsonl")


def train_program(program: Program, directory: Path, fingerprint: dict, *, desc: str = "train",
                  show_progress: bool = True, stop_after: Optional[int] = None,
                  progress_fn: Optional[Callable[[int, Mapping], None]] = None) -> TrainState:
    """Trains (or resumes) one program with its checkpoints and metrics in ``directory``."""
    directory = Path(directory)
    store = CheckpointStore(directory / "checkpoints", fingerprint)
    metrics = None
    try:
        metrics = MetricsWriter(directory / "metrics.jsonl") if jax.process_index() == 0 else None
        return train_loop(program.state, program.chunk, total_steps=program.num_steps,
                          chunk_size=program.chunk.chunk_size, data=program.data, store=store, metrics=metrics,
                          ckpt_every=program.ckpt_every, desc=desc, hook=program.hook,
                          progress_fn=progress_fn, show_progress=show_progress, stop_after=stop_after)
    finally:
        store.close()
        if metrics is not None:
            metrics.close()   # the TensorBoard event file


def trained_models(experiment: Experiment, cfg, workdir, methods: Optional[Sequence[str]] = None) -> Dict[str, Trained]:
    """The finished methods of ``workdir`` (a work directory of :func:`train_and_evaluate` with
    ``cfg``), restored without training or evaluating anything, for evaluating them in other ways
    (other tasks, other test-time rules). Raises OmniJaxError naming the directory when a method has
    not finished training or its last checkpoint step is damaged; looking creates nothing."""
    workdir = Path(workdir)
    mesh = task_mesh()
    experiment.check(cfg, mesh)
    methods = tuple(methods or cfg.train.methods)
    total = cfg.train.num_steps
    for method in methods:   # every one before building anything
        directory = workdir / method / "checkpoints"
        step = CheckpointStore.peek(directory, experiment.fingerprint(cfg, method))
        if step is None or step < total:
            raise OmniJaxError(f"{directory}: {method} has trained {step or 0} of {total} steps; finish it with "
                               f"omni-jax {experiment.name} first")
    context = experiment.prepare(cfg, mesh)
    out = {}
    for method in methods:
        program = experiment.setup(cfg, method, context, mesh)
        directory = workdir / method / "checkpoints"
        store = CheckpointStore(directory, model_fingerprint(experiment.fingerprint(cfg, method), program.state))
        try:
            restored, state = store.restore_latest(program.state)
        finally:
            store.close()
        if restored != total:
            raise OmniJaxError(f"{directory}: the last step of {method} is damaged (restored step {restored}); "
                               f"run omni-jax {experiment.name} again to train its last steps")
        out[method] = Trained(program, state)
    return out


def train_and_evaluate(experiment: Experiment, cfg, workdir, *, show_progress: bool = True,
                       log: Callable[[str], None] = _print, stop_after: Optional[int] = None,
                       progress_fn: Optional[Callable[[str, int, Mapping], None]] = None,
                       compile_workers: Optional[int] = None, evaluate_only: bool = False,
                       train_only: bool = False) -> Optional[List[dict]]:
    """Trains every method of ``cfg`` (resuming), evaluates them and writes the results.

    Args:
      experiment: the :class:`Experiment`.
      cfg: its config (already checked or not: it is checked here).
      workdir: the work directory; running again resumes.
      log: where the one-line messages, the table and the timings go.
      stop_after: stop every method's training at this step and return ``None``
        (as an interruption would; for tests).
      progress_fn: ``progress_fn(method, step, metrics)`` after each chunk.
      compile_workers: threads compiling ahead of time (default ``min(4, cpus)``; 0: none).
      evaluate_only: never train: every method must be finished (an ``OmniJaxError`` names the
        first that is not); for testing trained models under other evaluation settings.
      train_only: train (or resume) every method and return ``None`` without evaluating or
        writing results (for example one process per method of one work directory, then one
        ``evaluate_only`` run for all of them).

    One run at a time: the work directory's lock (:func:`omni_jax.files.run_lock`, dies with its
    process) is held for the whole run, shared by ``train_only`` runs, each of which holds the
    folders of the methods it trains; a second run stops at once naming the holder's process.

    Returns:
      The ``results.json`` records.
    """
    if evaluate_only and train_only:
        raise OmniJaxError("evaluate_only and train_only exclude each other")
    workdir = Path(workdir)
    mesh = task_mesh()
    experiment.check(cfg, mesh)
    primary = jax.process_index() == 0
    if primary:   # before any work: a place that can hold a run, and a folder that is new, empty or omni-jax's
        files.check_place(workdir)
        files.claim_directory(workdir, writes=[RESULTS, EVALUATION, EVALUATIONS, *cfg.train.methods],
                              adopt=written_by_omni_jax)
    # one run per work directory (process 0 holds it for all processes of a --distributed run);
    # --train-only runs share it, each holding the folders of the methods it trains
    with files.run_lock(workdir, shared=train_only) if primary else contextlib.nullcontext():
        if primary:
            files.mark_directory(workdir)
        return _train_and_evaluate(experiment, cfg, workdir, mesh, show_progress=show_progress, log=log,
                                   stop_after=stop_after, progress_fn=progress_fn, compile_workers=compile_workers,
                                   evaluate_only=evaluate_only, train_only=train_only)


def _train_and_evaluate(experiment: Experiment, cfg, workdir: Path, mesh, *, show_progress, log, stop_after,
                        progress_fn, compile_workers, evaluate_only, train_only) -> Optional[List[dict]]:
    if not train_only:   # training alone leaves the results of the others as they are
        cfg = _keep_other_methods(experiment, cfg, workdir, mesh, log)   # only finished ones: --eval-only too
    methods = tuple(cfg.train.methods)
    total = cfg.train.num_steps
    done = {}
    for method in methods:  # every checkpoint against this config before training any (creating nothing)
        done[method] = CheckpointStore.peek(workdir / method / "checkpoints", experiment.fingerprint(cfg, method)) or 0

    if evaluate_only:
        for method in methods:
            if done[method] < total:
                raise OmniJaxError(f"--eval-only: {method} in {workdir / method} is at step {done[method]} of "
                                   f"{total}; train it first (run without --eval-only)")
            store = CheckpointStore(workdir / method / "checkpoints", experiment.fingerprint(cfg, method))
            try:
                problem = store.verify(done[method])
            finally:
                store.close()
            if problem is not None:
                raise OmniJaxError(f"--eval-only: the finished checkpoint of {method} is damaged ({problem}); run "
                                   "without --eval-only to train its last steps again from an earlier checkpoint")
    if jax.process_index() == 0:
        _check_layout(workdir, methods)   # before any work, not after it
    context = experiment.prepare(cfg, mesh)
    programs = {m: experiment.setup(cfg, m, context, mesh) for m in methods}
    prints = {m: model_fingerprint(experiment.fingerprint(cfg, m), programs[m].state) for m in methods}
    stamp = evaluation_stamp(cfg, methods)
    finished = stop_after is None and not train_only and all(done[m] >= total for m in methods)
    records = _reusable_results(workdir, stamp) if finished else None
    # the model itself, not only its config: a changed network never resumes; a reprint's files intact
    damage = _check_checkpoints(workdir, methods, prints, done, verify=records is not None)
    if records is not None:
        if damage is not None:
            log(f"omni-jax {experiment.name}: {damage}; restoring an earlier checkpoint and training again from it")
        else:
            log(f"omni-jax {experiment.name}: restored finished {', '.join(methods)} ({total} steps) and their "
                f"evaluation with this config from {workdir / RESULTS}")
            log(experiment.table(cfg, records))
            _log_warnings(experiment, records, log)
            for method in methods:
                _, damaged = MetricsWriter(workdir / method / "metrics.jsonl", tensorboard=False).read_lines()
                if damaged:
                    log(f"omni-jax {experiment.name}: warning: {workdir / method / 'metrics.jsonl'} has "
                        f"{len(damaged)} damaged line(s) (line {', '.join(map(str, damaged[:3]))}"
                        f"{' ...' if len(damaged) > 3 else ''}); the results above come from the checkpoints, "
                        "which are intact")
            return records

    log(f"{experiment.describe(cfg, context, mesh)}; workdir {workdir}")
    evaluator = None if train_only else experiment.evaluator(cfg, programs, context, mesh)
    workers = min(4, os.cpu_count() or 1) if compile_workers is None else compile_workers
    trained, timings, diverged = {}, {}, {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="compile")
    completed = False
    try:
        ahead = workers > 0
        compiled = {m: pool.submit(p.chunk.compile, p.state, p.data)
                    for m, p in programs.items() if ahead and done[m] < p.num_steps}
        eval_compiled = (pool.submit(evaluator.compile) if ahead and stop_after is None and not train_only
                         else None)
        for method, program in programs.items():
            t0 = time.perf_counter()
            if method in compiled:
                compiled[method].result()
            if done[method] >= program.num_steps:
                log(f"{method}: restored the finished checkpoint (step {done[method]})")
            report = (lambda step, m, method=method: progress_fn(method, step, m)) if progress_fn else None
            with (files.run_lock(workdir / method, what=f"the folder of {method}") if jax.process_index() == 0
                  else contextlib.nullcontext()):
                state = train_program(program, workdir / method, prints[method],
                                      desc=method, show_progress=show_progress, stop_after=stop_after,
                                      progress_fn=report)
            if int(state.step) < program.num_steps:
                return None  # stopped early (stop_after)
            run_results.check_updates(method, state, program.num_steps)  # learned nothing: no numbers
            if jax.process_index() == 0:
                why = run_results.divergence(workdir / method / "metrics.jsonl")
                if why is not None:
                    diverged[method] = f"{method}: {why}; its numbers are not to be trusted"
                    log(f"omni-jax {experiment.name}: warning: {diverged[method]}")
            trained[method] = Trained(program, state)
            timings[method] = time.perf_counter() - t0
            _after_training(experiment, method, state, log)
        if train_only:
            completed = True
            log("time this run: " + ", ".join(f"{m} {s:.0f}s" for m, s in timings.items())
                + f"; trained {', '.join(methods)} in {workdir} (not evaluated: --train-only)")
            return None
        t0 = time.perf_counter()
        if eval_compiled is not None:
            eval_compiled.result()
        records = evaluator(trained)
        for r in records:   # a diverged method's records say so (RL's omni_pre etc. are omni's)
            m = str(r.get("method", ""))
            why = diverged.get(m) or next((w for d, w in diverged.items() if m.startswith(d + "_")), None)
            if why is not None:
                r["warning"] = why
        completed = True
    finally:
        # after an error or Ctrl-C, never wait for compilations still running (minutes for RL)
        pool.shutdown(wait=completed, cancel_futures=not completed)
    timings["evaluation"] = time.perf_counter() - t0

    written = []
    if jax.process_index() == 0:
        # the figures first: if one cannot be written, the earlier results.json is left as it was
        written = [Path(f) for f in experiment.plots(cfg, records, trained, context, workdir)]
        safe = run_results.json_safe(records)   # valid JSON: a non-finite number is written as null
        if run_results.count_nonfinite(records):
            log(f"omni-jax {experiment.name}: warning: {run_results.count_nonfinite(records)} non-finite value(s) "
                f"in the results, written as null to {workdir / RESULTS}")
        files.write_json(workdir / RESULTS, safe, allow_nan=False)
        files.write_json(workdir / EVALUATIONS / f"{evaluation_key(stamp)}.json", {"stamp": stamp, "records": safe},
                         allow_nan=False)
        names = [RESULTS] + [str(f.relative_to(workdir)) if f.is_relative_to(workdir) else str(f) for f in written]
        record = f"{EVALUATIONS}/{evaluation_key(stamp)}.json"
        files.write_json(workdir / EVALUATION, {"stamp": stamp, "files": names,
                                                "digests": {n: files.digest(workdir / n) for n in names + [record]}})
    log("")
    log(experiment.table(cfg, records))   # (a diverged method was warned about when it finished training)
    log("")
    log("time this run: " + ", ".join(f"{m} {s:.0f}s" for m, s in timings.items()))
    log(f"wrote {', '.join(str(p) for p in [workdir / RESULTS] + written)}")
    return records
