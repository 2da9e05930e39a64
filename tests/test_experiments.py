"""experiments/: the drivers of the paper's tables and figures (sinusoid, rl, glyph_tables, glyph_table6).

The fast tests check what each driver builds (its runs, configs, tables, merged records, one-line
errors) without training; the slow ones run each driver on tiny settings twice: the second
invocation restores the runner's finished evaluation instead of training again."""
import json
import re

import pytest

from experiments import _common as common
from experiments import glyph_table6, glyph_tables, rl, sinusoid
from omni_jax import config as config_lib
from omni_jax.classification import experiment as classify
from omni_jax.errors import OmniJaxError

# tiny few-shot runs on in-memory images (--protocols synthetic): a few seconds of training each
TINY_CLASSIFY = ["--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
                 "--config.train.val_every=4", "--config.train.val_tasks=2", "--config.train.batch_size=8",
                 "--config.train.n_query=2", "--config.eval.n_query=2", "--config.eval.num_tasks=4",
                 "--config.eval.finetune_epochs=1", "--config.model.width=8", "--config.model.depth=2",
                 "--config.data.synthetic.per_class=8", "--config.eval.settings=((5,1),)"]
TINY_SINUSOID = ["--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
                 "--config.train.val_every=4", "--config.train.val_tasks=2", "--config.eval.num_tasks=4",
                 "--config.eval.max_steps=2", "--config.eval.k_shots=(5,10)", "--config.data.num_train_tasks=50",
                 "--config.train.meta_batch=2", "--config.train.pre_batch=10"]
TINY_RL = ["--config.train.num_steps=4", "--config.train.chunk_size=2", "--config.train.ckpt_every=2",
           "--config.train.meta_batch=2", "--config.train.num_traj=2", "--config.eval.num_tasks=4",
           "--config.eval.task_chunk=2", "--config.eval.max_steps=1", "--config.eval.num_traj=2",
           "--config.env.horizon=10", "--config.eval.omni_heads=('joint',)"]


def run(capsys, driver, *argv):
    code = driver.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def md_rows(text):
    """The cells of a markdown table's body rows."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not line.startswith("|---")][1:]


# ---------------------------------------------------------------------------- glyph tables: no training


def _training(overrides):
    """A run's training overrides: less the evaluation's."""
    return [o for o in overrides if not o.startswith("eval.")]


def test_each_algorithm_and_its_omni_version_train_alike():
    runs = glyph_tables.algorithm_runs(list(glyph_tables.ALGORITHMS), list(glyph_tables.BASELINES))
    by_name = {r.name: r for r in runs}
    assert len(by_name) == len(runs)
    for x, (alone, omni, *_rest, w20) in glyph_tables.ALGORITHMS.items():
        for suffix in ([""] + (["_w20"] if w20 else [])):
            a, o = by_name[alone + suffix], by_name[omni + suffix]
            assert a.algorithm == o.algorithm == x and _training(a.overrides) == _training(o.overrides), (x, suffix)
            assert any(h.startswith("eval.heads=") for h in o.overrides)          # every head of Omni∘X
        if w20:
            assert "train.n_way=20" in by_name[alone + "_w20"].overrides
    names = [r.name for r in runs]
    assert names.index("baseline") < names.index("protonet")
    first_w20 = min(i for i, n in enumerate(names) if n.endswith("_w20"))
    assert all(n.endswith("_w20") for n in names[first_w20:])                   # the 20-way pairs last


def test_protonet_and_baseline_runs_are_shared_by_both_tables():
    """The algorithms table's ProtoNet and Baseline runs have the claims table's configs (so the
    runner reuses one for the other); Omni∘Proto's does not (every head)."""
    claims = {r.name: r for r in glyph_tables.claims_runs(glyph_tables.CLAIMS_METHODS, 1000)}
    algos = {r.name: r for r in glyph_tables.algorithm_runs(["proto"], ["baseline"])}
    for name in ("protonet", "baseline", "omni_proto"):
        a, c = (common.glyph_config("cross_task", r.method, "data/glyphs", r.overrides)
                for r in (algos[name], claims[name]))
        assert (config_lib.to_json(a) == config_lib.to_json(c)) == (name != "omni_proto"), name


