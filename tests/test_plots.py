"""The figures of all three experiments: no backend side effects, one style table, readable Figure 5."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from omni_jax import plotting
from omni_jax.classification import plots as cls_plots
from omni_jax.errors import OmniJaxError
from omni_jax.rl import plots as rl_plots
from omni_jax.sinusoid import plots as sin_plots

PNG = b"\x89PNG\r\n\x1a\n"
MODULES = ("omni_jax.plotting", "omni_jax.sinusoid.plots", "omni_jax.rl.plots", "omni_jax.classification.plots")
SINUSOID = ("baseline", "maml", "ensemble", "joint", "omni", "omni_joint", "omni_pre", "omni_meta", "omni_ensemble")
RL = ("baseline", "maml", "omni", "omni_joint", "omni_pre", "omni_meta", "random")
CLASSIFICATION = ("omni_proto", "protonet", "baseline", "maml", "omni_maml", "ensemble", "joint")


def _python(code: str, mplbackend=None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    if mplbackend is not None:
        env["MPLBACKEND"] = mplbackend
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("mplbackend", [None, "pdf"])
def test_imports_leave_the_backend_alone(mplbackend):
    baseline = _python("import matplotlib; print(matplotlib.get_backend())", mplbackend)
    code = ("import sys\n" + "".join(f"import {m}\n" for m in MODULES) +
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
            "import matplotlib; print(matplotlib.get_backend())")
    assert _python(code, mplbackend) == baseline
    if mplbackend:
        assert baseline == mplbackend


def test_no_pyplot_or_backend_call_in_the_sources():
    import omni_jax
    root = os.path.dirname(omni_jax.__file__)
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(dirpath, f)).read()
                pattern = r"matplotlib\.use\(|import\s+matplotlib\.pyplot|from\s+matplotlib\s+import\s+pyplot"
                assert not re.search(pattern, text), f


def test_one_colour_per_method_in_every_experiment():
    for methods in (SINUSOID, RL, CLASSIFICATION):
        assert all(m in plotting.STYLES for m in methods)
    assert set(plotting.HEAD_STYLES) == {"joint", "pre", "meta", "ensemble"}
    colours = [s.color for s in plotting.STYLES.values()]
    assert len(set(colours)) == len(colours)            # no two methods share a colour
    assert plotting.style("no_such_method").color == plotting.style("no_such_method").color
    # The colours the figures draw: a method shared by the experiments is drawn in one colour.
    drawn = {}
    sin_fig = sin_plots.mse_vs_steps_figure(_sinusoid_records(SINUSOID), methods=SINUSOID)
    rl_fig = rl_plots.return_vs_steps_figure(_rl_records(RL), methods=RL)
    cls_fig = cls_plots.fewshot_accuracy_figure(_cls_records(CLASSIFICATION))
    for name, fig in (("sinusoid", sin_fig), ("rl", rl_fig), ("classification", cls_fig)):
        handles, labels = fig.axes[-1].get_legend_handles_labels()
        for h, lab in zip(handles, labels):
            line = h.lines[0] if hasattr(h, "lines") else h     # an errorbar container holds its line first
            drawn.setdefault(lab, {})[name] = line.get_color()
    by_label = {s.label: s.color for s in plotting.STYLES.values()}
    for m in set(SINUSOID) | set(RL):
        lab = plotting.STYLES[m].label
        assert set(drawn[lab].values()) == {by_label[lab]}, (m, drawn[lab])
    for m in CLASSIFICATION:      # classification labels are the raw method names
        assert drawn[m]["classification"] == plotting.STYLES[m].color
    for m in set(SINUSOID) & set(RL) & set(CLASSIFICATION):
        assert drawn[plotting.STYLES[m].label]["sinusoid"] == drawn[m]["classification"]


def _sinusoid_records(methods, ks=(5, 10), steps=10, mse0=1.0, ci_ratio=0.3):
    out = []
    for i, m in enumerate(methods):
        for k in ks:
            for s in range(1, steps + 1):
                mse = mse0 * (1 + i) / (s * k)
                out.append({"method": m, "k_shot": k, "steps": s, "mse": mse, "ci95": ci_ratio * mse})
    return out


def _rl_records(methods, envs=("navigation2d", "halfcheetah_vel")):
    return [{"env": e, "method": m, "steps": s, "return": -20.0 + 3 * s + i, "median": -19.0 + 3 * s + i,
             "ci95": 0.5} for e in envs for i, m in enumerate(methods) for s in range(5)]


def _cls_records(methods):
    return [{"protocol": p, "method": m, "head": "joint", "n_way": n, "k_shot": k, "accuracy": 80.0 + i + k,
             "ci95": 0.5} for p in ("cross_task", "cross_domain") for i, m in enumerate(methods)
            for n, k in ((5, 1), (5, 5))]


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]     # atomic save cleaned up


def test_every_plot_writes_a_png(tmp_path):
    p = sin_plots.plot_mse_vs_steps(_sinusoid_records(("baseline", "maml", "omni")), tmp_path / "fig5.png")
    assert p == tmp_path / "fig5.png"
    _assert_png(p)
    g = np.linspace(-5, 5, 50)
    curves = {"x": g, "truth": np.stack([np.sin(g), 2 * np.sin(g + 1)]),
              "support_x": np.array([[0.0, 1, 2, 3, 4]] * 2), "support_y": np.zeros((2, 5)),
              "preds": {m: np.stack([np.stack([np.sin(g) * s / 10 for s in range(1, 11)])] * 2)
                        for m in ("maml", "omni")}}
    _assert_png(sin_plots.plot_recovered_waves(curves, tmp_path / "fig6.png"))
    _assert_png(rl_plots.plot_return_vs_steps(_rl_records(RL), tmp_path / "fig8.png", methods=RL))
    _assert_png(rl_plots.plot_return_vs_steps(_rl_records(RL), tmp_path / "fig8m.png", median=True))
    _assert_png(cls_plots.plot_fewshot_accuracy(_cls_records(CLASSIFICATION), tmp_path / "claims.png"))


def test_rl_main_combines_workdirs(tmp_path):
    import json
    for e in ("navigation2d", "halfcheetah_dir"):
        (tmp_path / e).mkdir()
        (tmp_path / e / "results.json").write_text(json.dumps(_rl_records(RL, envs=(e,))))
    assert rl_plots.main([str(tmp_path / "navigation2d"), str(tmp_path / "halfcheetah_dir"),
                          "-o", str(tmp_path / "f8.png")]) == 0
    _assert_png(tmp_path / "f8.png")


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    fig, axes = plotting.new_figure(1, 2)
    axes[0][0].plot([1, 2], [3, 4])
    path = plotting.save_figure(fig, tmp_path / "a.svg")
    assert path.read_text().lstrip().startswith("<?xml")           # format from the suffix
    (tmp_path / "b.xyz").write_bytes(b"old")
    with pytest.raises(OmniJaxError, match=r"b\.xyz: the format 'xyz' of its suffix is not one matplotlib writes"):
        plotting.save_figure(fig, tmp_path / "b.xyz")               # unknown format: nothing replaced
    assert (tmp_path / "b.xyz").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.svg", "b.xyz"]


def test_classification_heads_share_the_method_colour():
    recs = [dict(r, head=h) for r in _cls_records(("omni_proto", "protonet")) for h in ("joint", "meta")]
    recs = [r for r in recs if r["method"] == "omni_proto" or r["head"] == "joint"]
    fig = cls_plots.fewshot_accuracy_figure(recs, label=lambda r: f"{r['method']}/{r['head']}")
    handles, labels = fig.axes[-1].get_legend_handles_labels()
    lines = {lab: h.lines[0] for h, lab in zip(handles, labels)}
    red = plotting.STYLES["omni_proto"].color
    assert lines["omni_proto/joint"].get_color() == lines["omni_proto/meta"].get_color() == red
    assert lines["omni_proto/joint"].get_marker() != lines["omni_proto/meta"].get_marker()


def test_figure5_range_follows_the_means_when_ci_exceeds_the_mean(tmp_path):
    # K=5 and K=10: ci95 is 3x the mean, the old band would span down to 1e-6.
    recs = _sinusoid_records(("baseline", "maml", "omni"), ks=(5, 10), mse0=0.5, ci_ratio=3.0)
    fig = sin_plots.mse_vs_steps_figure(recs, methods=("baseline", "maml", "omni"))
    assert len(fig.axes) == 2
    for ax, k in zip(fig.axes, (5, 10)):
        means = [r["mse"] for r in recs if r["k_shot"] == k]
        lo, hi = ax.get_ylim()
        assert ax.get_yscale() == "log"
        assert min(means) / 100 <= lo <= min(means)
        assert max(means) <= hi <= max(means) * 100
    p = sin_plots.plot_mse_vs_steps(recs, tmp_path / "fig5_wide_ci.png", methods=("baseline", "maml", "omni"))
    _assert_png(p)
    if os.environ.get("OMNI_JAX_KEEP_FIGURES"):                       # to look at the figure
        import shutil
        shutil.copy(p, os.environ["OMNI_JAX_KEEP_FIGURES"])


def test_figure5_band_edges():
    lo, hi = sin_plots.mse_band([1.0, 1.0, 1.0], [0.5, 1.0, 3.0])
    np.testing.assert_allclose(lo, [0.5, 0.1, 0.1])
    np.testing.assert_allclose(hi, [1.5, 2.0, 4.0])
