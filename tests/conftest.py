"""``python -m pytest -q`` runs the fast everyday suite; ``--slow`` adds the tests marked ``slow``
(end-to-end runs, subprocesses, the Brax physics). CI runs both (``.ci/run``).

The everyday suite compiles without LLVM's expensive passes
(``--xla_llvm_disable_expensive_passes=true`` added to ``XLA_FLAGS`` unless they already name it):
its tests are tiny, compiling is most of their time, and this takes about a sixth off it. The
computation is the same and every check holds at its tolerance. ``--slow`` (CI) compiles with
XLA's defaults, as users do. (``--xla_backend_optimization_level=0`` would save more, but with
jax 0.9.2 it gave NaN in a jitted Conv-4 gradient that is finite eagerly and at the default
level: a compiler problem, not a test's.)"""
import os

import pytest

FAST_COMPILE = "--xla_llvm_disable_expensive_passes=true"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the tests marked slow (end-to-end runs and subprocesses) and compile "
                          "with XLA's default optimisation; CI does")


def pytest_configure(config):
    # before any test module imports jax (collection comes after this hook)
    flags = os.environ.get("XLA_FLAGS", "")
    if not config.getoption("--slow") and "xla_llvm_disable_expensive_passes" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def registries(monkeypatch):
    """Registrations made by a test are undone after it (a config file such as
    experiments/bring_your_own/config.py registers its algorithm when loaded, and README or CLI tests
    load it), so no other test sees them, whatever the order the tests run in."""
    from omni_jax.classification import evaluate as ev
    from omni_jax.classification import experiment as ex
    from omni_jax.classification import methods as methods_lib
    from omni_jax.classification import model as model_lib
    monkeypatch.setattr(methods_lib, "META_ALGORITHMS", dict(methods_lib.META_ALGORITHMS))
    monkeypatch.setattr(methods_lib, "PRETRAIN_ALGORITHMS", dict(methods_lib.PRETRAIN_ALGORITHMS))
    monkeypatch.setattr(model_lib, "BACKBONES", dict(model_lib.BACKBONES))
    monkeypatch.setattr(ev, "META_ALGORITHMS", methods_lib.META_ALGORITHMS)
    monkeypatch.setattr(ev, "PRETRAIN_ALGORITHMS", methods_lib.PRETRAIN_ALGORITHMS)
    monkeypatch.setattr(ex, "META_ALGORITHMS", methods_lib.META_ALGORITHMS)
    monkeypatch.setattr(ex, "BACKBONES", model_lib.BACKBONES)
    monkeypatch.setattr(model_lib, "PRETRAIN_ALGORITHMS", methods_lib.PRETRAIN_ALGORITHMS)