def test_every_run_and_row_is_a_valid_classify_config():
    """Each run passes classify's config check (a MAML length that was not a multiple of
    train.chunk_size once failed every MAML run at its first line), and so does each Table 6 row."""
    runs = glyph_tables.algorithm_runs(list(glyph_tables.ALGORITHMS), list(glyph_tables.BASELINES))
    runs += glyph_tables.claims_runs(glyph_tables.CLAIMS_METHODS + ("joint", "ensemble"), 1000, train_way=20)
    for run in runs:
        cfg = common.glyph_config("cross_task", run.method, "data/glyphs", run.overrides)
        classify.check(cfg)
        assert cfg.data.dataset == "glyphs:cross_task" and cfg.train.methods == (run.method,)
    claims = {r.name: r for r in glyph_tables.claims_runs(("protonet", "baseline"), 1000, train_way=20)}
    assert "train.n_way=20" in claims["protonet"].overrides
    assert not any("n_way" in o for o in claims["baseline"].overrides)
    for row in glyph_table6.ROWS:
        cfg = common.glyph_config("cross_domain", "omni_proto", "d", glyph_table6.row_overrides(*row))
        classify.check(cfg)
        flags = [cfg.omni.pre, cfg.omni.meta, cfg.omni.joint_pre, cfg.omni.joint_meta, cfg.omni.distill_meta]
        assert flags == [bool(row[i]) for i in (0, 1, 2, 2, 4)]
    cfg.train.num_steps = 150                        # the check does fail on such a length
    cfg.train.chunk_size = 100
    with pytest.raises(OmniJaxError, match="multiple of train.chunk_size"):
        classify.check(cfg)


def test_protocols_name_glyph_splits_or_datasets():
    assert common.dataset_of("cross_task") == "glyphs:cross_task"
    assert common.dataset_of("loo_latin") == "glyphs:loo_latin"
    assert common.dataset_of("synthetic") == "synthetic"
    cfg = common.glyph_config("synthetic", "protonet", None)
    assert cfg.data.dataset == "synthetic" and cfg.data.dir == "" and "synthetic" in cfg.data
    with pytest.raises(OmniJaxError, match="--data-dir is required for cross_domain"):
        common.check_data_dir(["synthetic", "cross_domain"], None)


def _rec(protocol, run, method, head, acc, n_way=5, k_shot=1, algorithm="GNN"):
    return {"protocol": protocol, "run": run, "method": method, "head": head, "n_way": n_way, "k_shot": k_shot,
            "accuracy": acc, "ci95": 0.5, "train_way": n_way, "train_steps": 400, "algorithm": algorithm}


def test_algorithms_table_reports_x_own_head_against_omni_ensemble():
    records = [_rec("cross_task", "protonet", "protonet", "meta", 90.0), _rec("cross_task", "protonet", "protonet",
                                                                           "meta", 95.0, k_shot=5),
               _rec("cross_task", "omni_proto", "omni_proto", "joint", 91.0),
               _rec("cross_task", "omni_proto", "omni_proto", "ensemble", 92.0),
               _rec("cross_task", "omni_proto", "omni_proto", "pre", 89.0),
               _rec("cross_task", "baseline", "baseline", "pre", 80.0, n_way=20, algorithm=None)]
    lines = glyph_tables.algorithms_table(records).splitlines()
    assert lines[0] == "| split | method | head | steps | train way | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot |"
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert rows["protonet"].endswith("| meta | 400 | 5 | 90.00 ± 0.50 | 95.00 ± 0.50 | - |")
    assert rows["omni_proto"].endswith("| ensemble | 400 | 5 | 92.00 ± 0.50 | - | - |")
    assert rows["baseline"].endswith("| pre | 400 | - | - | - | 80.00 ± 0.50 |")
    every = md_rows(glyph_tables.algorithms_table(records, every_head=True))
    assert [(r[1], r[2]) for r in every] == [("omni_proto", "joint"), ("omni_proto", "ensemble"), ("omni_proto", "pre")]


