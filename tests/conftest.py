"""``python -m pytest -q`` runs the fast everyday suite; ``--slow`` adds the tests marked ``slow``
(end-to-end runs, subprocesses, the Brax physics). CI runs both (``.ci/run``)."""
import pytest


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the tests marked slow (end-to-end runs and subprocesses); CI does")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
