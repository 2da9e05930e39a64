"""Experiment configs: ``ml_collections.ConfigDict`` files, the Flax examples' convention.

A config file is a Python file with ``get_config() -> ConfigDict``. The
project's configs are modules of the package ``omni_jax.configs`` (they
install with it); a variant is a file that derives from another by calling
its ``get_config()`` and changing fields (``rl_halfcheetah_dir`` from
``rl_halfcheetah_vel``, ``sinusoid_quick`` from ``sinusoid``). A user's own
config file does the same: ``from omni_jax.configs import sinusoid``.

Fields are overridden from the command line with ``--config.path.to.field=value``;
values are parsed as Python literals and must keep the field's type.

Every experiment has the same ``omni`` group (:func:`omni_group`): the
Omni-Loss terms, λ and the EMA teacher's β; and the same names for the same
meaning (:data:`RENAMED` lists the names they replaced): ``seed`` (training),
``train.methods``, ``train.num_steps`` (the training length),
``train.chunk_size``, ``train.ckpt_every``, ``train.val_every`` and
``train.val_tasks`` (validation and model selection), ``eval.seed`` (the test
tasks) and ``eval.num_tasks``.
"""
from __future__ import annotations

import ast
import copy
import importlib
import importlib.resources
import importlib.util
import json
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import ml_collections
import numpy as np

from omni_jax.errors import OmniJaxError
from omni_jax.omni import METHOD_WEIGHTS, TERMS, OmniLossWeights

CONFIG_PACKAGE = "omni_jax.configs"
QUICK_SUFFIX = "_quick"

# Fields renamed when the experiments took one vocabulary: old dotted name -> new. An override or a
# config file that uses an old name is an error naming the new one; a checkpoint fingerprinted
# under an old name still resumes (:func:`fingerprint`'s ``renamed``).
RENAMED = {"train.num_iterations": "train.num_steps", "train.eval_every": "train.val_every",
           "eval.num_val_tasks": "train.val_tasks"}


def _renamed_hint(field: str) -> str:
    return f"; it was renamed to {RENAMED[field]}" if field in RENAMED else ""


def packaged_configs() -> list[str]:
    """The names of the configs that ship with the package (``omni_jax/configs/NAME.py``)."""
    files = importlib.resources.files(CONFIG_PACKAGE)
    return sorted(f.name[:-3] for f in files.iterdir() if f.name.endswith(".py") and not f.name.startswith("_"))


