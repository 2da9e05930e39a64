"""The few-shot accuracy figure of the claims scripts."""
import pytest

from omni_jax.classification.plots import plot_fewshot_accuracy


def _records():
    out = []
    for protocol in ("cross_task", "cross_domain"):
        for i, method in enumerate(("protonet", "baseline", "omni_proto")):
            for n_way, k_shot in ((5, 1), (5, 5), (20, 1)):
                out.append({"protocol": protocol, "method": method, "n_way": n_way, "k_shot": k_shot,
                            "accuracy": 90.0 + i - n_way / 10 + k_shot, "ci95": 0.3 + 0.1 * i})
    return out


def test_plot_writes_a_png_with_one_panel_per_protocol(tmp_path, monkeypatch):
    import matplotlib.figure

    panels = []
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **kw):
        panels.append([(ax.get_title(), len(ax.containers)) for ax in fig.axes])
        return real_savefig(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    path = plot_fewshot_accuracy(_records(), tmp_path / "claims.png",
                                 label=lambda r: r["method"] + (" (20-way train)" if r["method"] != "baseline" else ""))
    assert path == tmp_path / "claims.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert panels == [[("cross_task", 3), ("cross_domain", 3)]]   # one error-bar series per method


def test_plot_refuses_no_records(tmp_path):
    with pytest.raises(ValueError):
        plot_fewshot_accuracy([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
