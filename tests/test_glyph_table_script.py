"""scripts/classify_glyphs_algorithms.py (the Tables 2-3 analogue): X and Omni∘X get the same training, the
table reports the head it names."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def script():
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("classify_glyphs_algorithms", SCRIPTS / "classify_glyphs_algorithms.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(SCRIPTS))


def _training(args):
    """A run's training arguments: less the evaluation's."""
    return [a for a in args if not a.startswith("--config.eval.")]


def test_each_algorithm_and_its_omni_version_train_alike(script):
    runs = script.runs(list(script.ALGORITHMS), list(script.BASELINES))
    by_name = {name: (method, steps, args, x) for name, method, steps, args, x in runs}
    assert len(by_name) == len(runs)
    for x, (alone, omni, *_rest, w20) in script.ALGORITHMS.items():
        for suffix in ([""] + (["_w20"] if w20 else [])):
            a, o = by_name[alone + suffix], by_name[omni + suffix]
            assert a[1] == o[1] and _training(a[2]) == _training(o[2]), (x, suffix)
            assert any(h.startswith("--config.eval.heads=") for h in o[2])       # every head of Omni∘X
        if w20:
            assert "--config.train.n_way=20" in by_name[alone + "_w20"][2]
    names = [r[0] for r in runs]
    assert names.index("baseline") < names.index("protonet")
    first_w20 = min(i for i, n in enumerate(names) if n.endswith("_w20"))
    assert all(n.endswith("_w20") for n in names[first_w20:])                   # the 20-way pairs last


def test_table_reports_x_own_head_against_omni_ensemble(script):
    def rec(method, head, n_way, k_shot, acc, algorithm="ProtoNet"):
        return {"protocol": "cross_task", "method": method, "head": head, "n_way": n_way, "k_shot": k_shot,
                "accuracy": acc, "ci95": 0.5, "train_way": 5, "train_steps": 1000, "algorithm": algorithm}

    records = [rec("protonet", "meta", 5, 1, 90.0), rec("protonet", "meta", 5, 5, 95.0),
               rec("omni_proto", "joint", 5, 1, 91.0), rec("omni_proto", "ensemble", 5, 1, 92.0),
               rec("omni_proto", "pre", 5, 1, 89.0), rec("baseline", "pre", 20, 1, 80.0, algorithm=None)]
    lines = script.table(records).splitlines()
    assert lines[0].startswith("| split | method | head | steps | train way | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot")
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert rows["protonet"].endswith("| meta | 1000 | 5 | 90.00 ± 0.50 | 95.00 ± 0.50 | - |")
    assert rows["omni_proto"].endswith("| ensemble | 1000 | 5 | 92.00 ± 0.50 | - | - |")
    assert rows["baseline"].endswith("| pre | 1000 | - | - | - | 80.00 ± 0.50 |")


def test_every_run_is_a_valid_classify_config(script):
    """Each run's command passes `omni-jax classify`'s config check (a MAML length that was not a multiple
    of train.chunk_size once failed every MAML run at its first line)."""
    from omni_jax import config as config_lib
    from omni_jax.classification import experiment
    from omni_jax.errors import OmniJaxError
    runs = script.runs(list(script.ALGORITHMS), list(script.BASELINES))
    for name, method, steps, args, _ in runs:
        cfg = config_lib.load_config("classify_glyphs")
        overrides = [f"train.num_steps={steps}"] + [a[len("--config."):] for a in args if a.startswith("--config.")]
        cfg = config_lib.apply_overrides(cfg, overrides)
        cfg.train.methods = (method,)
        cfg.data.dataset = "glyphs:cross_task"
        experiment.check(cfg)
    cfg.train.num_steps = 150                        # the check does fail on such a length
    cfg.train.chunk_size = 100
    with pytest.raises(OmniJaxError, match="multiple of train.chunk_size"):
        experiment.check(cfg)


def test_outputs_accumulate_over_invocations(script, tmp_path):
    """A run of some protocols or algorithms keeps the other runs' records and replaces its own."""
    def rec(protocol, run, method, head, acc, n_way=5):
        return {"protocol": protocol, "run": run, "method": method, "head": head, "n_way": n_way, "k_shot": 1,
                "accuracy": acc, "ci95": 0.5, "train_way": n_way, "train_steps": 400, "algorithm": "GNN"}

    first = [rec("cross_task", "gnn", "gnn", "meta", 90.0), rec("cross_task", "omni_gnn", "omni_gnn", "ensemble", 92.0)]
    script.write(first, tmp_path)
    later = [rec("cross_domain", "gnn_w20", "gnn", "meta", 5.0, n_way=20)]
    out = script.write(later, tmp_path)
    assert [(r["protocol"], r["run"]) for r in out] == [("cross_task", "gnn"), ("cross_task", "omni_gnn"),
                                                        ("cross_domain", "gnn_w20")]
    out = script.write([rec("cross_task", "omni_gnn", "omni_gnn", "ensemble", 93.0),
                        rec("cross_domain", "gnn", "gnn", "meta", 80.0)], tmp_path)
    saved = json.loads((tmp_path / "algorithms.json").read_text())
    assert saved == out
    # replaced, not duplicated; the runs in the table's order within each protocol
    assert [(r["protocol"], r["run"], r["accuracy"]) for r in saved] == [
        ("cross_task", "gnn", 90.0), ("cross_task", "omni_gnn", 93.0),
        ("cross_domain", "gnn", 80.0), ("cross_domain", "gnn_w20", 5.0)]
    assert "93.00 ± 0.50" in (tmp_path / "algorithms.md").read_text()
    (tmp_path / "algorithms.json").write_text("{not json")
    with pytest.raises(SystemExit, match="algorithms.json: not valid JSON"):
        script.write(first, tmp_path)
