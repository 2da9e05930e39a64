"""The few-shot accuracy figure of the claims scripts."""
import pytest

from omni_jax.classification.plots import plot_fewshot_accuracy, plot_omni_pairs


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


def _pair_records():
    out = []
    for protocol in ("cross_task", "cross_domain"):
        for n_way, k_shot in ((5, 1), (5, 5), (20, 1)):
            for algorithm, alone, omni in (("ProtoNet", "protonet", "omni_proto"), ("GNN", "gnn", "omni_gnn")):
                for i, method in enumerate((alone, omni)):
                    out.append({"protocol": protocol, "method": method, "algorithm": algorithm, "n_way": n_way,
                                "k_shot": k_shot, "accuracy": 90.0 + i, "ci95": 0.4})
            out.append({"protocol": protocol, "method": "baseline", "algorithm": None, "n_way": n_way,
                        "k_shot": k_shot, "accuracy": 89.0, "ci95": 0.4})
    return out


def test_pairs_plot_has_a_panel_per_protocol_and_setting_with_each_algorithm_pair(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = []
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, *a, **kw):
        seen.extend((ax.get_title(), len(ax.containers), [t.get_text() for t in ax.get_xticklabels()])
                    for ax in fig.axes if ax.get_title())
        return real_savefig(fig, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    records = [r for r in _pair_records() if not (r["method"] == "omni_gnn" and r["n_way"] == 20)]
    path = plot_omni_pairs(records, tmp_path / "pairs.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t for t, _, _ in seen] == [f"{p}: {n}-way {k}-shot" for p in ("cross_task", "cross_domain")
                                       for n, k in ((5, 1), (5, 5), (20, 1))]
    assert [c for _, c, _ in seen] == [5, 5, 4, 5, 5, 4]      # 2 pairs and Baseline; one missing point at 20-way
    assert all(ticks == ["ProtoNet", "GNN", "baseline"] for _, _, ticks in seen)
    with pytest.raises(ValueError):
        plot_omni_pairs([], tmp_path / "none.png")