def test_outputs_accumulate_over_invocations(tmp_path):
    """An invocation of some protocols or algorithms keeps the other runs' records and replaces its own."""
    first = [_rec("cross_task", "gnn", "gnn", "meta", 90.0),
             _rec("cross_task", "omni_gnn", "omni_gnn", "ensemble", 92.0)]
    glyph_tables.write_algorithms(first, tmp_path)
    later = [_rec("cross_domain", "gnn_w20", "gnn", "meta", 5.0, n_way=20)]
    out = glyph_tables.write_algorithms(later, tmp_path)
    assert [(r["protocol"], r["run"]) for r in out] == [("cross_task", "gnn"), ("cross_task", "omni_gnn"),
                                                        ("cross_domain", "gnn_w20")]
    out = glyph_tables.write_algorithms([_rec("cross_task", "omni_gnn", "omni_gnn", "ensemble", 93.0),
                                         _rec("cross_domain", "gnn", "gnn", "meta", 80.0)], tmp_path)
    saved = json.loads((tmp_path / "algorithms.json").read_text())
    assert saved == out
    # replaced, not duplicated; the runs in the table's order within each protocol
    assert [(r["protocol"], r["run"], r["accuracy"]) for r in saved] == [
        ("cross_task", "gnn", 90.0), ("cross_task", "omni_gnn", 93.0),
        ("cross_domain", "gnn", 80.0), ("cross_domain", "gnn_w20", 5.0)]
    assert "93.00 ± 0.50" in (tmp_path / "algorithms.md").read_text()
    assert (tmp_path / "algorithms.png").stat().st_size > 0
    (tmp_path / "algorithms.json").write_text("{not json")
    with pytest.raises(OmniJaxError, match="algorithms.json: it is not valid JSON"):
        glyph_tables.write_algorithms(first, tmp_path)


# ---------------------------------------------------------------------------- rl and sinusoid: no training


def test_rl_configs_per_environment_and_size():
    assert [rl.config_name(e) for e in rl.ENVS] == ["rl_navigation2d", "rl_halfcheetah_vel_cpu",
                                                    "rl_halfcheetah_dir_cpu"]
    assert [rl.config_name(e, paper_size=True) for e in rl.ENVS] == [f"rl_{e}" for e in rl.ENVS]
    for env in rl.ENVS:
        for paper_size in (False, True):
            for quick in (False, True):
                cfg = common.config(rl.config_name(env, paper_size), quick, ["train.num_steps=10"])
                assert cfg.env.name == env and cfg.train.num_steps == 10
    cpu, paper = common.config("rl_halfcheetah_vel_cpu"), common.config("rl_halfcheetah_vel")
    assert cpu.train.meta_batch < paper.train.meta_batch


def _rl_rec(env, method, steps, ret, **kw):
    return {"env": env, "method": method, "steps": steps, "return": ret, "ci95": 1.0, "median": ret - 0.5,
            "num_tasks": 4, **kw}


def test_figure8_has_a_panel_and_a_table_per_environment_and_keeps_the_others(tmp_path):
    vel = [_rl_rec("halfcheetah_vel", m, s, -100.0 + 10 * s + i) for i, m in enumerate(("baseline", "maml", "random"))
           for s in (0, 1)]
    nav = [_rl_rec("navigation2d", m, s, -20.0 + s, **({"head": "joint"} if m == "omni" else {}))
           for m in ("baseline", "omni") for s in (0, 1)]
    rl.write_figure8(vel, tmp_path)
    out = rl.write_figure8(nav, tmp_path)
    assert [r["env"] for r in out] == ["navigation2d"] * 4 + ["halfcheetah_vel"] * 6     # the paper's order
    text = (tmp_path / "figure8.md").read_text()
    assert text.index("### 2D Navigation") < text.index("### HalfCheetah velocity")
    nav_rows = md_rows(text.split("### HalfCheetah")[0])
    assert nav_rows == [["baseline", "-20.0 ± 1.0 (-20.5)", "-19.0 ± 1.0 (-19.5)"],
                        ["omni (joint head)", "-20.0 ± 1.0 (-20.5)", "-19.0 ± 1.0 (-19.5)"]]
    assert md_rows(text.split("### HalfCheetah velocity")[1])[2] == ["random", "-98.0 ± 1.0 (-98.5)",
                                                                     "-88.0 ± 1.0 (-88.5)"]
    assert (tmp_path / "figure8.png").stat().st_size > 0
    rl.write_figure8([_rl_rec("navigation2d", "maml", 0, -5.0)], tmp_path)      # navigation2d's records replaced
    assert [(r["env"], r["method"]) for r in json.loads((tmp_path / "figure8.json").read_text())][:2] == [
        ("navigation2d", "maml"), ("halfcheetah_vel", "baseline")]