def _module_from_file(p: Path):
    if p.suffix != ".py":
        raise OmniJaxError(f"config file {p} is not a Python file (expected a .py file with get_config())")
    spec = importlib.util.spec_from_file_location(f"omni_jax_user_config_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise OmniJaxError(f"config file {p} cannot be loaded as Python (expected a .py file with get_config())")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except OmniJaxError:
        raise
    except Exception as e:  # the user's own Python: say which file, not a traceback
        raise OmniJaxError(f"config file {p} failed to run: {type(e).__name__}: {e}") from None
    return module


def _resolve(name_or_path: str | Path, quick: bool):
    """``(module, where)`` of a packaged config name or a config file path (its quick variant if asked)."""
    text = str(name_or_path)
    is_path = text.endswith(".py") or "/" in text or "\\" in text
    if not is_path:
        name = text + (QUICK_SUFFIX if quick and not text.endswith(QUICK_SUFFIX) else "")
        if name not in packaged_configs():
            raise OmniJaxError(f"no config named {name!r} (expected a .py file or one of "
                               f"{', '.join(packaged_configs())})")
        return importlib.import_module(f"{CONFIG_PACKAGE}.{name}"), f"{CONFIG_PACKAGE}.{name}"
    p = Path(text)
    if quick and not p.stem.endswith(QUICK_SUFFIX):
        q = p.with_name(p.stem + QUICK_SUFFIX + ".py")
        if not q.is_file():
            raise OmniJaxError(f"--quick with --config {p} reads {q}, which does not exist "
                               "(write it deriving from the config, or drop --quick)")
        p = q
    if p.is_dir():
        raise OmniJaxError(f"config file {p} is a directory (expected a .py file with get_config())")
    if not p.is_file():
        raise OmniJaxError(f"config file {p} does not exist (expected a .py file with get_config())")
    return _module_from_file(p), str(p)


def load_config(name_or_path: str | Path, quick: bool = False) -> ml_collections.ConfigDict:
    """``get_config()`` of a packaged config (``"sinusoid"``) or of a config file (a path).

    With ``quick=True`` it loads the quick variant: ``NAME_quick`` for a packaged
    config, ``STEM_quick.py`` beside a config file. A file is run exactly once.
    """
    module, where = _resolve(name_or_path, quick)
    if not callable(getattr(module, "get_config", None)):
        raise OmniJaxError(f"config file {where} has no get_config() function")
    try:
        cfg = module.get_config()
    except OmniJaxError:
        raise
    except Exception as e:  # the user's own Python: say which file, not a traceback
        raise OmniJaxError(f"get_config() in {where} failed: {type(e).__name__}: {e}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise OmniJaxError(f"get_config() in {where} must return an ml_collections.ConfigDict, "
                           f"got {type(cfg).__name__}")
    return cfg


def omni_group(lam: float = 3.0, ema_decay: float = 0.99) -> ml_collections.ConfigDict:
    """The ``omni`` group of every experiment's config: which Omni-Loss terms are on (Table 6),
    λ (Eqs. 11, 14) and the EMA teacher's β (Eq. 9); the paper's defaults λ = 3.0, β = 0.99."""
    o = ml_collections.ConfigDict()
    for term in TERMS:
        o[term] = True
    o.lam = lam
    o.ema_decay = ema_decay
    return o


def loss_weights(omni: ml_collections.ConfigDict, method: str = "omni") -> OmniLossWeights:
    """The Omni-Loss terms of a method: the ``omni`` group for ``"omni"``, and
    :data:`omni_jax.omni.METHOD_WEIGHTS` for the comparison methods (with the group's λ)."""
    if method != "omni":
        return METHOD_WEIGHTS[method]
    try:
        return OmniLossWeights(**{t: bool(omni[t]) for t in TERMS}, lam=float(omni.lam))
    except ValueError as e:
        raise OmniJaxError(f"config group omni: {e}") from None


def _parse_value(field: str, text: str, current):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare string
    if isinstance(current, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise OmniJaxError(f"config field {field} expects true/false, got {text!r}")
        return value
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise OmniJaxError(f"config field {field} expects an integer, got {text!r}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OmniJaxError(f"config field {field} expects a number, got {text!r}")
        return float(value)
    if isinstance(current, (tuple, list)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise OmniJaxError(f"config field {field} expects a list such as (1, 2), got {text!r}")
        return type(current)(value)
    if isinstance(current, str):
        return str(value) if not isinstance(value, str) else value
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> ml_collections.ConfigDict:
    """Applies ``field.path=value`` overrides; an unknown field is an error."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise OmniJaxError(f"config override {item!r} must look like field.path=value")
        field, text = item.split("=", 1)
        field = field.removeprefix("--config.").removeprefix("config.").strip()
        node, parts = config, field.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
                where = ".".join(parts[:i]) or "the config"
                if field in RENAMED:
                    raise OmniJaxError(f"config field {field} was renamed to {RENAMED[field]}; use "
                                       f"--config.{RENAMED[field]}={text}")
                raise OmniJaxError(f"unknown config field {field!r} (no {part!r} in {where}; known: {', '.join(known)})")
            if i < len(parts) - 1:
                node = node[part]
        current = node[parts[-1]]
        if isinstance(current, ml_collections.ConfigDict):
            raise OmniJaxError(f"config field {field} is a group; set one of its fields instead")
        node[parts[-1]] = _parse_value(field, text, current)
    return config


def require(condition: bool, message: str) -> None:
    """Raises an :class:`OmniJaxError` with ``message`` when ``condition`` is false."""
    if not condition:
        raise OmniJaxError(message)


# Sensible magnitudes, checked for every field of every experiment (:func:`check_fields`): a float
# beyond this overflows float32 once squared in a loss (every update would be skipped), an integer
# beyond int32 does not fit the arrays it sizes or indexes, and a seed outside [0, 2**32) maps to
# the same PRNG key as another seed.
MAX_ABS_FLOAT = 1e6
MAX_INT = 2 ** 31 - 1
SEED_RANGE = (0, 2 ** 32)


def _kind(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (tuple, list)):
        return "list"
    if value is None:
        return "None"
    return type(value).__name__


_EXPECTED = {"bool": "True or False", "int": "an integer", "float": "a number", "str": "a string",
             "list": "a list such as (1, 2)", "None": "None"}


def _check_scalar(field: str, value, kinds: set, shown) -> None:
    """``value`` (shown as ``shown``) has one of the reference ``kinds``, is finite and of a sensible size."""
    kind = _kind(value)
    ok = kind in kinds or (kind == "int" and "float" in kinds)   # an integer is a number
    if not ok:
        expected = " or ".join(sorted(_EXPECTED.get(k, k) for k in kinds)) or "a number or a string"
        raise OmniJaxError(f"config field {field} must be {expected}, got {shown!r} ({type(value).__name__})")
    if kind == "float":
        require(math.isfinite(float(value)), f"config field {field} must be a finite number, got {shown!r}")
        require(abs(value) <= MAX_ABS_FLOAT,
                f"config field {field}={shown!r} is out of range; expected a magnitude of at most {MAX_ABS_FLOAT:g}")
    if kind == "int":
        require(abs(value) <= MAX_INT,
                f"config field {field}={shown!r} is out of range; expected a magnitude of at most {MAX_INT}")


def _check_value(field: str, value, refs: list) -> None:
    """``value`` against the reference values ``refs``; the elements of a list (of lists) one by one."""
    kinds = {_kind(r) for r in refs}
    if "list" in kinds:
        require(isinstance(value, (tuple, list)), f"config field {field} must be a list such as (1, 2), got {value!r}")
        elements = [e for r in refs if isinstance(r, (tuple, list)) for e in r] or [0, 0.0, ""]
        for i, element in enumerate(value):
            _check_value(f"{field}[{i}]", element, elements)
    else:
        _check_scalar(field, value, kinds, value)


def _flatten(cfg, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, ml_collections.ConfigDict):
            out[prefix + k] = "group"
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def check_fields(cfg, experiment: str, references: Sequence[ml_collections.ConfigDict],
                 required: Optional[ml_collections.ConfigDict] = None, nullable: Sequence[str] = ()) -> None:
    """Checks every field of ``cfg`` against the experiment's packaged configs, before any work.

    Args:
      cfg: the config to check.
      experiment: the experiment's name, for the messages (``sinusoid``, ``rl``, ``classify``).
      references: the experiment's packaged configs; a field is known if one of them has it,
        and must have the same type as there (an integer passes for a number; each element of a
        list is checked against the elements of the reference's list).
      required: the fields every config of the experiment must have (default: the first reference).
      nullable: the fields that may also be ``None`` (for example "all at once").

    Every number must be finite, at most :data:`MAX_ABS_FLOAT` (floats) or :data:`MAX_INT`
    (integers) in magnitude, and ``seed`` in [0, 2**32). A config of another experiment, an
    unknown field and a missing one are errors naming the field.
    """
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise OmniJaxError(f"the {experiment} config must be an ml_collections.ConfigDict, got {type(cfg).__name__}")
    required = references[0] if required is None else required
    known: dict = {}
    for r in references:
        for field, value in _flatten(r).items():
            known.setdefault(field, []).append(value)
    flat = _flatten(cfg)
    need = _flatten(required)
    for field, value in flat.items():   # a value where a group goes, or the reverse
        refs = known.get(field, [])
        if refs and ("group" in refs) != (value == "group"):
            raise OmniJaxError(f"config field {field} must be "
                               + ("a group of fields" if "group" in refs else "a single value, not a group")
                               + (f", got {value!r}" if value != "group" else ""))
    missing = [f for f, v in need.items() if f not in flat and (v != "group" or f.rpartition(".")[0] in flat)]
    unknown = [f for f in flat if f not in known and (f.rpartition(".")[0] in known or "." not in f)]
    old_names = [f for f in unknown if f in RENAMED]
    if old_names:
        raise OmniJaxError(f"config field {old_names[0]} was renamed to {RENAMED[old_names[0]]}; rename it in "
                           "the config (old work directories still resume)")
    if missing or unknown:
        other = _guess_other_experiment(flat, experiment)
        if other:
            raise OmniJaxError(f"this is not a config for `omni-jax {experiment}`: its fields are those of a "
                               f"config for `omni-jax {other}` (missing here: {', '.join(missing[:3]) or 'none'}; "
                               f"unknown here: {', '.join(unknown[:3]) or 'none'})")
        if missing:
            raise OmniJaxError(f"config field {missing[0]} is missing (a {experiment} config needs it"
                               + (f"; also missing: {', '.join(missing[1:4])}" if len(missing) > 1 else "") + ")")
        raise OmniJaxError(f"unknown config field {unknown[0]} for {experiment}{_renamed_hint(unknown[0])}"
                           + (f" (also unknown: {', '.join(unknown[1:4])})" if len(unknown) > 1 else ""))
    for field, value in flat.items():
        refs = known[field]
        if value == "group" or (value is None and field in nullable):
            continue
        if field == "seed":
            require(_kind(value) == "int", f"config field seed must be an integer, got {value!r}")
        else:
            _check_value(field, value, refs)
    if "seed" in flat:
        lo, hi = SEED_RANGE
        require(lo <= cfg.seed < hi, f"config field seed={cfg.seed} is out of range; expected {lo} <= seed < 2**32")


# The packaged configs of each experiment, to name the experiment a wrong config is for.
EXPERIMENT_CONFIGS = {"sinusoid": ("sinusoid",), "rl": ("rl_navigation2d", "rl_halfcheetah_vel"),
                      "classify": ("classify", "classify_synthetic")}


def experiment_references(experiment: str) -> list:
    """The packaged configs of ``experiment`` (see :data:`EXPERIMENT_CONFIGS`), freshly built."""
    return [importlib.import_module(f"{CONFIG_PACKAGE}.{n}").get_config() for n in EXPERIMENT_CONFIGS[experiment]]


def _guess_other_experiment(fields, experiment: str) -> Optional[str]:
    """The other experiment whose packaged configs have every one of ``fields``, if there is one."""
    for name in EXPERIMENT_CONFIGS:
        if name == experiment:
            continue
        known = set()
        for ref in experiment_references(name):
            known |= set(_flatten(ref))
        if set(fields) <= known:
            return name
    return None


def check_positive(config: ml_collections.ConfigDict, *fields: str, allow_zero: bool = False) -> None:
    """Checks that each dotted field is a finite number > 0 (or >= 0)."""
    for field in fields:
        value = config
        for part in field.split("."):
            value = value[part]
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            ok = isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
            require(ok, f"config field {field} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_test_tasks(config: ml_collections.ConfigDict) -> None:
    """``eval.num_tasks`` of every experiment: at least two, since every number is reported with a
    95% confidence interval over the test tasks, undefined for one."""
    n = config.eval.num_tasks
    require(isinstance(n, int) and n >= 2, f"config field eval.num_tasks must be at least 2 (every result has a "
                                           f"95% confidence interval over the test tasks), got {n!r}")


def check_choices(values, allowed, field: str) -> None:
    """Checks that a non-empty list field holds only allowed names."""
    bad = [v for v in values if v not in allowed]
    require(not bad and len(values) > 0,
            f"config field {field} has unknown value(s) {bad}; expected some of {tuple(allowed)}")


def check_multiples(group: ml_collections.ConfigDict, name: str, fields: Sequence[str], of: str) -> None:
    """Checks that each ``group.field`` is a multiple of ``group.<of>`` (e.g. periods of the chunk size)."""
    for f in fields:
        require(group[f] % group[of] == 0,
                f"config field {name}.{f}={group[f]} must be a multiple of {name}.{of}={group[of]}")


def check_omni_group(group: ml_collections.ConfigDict, name: str = "omni") -> None:
    """Checks the ``omni`` group (see :func:`omni_group`)."""
    for t in TERMS:
        require(isinstance(group[t], bool), f"config field {name}.{t} must be True or False, got {group[t]!r}")
    require(isinstance(group.lam, (int, float)) and math.isfinite(group.lam) and group.lam >= 0,
            f"config field {name}.lam must be >= 0, got {group.lam!r}")
    require(0.0 <= group.ema_decay <= 1.0, f"config field {name}.ema_decay must be in [0, 1], got {group.ema_decay}")
    loss_weights(group)


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=list)


def _short(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        name = f"{prefix}{k}"
        a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, name + ".")
        elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            out.append(f"{name} (was {_short(a)}, now {_short(b)})")
    return out


# The layout of a training state and of its random streams; a checkpoint written under another
# one (before the shared update step and the named PRNG streams: none) cannot be resumed.
CHECKPOINT_FORMAT = 2


def fingerprint(config: ml_collections.ConfigDict, method: str, groups: Sequence[str],
                drop: Sequence[str] = (), added: Optional[dict] = None,
                renamed: Optional[dict] = None, omni: Optional[bool] = None) -> dict:
    """What a method's checkpoint depends on: the named top-level groups less the dotted fields
    in ``drop`` (what only the evaluation or the bookkeeping reads), the seed, the method, for
    Omni-Training's methods the ``omni`` group (the Omni-Loss terms, λ and β they train with;
    ``omni``: whether the method is one, from its loss weights; default: the method is named
    ``omni``), and :data:`CHECKPOINT_FORMAT`.

    ``added`` maps dotted fields that were added after work directories existed to the value that
    gives the behaviour from before them: at that value a field is left out, so that those work
    directories still resume; at any other value it is part of the fingerprint. ``renamed`` maps
    dotted fields to the name they had in work directories written before (see :data:`RENAMED`):
    the fingerprint keeps the old name, so those work directories resume."""
    d = select(config, groups)
    for new, old in (renamed or {}).items():
        (group, name), (old_group, old_name) = new.split("."), old.split(".")
        if group in d and name in d[group]:
            d.setdefault(old_group, {})[old_name] = d[group].pop(name)
    for field, old in (added or {}).items():
        group, name = field.split(".")
        if group in d and d[group].get(name, old) == old:
            d[group].pop(name, None)
    for field in drop:
        group, name = field.split(".")
        d[group].pop(name, None)
    d.update(seed=config.seed, method=method, checkpoint_format=CHECKPOINT_FORMAT)
    if (method == "omni" if omni is None else omni):
        d["omni"] = select(config, ["omni"])["omni"]
    return d


def select(config: ml_collections.ConfigDict, groups: Sequence[str]) -> dict:
    """The JSON-normalised sub-dict of the named top-level groups (what a checkpoint depends on)."""
    d = json.loads(to_json(config))
    return {g: d[g] for g in groups if g in d}
