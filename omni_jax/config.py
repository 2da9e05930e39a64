"""Experiment configs: ``ml_collections.ConfigDict`` files under ``experiments/``.

A config file is a Python file with ``get_config() -> ConfigDict`` (the Flax
examples' convention). Fields are overridden from the command line with
``--config.path.to.field=value``; values are parsed as Python literals and
must keep the field's type.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import ml_collections

from omni_jax.errors import OmniJaxError

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


def load_config(path: str | Path, quick: bool = False) -> ml_collections.ConfigDict:
    """Loads ``get_config()`` from a config file, or from ``experiments/NAME.py`` for a bare name.

    With ``quick=True`` it loads ``get_quick_config()`` instead, where the file has one."""
    p = Path(path)
    if not p.suffix and not p.exists():
        p = EXPERIMENTS_DIR / f"{path}.py"
    if not p.is_file():
        raise OmniJaxError(f"config file {p} does not exist (expected a .py file with get_config())")
    spec = importlib.util.spec_from_file_location(f"omni_jax_config_{p.stem}", p)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise OmniJaxError(f"config file {p} has no get_config() function")
    cfg = module.get_quick_config() if quick and hasattr(module, "get_quick_config") else module.get_config()
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise OmniJaxError(f"get_config() in {p} must return an ml_collections.ConfigDict")
    return cfg


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
    config = ml_collections.ConfigDict(config.to_dict())
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
    """Checks an Omni-Loss config group (see ``omni_jax.omni.omni_config``)."""
    from omni_jax.omni import weights_from_config
    require(isinstance(group.lam, (int, float)) and math.isfinite(group.lam) and group.lam >= 0,
            f"config field {name}.lam must be >= 0, got {group.lam!r}")
    require(0.0 <= group.ema_decay <= 1.0, f"config field {name}.ema_decay must be in [0, 1], got {group.ema_decay}")
    try:
        weights_from_config(group)
    except ValueError as e:
        raise OmniJaxError(f"config group {name}: {e}") from None


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=list)


def diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two config dicts."""
    out = []
    for k in sorted(set(old) | set(new)):
        name = f"{prefix}{k}"
        a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, name + ".")
        elif (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            out.append(f"{name} (was {a!r}, now {b!r})")
    return out


def select(config: ml_collections.ConfigDict, groups: Sequence[str]) -> dict:
    """The JSON-normalised sub-dict of the named top-level groups (what a checkpoint depends on)."""
    d = json.loads(to_json(config))
    return {g: d[g] for g in groups if g in d}