def test_fig9b_table_holds_the_records_numbers():
    records = [{"method": m, "k_shot": k, "steps": s, "mse": 1.0 + i + k / 100 + s / 1000, "ci95": 0.25,
                **({"head": "joint"} if m == "omni" else {})}
               for i, m in enumerate(("omni", "baseline", "omni_pre")) for k in (5, 10) for s in (1, 2, 3)]
    lines = sinusoid.fig9b_table(records).splitlines()
    assert lines[0] == "| method | K=5, 1 step | K=5, 2 steps | K=10, 1 step | K=10, 2 steps |"   # steps 1, 2 (no 10)
    assert md_rows(sinusoid.fig9b_table(records)) == [   # the figure's methods only, in its order
        ["baseline", "2.051 ± 0.250", "2.052 ± 0.250", "2.101 ± 0.250", "2.102 ± 0.250"],
        ["omni (joint head)", "1.051 ± 0.250", "1.052 ± 0.250", "1.101 ± 0.250", "1.102 ± 0.250"]]
    fig = sinusoid.fig9b_figure(records)
    assert [ax.get_title() for ax in fig.axes] == ["after 1 step", "after 2 steps"]
    assert len(fig.axes[0].patches) == 2 * 2                     # a bar per method and K


# ---------------------------------------------------------------------------- one-line errors


