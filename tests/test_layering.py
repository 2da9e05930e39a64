"""Imports flow one way (issue 25): no import cycles and no upward arrows in omni_jax.

The graph and the layer order are ``omni_jax.devtools``'s (``scripts/import_map.py`` prints
them); the last tests run the checker on small made-up packages to show that it fails, and how.
"""
import pytest

from omni_jax import devtools


@pytest.fixture(scope="module")
def report():
    return devtools.check()


def test_no_import_cycles(report):
    assert report.arrows and report.modules
    assert not report.cycles, "import cycles:\n" + "\n".join(c.describe() for c in report.cycles)


def test_no_upward_arrows(report):
    assert not report.upward, ("imports against the layering (omni_jax.devtools.LEVELS):\n"
                               + "\n".join(f"{a.where()}: {why}" for a, why in report.upward))


def test_every_room_has_a_level(report):
    assert not report.unplaced, f"rooms with no level in omni_jax.devtools.LEVELS: {report.unplaced}"


def _package(tmp_path, sources):
    root = tmp_path / "omni_jax"
    for name, text in {"__init__.py": "", **sources}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_an_upward_import_is_named_with_its_line(tmp_path):
    root = _package(tmp_path, {
        "errors.py": "",
        "nn/layers.py": "from omni_jax.errors import OmniJaxError\n\n\ndef f():\n"
                        "    from omni_jax.algorithms import maml   # lazy: an arrow all the same\n",
        "algorithms/maml.py": "from omni_jax.nn.layers import f\n",
        "data/dataset.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from omni_jax import files\n",
        "files.py": "",
    })
    report = devtools.check(root)
    assert [(a.where(), why) for a, why in report.upward] == [
        ("omni_jax/nn/layers.py:5: omni_jax.nn.layers imports omni_jax.algorithms.maml", "nn -> algorithms: upward")]
    assert [c.describe() for c in report.cycles] == [
        "modules: omni_jax.algorithms.maml -> omni_jax.nn.layers -> omni_jax.algorithms.maml "
        "(omni_jax/algorithms/maml.py:1: omni_jax.algorithms.maml imports omni_jax.nn.layers; "
        "omni_jax/nn/layers.py:5: omni_jax.nn.layers imports omni_jax.algorithms.maml)",
        "rooms: algorithms -> nn -> algorithms "
        "(omni_jax/algorithms/maml.py:1: omni_jax.algorithms.maml imports omni_jax.nn.layers; "
        "omni_jax/nn/layers.py:5: omni_jax.nn.layers imports omni_jax.algorithms.maml)"]
    assert ("omni_jax.data.dataset", "omni_jax.files", 3) in {(a.source, a.target, a.line) for a in report.arrows}


def test_pure_rooms_siblings_subcommands_and_unplaced_rooms(tmp_path):
    root = _package(tmp_path, {
        "files.py": "",
        "omni.py": "import omni_jax.files\n",                           # pure: knows nothing of files
        "rl/train.py": "from ..sinusoid import train\n",                # experiments are siblings
        "sinusoid/train.py": "",
        "data/main.py": "from omni_jax.glyphs import build\nfrom omni_jax import cli\n",   # a subcommand
        "glyphs/build.py": "from omni_jax.data import main\n",          # nothing imports a subcommand
        "cli.py": "",
        "extras/thing.py": "",
    })
    report = devtools.check(root)
    assert [(a.where(), why) for a, why in report.upward] == [
        ("omni_jax/glyphs/build.py:1: omni_jax.glyphs.build imports omni_jax.data.main", "glyphs -> cli: upward"),
        ("omni_jax/omni.py:1: omni_jax.omni imports omni_jax.files",
         "omni -> files: omni is pure and knows nothing of files"),
        ("omni_jax/rl/train.py:1: omni_jax.rl.train imports omni_jax.sinusoid.train",
         "rl -> sinusoid: sideways (the two are siblings on one level)")]
    assert report.unplaced == ["extras"]
