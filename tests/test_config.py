"""Configs: packaged modules and their variants, user files (run once), quick variants, overrides."""
import pytest

from omni_jax import config as config_lib
from omni_jax.errors import OmniJaxError


def test_every_packaged_config_loads_and_has_the_omni_group():
    names = config_lib.packaged_configs()
    assert {"sinusoid", "sinusoid_quick", "rl_navigation2d", "rl_halfcheetah_vel", "rl_halfcheetah_dir",
            "classify", "classify_glyphs", "classify_synthetic"} <= set(names)
    for name in names:
        cfg = config_lib.load_config(name)
        assert set(cfg.omni.keys()) == set(config_lib.TERMS) | {"lam", "ema_decay"}, name
        config_lib.check_omni_group(cfg.omni)
        if not name.endswith("_quick"):
            assert config_lib.to_json(config_lib.load_config(name, quick=True)) != config_lib.to_json(cfg), name


def test_variants_derive_from_their_base():
    vel, dir_ = config_lib.load_config("rl_halfcheetah_vel"), config_lib.load_config("rl_halfcheetah_dir")
    assert dir_.env.name == "halfcheetah_dir"
    dir_.env.name = "halfcheetah_vel"
    assert config_lib.to_json(dir_) == config_lib.to_json(vel)
    # the CPU-sized cheetah configs: the same experiment with fewer tasks and trajectories, velocity and
    # direction alike; their quick variants are the smoke run's
    vel_cpu, dir_cpu = config_lib.load_config("rl_halfcheetah_vel_cpu"), config_lib.load_config("rl_halfcheetah_dir_cpu")
    assert (vel_cpu.env.name, dir_cpu.env.name) == ("halfcheetah_vel", "halfcheetah_dir")
    assert vel_cpu.train.meta_batch < vel.train.meta_batch and vel_cpu.eval.num_tasks >= 200
    assert (vel_cpu.env.horizon, vel_cpu.train.inner_lr, vel_cpu.policy) == (vel.env.horizon, vel.train.inner_lr, vel.policy)
    dir_cpu.env.name = "halfcheetah_vel"
    assert config_lib.to_json(dir_cpu) == config_lib.to_json(vel_cpu)
    quick = config_lib.load_config("rl_halfcheetah_dir_cpu", quick=True)
    assert quick.env.name == "halfcheetah_dir" and quick.train.num_steps == 4
    glyphs = config_lib.load_config("classify_glyphs", quick=True)
    assert glyphs.data.dataset.startswith("glyphs") and glyphs.train.num_steps == 40
    assert glyphs.data.flip is False and isinstance(config_lib.load_config("classify").data.flip, bool)


def test_a_user_file_runs_once_derives_from_a_packaged_config_and_has_its_quick_variant(tmp_path):
    counter = tmp_path / "runs.txt"
    mine = tmp_path / "mine.py"
    mine.write_text(
        "from omni_jax.configs import sinusoid\n"
        f"open({str(counter)!r}, 'a').write('x')\n"
        "def get_config():\n"
        "    c = sinusoid.get_config()\n"
        "    c.omni.lam = 1.5\n"
        "    return c\n")
    cfg = config_lib.load_config(str(mine))
    assert cfg.omni.lam == 1.5 and cfg.train.num_steps == 40000
    assert counter.read_text() == "x"
    with pytest.raises(OmniJaxError, match="mine_quick.py, which does not exist"):
        config_lib.load_config(str(mine), quick=True)
    (tmp_path / "mine_quick.py").write_text(
        "def get_config():\n"
        "    import importlib.util, pathlib\n"
        "    from omni_jax.config import load_config\n"
        f"    c = load_config({str(mine)!r})\n"
        "    c.train.num_steps = 10\n"
        "    return c\n")
    assert config_lib.load_config(str(mine), quick=True).train.num_steps == 10


@pytest.mark.parametrize("text,message", [
    ("def nothing(): pass\n", "has no get_config"),
    ("def get_config():\n    return {}\n", "must return an ml_collections.ConfigDict"),
    ("raise RuntimeError('boom')\n", "failed to run: RuntimeError: boom"),
])
def test_bad_user_files_are_one_line_errors(tmp_path, text, message):
    p = tmp_path / "bad.py"
    p.write_text(text)
    with pytest.raises(OmniJaxError, match=message):
        config_lib.load_config(str(p))


def test_unknown_packaged_name_lists_the_known_ones():
    with pytest.raises(OmniJaxError, match="no config named 'sinusiod'.*sinusoid"):
        config_lib.load_config("sinusiod")


def test_overrides_keep_types_and_the_omni_group_is_checked():
    cfg = config_lib.load_config("classify")
    cfg = config_lib.apply_overrides(cfg, ["data.flip=False", "train.methods=('protonet','baseline')", "omni.lam=1"])
    assert cfg.data.flip is False and cfg.train.methods == ("protonet", "baseline") and cfg.omni.lam == 1.0
    with pytest.raises(OmniJaxError, match="data.flip expects true/false"):
        config_lib.apply_overrides(cfg, ["data.flip=auto"])
    cfg.omni.pre = False
    with pytest.raises(OmniJaxError, match="distill_pre needs the pre term"):
        config_lib.check_omni_group(cfg.omni)
    assert config_lib.loss_weights(cfg.omni, "maml") == config_lib.METHOD_WEIGHTS["maml"]


def test_fingerprint_drops_evaluation_fields_and_adds_omni_for_omni_methods():
    cfg = config_lib.load_config("classify")
    fp = config_lib.fingerprint(cfg, "omni_proto", ["data", "train"], drop=("data.dir", "data.test_split"), omni=True)
    assert "dir" not in fp["data"] and "test_split" not in fp["data"] and fp["omni"]["lam"] == 3.0
    assert fp["method"] == "omni_proto" and fp["seed"] == 0
    assert "omni" not in config_lib.fingerprint(cfg, "protonet", ["data"])
    # whether the Omni-Loss terms are part of it comes from the method's loss weights, not its name
    assert "omni" not in config_lib.fingerprint(cfg, "omni_like_name", ["data"], omni=False)
    assert "omni" in config_lib.fingerprint(cfg, "omni", ["data"])           # sinusoid's and RL's "omni"
    from omni_jax.classification.experiment import fingerprint as classify_fingerprint
    assert "omni" in classify_fingerprint(cfg, "omni_gnn") and "omni" not in classify_fingerprint(cfg, "joint")


def test_a_checkpoint_of_another_format_is_an_incompatible_config(tmp_path):
    from omni_jax.training.checkpoint import CheckpointStore
    cfg = config_lib.load_config("sinusoid")
    old = config_lib.fingerprint(cfg, "maml", ["data"])
    del old["checkpoint_format"]  # what a work directory of an earlier version holds
    CheckpointStore(tmp_path, old).save(0, {"x": 1})
    with pytest.raises(OmniJaxError, match="checkpoint_format \\(was '<missing>', now 2\\)"):
        CheckpointStore.peek(tmp_path, config_lib.fingerprint(cfg, "maml", ["data"]))