@pytest.mark.parametrize("driver, argv, message", [
    (glyph_tables, ["claims", "--protocols", "cross_task", "--methods", "protonet,nope"], "--methods: unknown 'nope'"),
    (glyph_tables, ["claims", "--protocols", "cross_task"], "--data-dir is required for cross_task"),
    (glyph_tables, ["algorithms", "--protocols", "synthetic", "--algorithms", "", "--baselines", ""],
     "--algorithms and --baselines name nothing"),
    (glyph_tables, ["claims", "--protocols", "synthetic", "--extra", "--seed", "3"],
     "--extra: expected --config.FIELD=VALUE arguments, got '--seed'"),
    (glyph_tables, ["claims", "--protocols", "synthetic", "--config.train.nope=1"],
     "unknown config field 'train.nope'"),
    (glyph_table6, ["--protocol", "synthetic", "--rows", "1,7"], "--rows: unknown '7'"),
    (glyph_table6, ["--protocol", "synthetic", "--extra", "--config.train.chunk_size=3"],
     "multiple of train.chunk_size"),
    (rl, ["--envs", "navigation2d,moon"], "--envs: unknown 'moon'"),
    (rl, ["--config.train.num_steps=ten"], "config field train.num_steps expects an integer"),
    (sinusoid, ["--config", "nope"], "no config named 'nope'"),
])
def test_a_bad_argument_is_a_one_line_error(capsys, tmp_path, driver, argv, message):
    where = ["--workdir", str(tmp_path / "w")]
    argv = argv[:1] + where + argv[1:] if driver is glyph_tables else where + argv
    code, out, err = run(capsys, driver, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith(f"python -m experiments.{driver.__name__.split('.')[-1]}: error: ")
    assert not (tmp_path / "w").exists()                    # nothing ran, nothing was written


def test_an_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        sinusoid.main(["--quick", "--epochs", "3"])
    assert e.value.code == 2 and "unrecognized arguments: --epochs 3" in capsys.readouterr().err


# ---------------------------------------------------------------------------- end to end, tiny


@pytest.mark.slow
def test_sinusoid_driver_writes_figures_5_6_9b_and_restores_when_rerun(capsys, tmp_path):
    wd = tmp_path / "sin"
    code, out, _ = run(capsys, sinusoid, "--quick", "--workdir", str(wd), *TINY_SINUSOID)
    assert code == 0 and "time this run" in out
    for name in ("results.json", "fig5_mse_vs_steps.png", "fig6_recovered_waves.png", "fig9b_combinations.png"):
        assert (wd / name).stat().st_size > 0, name
    records = json.loads((wd / "results.json").read_text())
    by = {(r["method"], r["k_shot"], r["steps"]): r for r in records}
    rows = md_rows((wd / "sinusoid.md").read_text())
    assert [r[0] for r in rows] == ["baseline", "maml", "ensemble", "joint", "omni (joint head)"]
    for row in rows:
        m = row[0].split(" ")[0]
        assert row[1:] == [common.mean_ci(by[(m, k, s)]["mse"], by[(m, k, s)]["ci95"], 3)
                           for k in (5, 10) for s in (1, 2)]
    code, out, _ = run(capsys, sinusoid, "--quick", "--workdir", str(wd), *TINY_SINUSOID)
    assert code == 0 and "restored finished baseline, maml, joint, omni" in out and "time this run" not in out
    assert md_rows((wd / "sinusoid.md").read_text()) == rows


@pytest.mark.slow
def test_rl_driver_runs_an_environment_into_its_own_directory_and_restores(capsys, tmp_path):
    wd = tmp_path / "fig8"
    code, out, _ = run(capsys, rl, "--envs", "navigation2d", "--quick", "--workdir", str(wd), *TINY_RL)
    assert code == 0 and "time this run" in out
    run_dir = wd / "rl_navigation2d_quick"
    results = json.loads((run_dir / "results.json").read_text())
    combined = json.loads((wd / "figure8.json").read_text())
    assert combined == [dict(r, config="rl_navigation2d_quick") for r in results]
    assert {r["method"] for r in combined} == {"baseline", "maml", "omni", "random"}
    assert (wd / "figure8.png").stat().st_size > 0
    rows = md_rows((wd / "figure8.md").read_text())
    omni = next(r for r in results if r["method"] == "omni" and r["steps"] == 1)
    assert ["omni (joint head)", f"{common.mean_ci(omni['return'], omni['ci95'], 1)} ({omni['median']:.1f})"] == \
        [rows[2][0], rows[2][2]]
    code, out, _ = run(capsys, rl, "--envs", "navigation2d", "--quick", "--workdir", str(wd), "--report-only", *TINY_RL)
    assert code == 0 and "=== " not in out and json.loads((wd / "figure8.json").read_text()) == combined
    code, out, _ = run(capsys, rl, "--envs", "navigation2d", "--quick", "--workdir", str(wd), *TINY_RL)
    assert code == 0 and "restored finished baseline, maml, omni" in out and "time this run" not in out


@pytest.mark.slow
def test_glyph_tables_share_runs_accumulate_records_and_report(capsys, tmp_path):
    wd = str(tmp_path / "gt")
    common_args = ["--protocols", "synthetic", "--workdir", wd, "--extra", *TINY_CLASSIFY]
    code, out, _ = run(capsys, glyph_tables, "claims", "--methods", "protonet", *common_args)
    assert code == 0 and "time this run" in out
    claims = json.loads((tmp_path / "gt" / "claims.json").read_text())
    assert [(r["run"], r["head"], r["train_way"], r["train_steps"]) for r in claims] == [("protonet", "meta", 5, 4)]
    rows = md_rows((tmp_path / "gt" / "claims.md").read_text())
    assert rows == [["synthetic", "protonet", "meta", "5", common.mean_ci(claims[0]["accuracy"], claims[0]["ci95"])]]
    # the algorithms table: ProtoNet's run is the claims' (restored, not trained again), Omni∘Proto trains
    code, out, _ = run(capsys, glyph_tables, "algorithms", "--algorithms", "proto", "--baselines", "", *common_args)
    assert code == 0
    assert re.search(r"restored finished protonet .* from .*synthetic/protonet", out)
    assert out.count("time this run") == 1 and "time this run: omni_proto" in out
    algos = json.loads((tmp_path / "gt" / "algorithms.json").read_text())
    assert {(r["run"], r["head"]) for r in algos} == {("protonet", "meta"), ("omni_proto", "joint"),
                                                      ("omni_proto", "pre"), ("omni_proto", "meta"),
                                                      ("omni_proto", "ensemble")}
    assert all(r["algorithm"] == "ProtoNet" for r in algos)
    shown = {r[1]: r for r in md_rows((tmp_path / "gt" / "algorithms.md").read_text().split("Every head")[0])}
    ens = next(r for r in algos if r["head"] == "ensemble")
    assert shown["omni_proto"][2] == "ensemble"
    assert shown["omni_proto"][5] == common.mean_ci(ens["accuracy"], ens["ci95"])
    assert (tmp_path / "gt" / "algorithms.png").stat().st_size > 0
    # report only: runs nothing; a method not evaluated with the claims' config is said so, the others' records kept
    code, out, _ = run(capsys, glyph_tables, "claims", "--methods", "omni_proto", "--report-only", *common_args)
    assert code == 0 and "synthetic/omni_proto: not evaluated with this config" in out and "===" not in out
    assert json.loads((tmp_path / "gt" / "claims.json").read_text()) == claims
    code, out, _ = run(capsys, glyph_tables, "claims", "--methods", "protonet", "--report-only", *common_args)
    assert code == 0 and md_rows((tmp_path / "gt" / "claims.md").read_text()) == rows


@pytest.mark.slow
def test_table6_trains_a_row_with_its_terms_and_restores_it(capsys, tmp_path):
    wd = tmp_path / "t6"
    argv = ["--protocol", "synthetic", "--rows", "3", "--steps", "4", "--workdir", str(wd), "--extra", *TINY_CLASSIFY]
    code, out, _ = run(capsys, glyph_table6, *argv)
    assert code == 0 and "time this run" in out
    results = json.loads((wd / "row3" / "results.json").read_text())
    # the joint terms only: the pre and meta flows are left out at inference
    assert [(r["head"], {a.split(":")[0] for a in r["head_algorithms"]}) for r in results] == [("ensemble", {"joint"})]
    rows = md_rows((wd / "table6.md").read_text())
    assert rows == [["-", "-", "✓", "-", "-", "synthetic", "5-way 1-shot", "ensemble",
                     common.mean_ci(results[0]["accuracy"], results[0]["ci95"])]]
    code, out, _ = run(capsys, glyph_table6, *argv)
    assert code == 0 and "restored finished omni_proto" in out and "time this run" not in out
    saved = json.loads((wd / "table6.json").read_text())
    assert [(r["row"], r["terms"], r["head"]) for r in saved] == [(3, ["joint"], "ensemble")]


# ---------------------------------------------------------------------------- §7: glyph_analysis


def test_analysis_parts_share_runs_whose_config_is_the_same():
    """λ=3, num_plain=0, Table 6's last row and the curves' Omni∘Proto are one run; the other
    values each a run of their own, named by the fields they set."""
    from experiments import glyph_analysis as ga
    args = ga.build_parser().parse_args([])
    args.algorithms, args.num_plain, args.lambdas = ["relation"], [0, 1, 4], [0.0, 0.3, 3.0]
    parts = {p: ga.part_variants(p, args) for p in ga.PARTS}
    omni = ga.Variant("omni_proto")
    for p in ("curves", "layers", "lambda", "params", "table6", "fig9a", "finetune", "cam"):
        assert omni in parts[p], p
    assert [v.name for v in parts["lambda"]] == ["omni_proto+lam=0.0", "omni_proto+lam=0.3", "omni_proto"]
    assert [v.name for v in parts["layers"]] == ["omni_proto", "omni_proto+num_plain=1", "omni_proto+num_plain=4"]
    assert "protonet+star=True" in [v.name for v in parts["params"]]
    assert {"relationnet", "omni_relation"} <= {v.name for v in parts["curves"]}
    assert parts["table6"][-1] == omni and len(set(parts["table6"])) == len(glyph_table6.ROWS)
    cfg = ga.run_config("cross_task", parts["lambda"][1], 2, args, [])
    assert (cfg.omni.lam, cfg.seed, cfg.train.n_way, cfg.train.k_shot, cfg.eval.heads) == (
        0.3, 2, 20, 1, ("joint", "pre", "meta", "ensemble"))
    assert ga.run_config("cross_task", ga.Variant("joint"), 0, args, []).eval.heads == ("pre", "meta", "ensemble")
    assert ga.run_config("cross_task", ga.Variant("ensemble"), 0, args, []).eval.heads == ("pre", "meta", "ensemble")
    maml = ga.run_config("cross_task", ga.pair("maml")[1], 0, args, [])
    assert {s[0] for s in maml.eval.settings} == {20}          # MAML's head has the training ways only
    ft = ga.finetune_config(cfg, 10, 50)
    assert classify.fingerprint(ft, "omni_proto") == classify.fingerprint(cfg, "omni_proto")   # no new training


def test_over_seeds_gives_a_t_interval_and_the_spread():
    s = common.over_seeds([90.0, 92.0, 94.0])
    assert (s["mean"], s["min"], s["max"], s["n"]) == (92.0, 90.0, 94.0, 3)
    assert s["ci95"] == pytest.approx(4.303 * 2.0 / 3 ** 0.5)
    assert common.over_seeds([80.0])["ci95"] is None and common.spread(s) == "90.00–94.00"
    assert common.seed_mean(common.over_seeds([80.0])) == "80.00 (n=1: no CI over seeds)"
    assert common.seed_mean(s).endswith("(n=3)") and "±" in common.seed_mean(s)


@pytest.mark.parametrize("argv, message", [
    (["--parts", "curves,nope"], "--parts: unknown 'nope'"),
    (["--seeds", "0,x"], "--seeds expects comma-separated int values"),
    (["--finetune-epochs", "0,10"], "--finetune-epochs must be positive"),
    (["--protocols", "cross_task"], "--data-dir is required for cross_task"),
    (["--algorithms", "nope"], "--algorithms: unknown 'nope'"),
])
def test_analysis_bad_argument_is_a_one_line_error(capsys, tmp_path, argv, message):
    from experiments import glyph_analysis
    code, _, err = run(capsys, glyph_analysis, "--workdir", str(tmp_path / "w"), *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_glyph_analysis_writes_every_part_shares_runs_and_restores(capsys, tmp_path):
    """Every part end to end on in-memory images (two seeds, two λ, two depths, one fine-tuning
    budget on and off): the outputs exist, the shared runs are shared, the tables carry CIs and
    the seed spread, and a rerun trains and evaluates nothing."""
    from experiments import glyph_analysis
    wd = tmp_path / "ga"
    base = ["--protocols", "synthetic", "--workdir", str(wd), "--seeds", "0,1", "--steps", "4", "--val-every", "2",
            "--way", "5", "--shot", "1", "--num-plain", "0,2", "--lambdas", "0,3", "--finetune-epochs", "1",
            "--backbone-steps", "0,1"]
    tiny = ["--extra", *[o for o in TINY_CLASSIFY if "val_every" not in o]]
    argv = base + tiny
    code, out, _ = run(capsys, glyph_analysis, *argv)
    assert code == 0, out
    for name in ("curves_synthetic.png", "finetune.png", "layers.png", "lambda.png", "fig9a.png", "cam_synthetic.png"):
        assert (wd / name).stat().st_size > 10_000, name
    for name in ("curves.md", "finetune.md", "layers.md", "lambda.md", "table7.md", "table6.md", "fig9a.md"):
        text = (wd / name).read_text()
        assert "seed spread" in text and " ± " in text and "| seed 0 |" in text.replace("per seed", ""), name
    runs = wd / "synthetic" / "5way1shot"
    assert sorted(p.name for p in (runs / "omni_proto").iterdir()) == ["seed0", "seed1"]
    assert not any(runs.glob("omni_proto+lam=3*")) and not any(runs.glob("omni_proto+num_plain=0*"))
    metrics = runs / "omni_proto" / "seed0" / "omni_proto" / "metrics.jsonl"
    lines = metrics.read_text().count("\n")
    assert "val/accuracy/pre" in metrics.read_text() and "loss/distill_meta" in metrics.read_text()
    t7 = (wd / "table7.md").read_text()
    assert "protonet+star=True" in t7 and "in the backbone" in t7
    rows = md_rows((wd / "layers.md").read_text())
    assert {r[2] for r in rows} == {"joint", "pre", "meta", "ensemble"}          # every head
    assert all(r[-2].endswith("(n=2)") for r in rows)
    code, out, _ = run(capsys, glyph_analysis, *argv)
    assert code == 0 and "===" not in out and "time this run" not in out
    assert metrics.read_text().count("\n") == lines
    code, out, _ = run(capsys, glyph_analysis, *base, "--report-only", *tiny)
    assert code == 0 and "===" not in out
