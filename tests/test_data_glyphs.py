"""The glyph benchmark: selection logic, splits, archive and loader on synthetic glyphs; a tiny real build on DejaVu."""
import json
import logging
import operator
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from omni_jax.data.formats import load_dataset
from omni_jax.data.formats.glyphs import ARCHIVE, MANIFEST, load_glyphs, read_benchmark, sha256_file
from omni_jax.errors import OmniJaxError
from omni_jax.glyphs import build as phases
from omni_jax.glyphs import select as sel
from omni_jax.glyphs.archive import check_writable, write_npz
from omni_jax.glyphs.build import assemble, build
from omni_jax.glyphs.render import FaceResult, Quietly, find_font_files, normalize, quiet_fonttools, render_face
from omni_jax.glyphs.splits import make_splits


def _glyph(char, width=3, shift=(0, 0), picture=None):
    """A synthetic letter: three strokes whose positions depend only on the character.

    ``picture`` (an int) draws a dingbat instead: a square in a corner.
    """
    img = Image.new("L", (28, 28))
    d = ImageDraw.Draw(img)
    if picture is not None:
        x0, y0 = 18 * (picture % 2), 18 * (picture // 2 % 2)        # a square in one corner
        d.rectangle([x0, y0, x0 + 9, y0 + 9], fill=255)
        return np.asarray(img)
    rng = np.random.default_rng(ord(char))
    for _ in range(3):
        d.line([tuple(rng.integers(3, 25, 2)), tuple(rng.integers(3, 25, 2))], fill=255, width=width)
    return np.roll(np.asarray(img), shift, axis=(0, 1))


INV = {"Latin": (list("ABCDEFGH"), list("ab")), "Greek": (["Α", "Γ", "Δ", "Θ", "Λ", "Ξ"], []),
       "Hebrew": (list("אבגדהוזח"), [])}


def _face(k, family=None, style="Regular", dingbat=False, path=None, wrong=None):
    """A face of the synthetic fonts: stroke width and offset vary by face; Greek Alpha is drawn as Latin A.

    ``wrong``: characters the face draws as a picture (a wrong glyph in an otherwise good face).
    """
    width, shift = 2 + k % 3, ((k // 3) % 3 - 1, (k // 9) % 3 - 1)
    units = {}
    for script, (core, extra) in INV.items():
        chars = core + extra
        imgs = []
        for c in chars:
            src = "A" if c == "Α" else c
            imgs.append(_glyph(src, width, shift, picture=ord(c) if dingbat or c in (wrong or ()) else None))
        units[script] = (chars, np.stack(imgs))
    return FaceResult(path or f"/fonts/f{k:02d}.ttf", 0, family or f"Family {k}", style, units, {})


def _synthetic_faces(n=14):
    faces = [_face(k) for k in range(n)]
    faces.append(_face(0, path="/fonts/zz-copy-of-f00.ttf", family="Copy"))        # a duplicate of face 0
    faces.append(_face(99, family="Dingbats", dingbat=True))                       # pictures at letter code points
    faces += [_face(20 + k, family="Big", style=s) for k, s in enumerate(["Regular", "Bold", "Italic", "Medium"])]
    faces.append(_face(14, wrong={"C"}))                                    # one wrong glyph
    return faces


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("glyphs")
    manifest = assemble(_synthetic_faces(), out, INV, min_faces=8, max_per_family=3, min_classes_per_script=3,
                        seed=0)
    return out, manifest


# ---------------------------------------------------------------- pure logic

def test_pairwise_rms_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.random((5, 4, 6)).astype(np.float32)
    m = rng.random((5, 4)) > 0.3
    x[~m] = 0
    rms, shared = sel.pairwise_rms(x, m)
    for i in range(5):
        for j in range(5):
            both = m[i] & m[j]
            assert shared[i, j] == both.sum()
            if both.any():
                want = np.sqrt(np.mean((x[i, both] - x[j, both]) ** 2))
                assert abs(rms[i, j] - want) < 2e-3  # float32 cancellation near 0


def test_duplicates_offscript_and_family_cap_are_dropped(built):
    _, manifest = built
    used = {f["file"] for f in manifest["faces"]}
    assert "/fonts/zz-copy-of-f00.ttf" not in used and "/fonts/f00.ttf" in used   # the earlier of a duplicate pair
    assert not any(f["family"] == "Dingbats" for f in manifest["faces"])
    big = sorted(f["style"] for f in manifest["faces"] if f["family"] == "Big")
    assert big == ["Bold", "Italic", "Regular"]                                    # Medium is capped first
    stats = manifest["stats"]
    assert stats["units_duplicate"] == 3 and stats["units_off_script"] == 3 and stats["units_family_cap"] == 3


def test_lookalikes_merge_across_scripts_and_case_pairs_share_a_group(built):
    _, manifest = built
    classes = manifest["classes"]
    by_char = {c["chars"][0]: c for c in classes}
    assert by_char["A"]["chars"] == ["A", "Α"] and by_char["A"]["script"] == "Latin"
    assert "Α" not in by_char and len(classes) == 8 + 2 + 5 + 8
    assert by_char["a"]["group"] == by_char["A"]["group"]
    assert by_char["b"]["group"] == by_char["B"]["group"]
    assert by_char["C"]["group"] != by_char["D"]["group"]
    assert all(c["faces"] >= 8 for c in classes)


def test_a_wrong_glyph_is_dropped_not_its_face(built):
    _, manifest = built
    faces = {c["chars"][0]: c["faces"] for c in manifest["classes"]}
    assert faces["C"] == faces["D"] - 1 and faces["D"] == faces["E"]
    assert manifest["stats"]["glyphs_dropped_outlier"] == 1


def test_style_rank_prefers_distinct_designs():
    kept = sel.cap_families(["F"] * 5, ["Medium", "Condensed Light", "Bold", "Regular", "SemiBold"], range(5), 3)
    assert kept.tolist() == [False, True, True, True, False]


def test_split_groups_never_splits_a_group():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 40, 300)
    parts = np.asarray(sel.split_groups(groups, (70, 15, 15), seed=3))
    for g in np.unique(groups):
        assert len(set(parts[groups == g])) == 1
    frac = np.bincount(parts, minlength=3) / len(parts)
    assert abs(frac[0] - 0.7) < 0.1
    assert sel.split_groups(groups, (70, 15, 15), seed=3) == parts.tolist()  # deterministic


def test_make_splits_protocols():
    scripts = ["Latin"] * 40 + ["Greek"] * 20 + ["Cyrillic"] * 20 + ["Arabic"] * 30 + ["Hebrew"] * 20 + ["Khmer"] * 20
    groups = [i // 2 for i in range(len(scripts))]   # pairs, like x/X
    splits = make_splits(scripts, groups, seed=0)
    lgc = set(range(80))
    for protocol, parts in splits.items():
        seen = set()
        for ids in parts.values():
            assert not seen & set(ids), protocol                     # disjoint characters
            seen |= set(ids)
        side = {i: name for name, ids in parts.items() for i in ids}
        for i in range(0, len(scripts), 2):
            assert side.get(i) == side.get(i + 1), (protocol, i)     # a shape group stays on one side
    cd = splits["cross_domain"]
    assert set(cd["train"]) | set(cd["test_in"]) == lgc
    assert not (set(cd["val"]) | set(cd["test"])) & lgc
    assert {scripts[i] for i in cd["test"]} == {"Arabic", "Hebrew", "Khmer"}
    ct = splits["cross_task"]
    assert {scripts[i] for i in ct["test"]} == {"Hebrew", "Khmer"}   # evaluation scripts
    assert {scripts[i] for i in splits["loo_middle_eastern"]["test"]} == {"Arabic", "Hebrew"}
    assert splits == make_splits(scripts, groups, seed=0)


# ---------------------------------------------------------------- archive and loader

def test_archive_is_deterministic_and_checksummed(tmp_path):
    arrays = {"images": np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28), "labels": np.array([0, 1], np.int32)}
    d1 = write_npz(tmp_path / "a.npz", arrays)
    d2 = write_npz(tmp_path / "b.npz", arrays)
    assert d1 == d2 == sha256_file(tmp_path / "a.npz")
    assert not list(tmp_path.glob(".*tmp"))
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["images"], arrays["images"])


def test_loader_reads_splits_and_verifies_checksum(built, tmp_path):
    out, manifest = built
    train = load_dataset("glyphs", out, "train")
    assert train.images.shape[1:] == (28, 28, 1) and train.images.dtype == np.uint8
    assert train.num_classes == len(manifest["splits"]["cross_task"]["train"])
    heb = load_dataset("glyphs:cross_domain", out, "test/hebrew")
    assert all(n.startswith("Hebrew:") for n in heb.class_names) and heb.num_classes >= 1
    assert load_glyphs(out, "test", 14, protocol="loo_middle_eastern").images.shape[1:] == (14, 14, 1)
    assert len(load_glyphs(out, "test_in", protocol="cross_domain").labels) > 0
    few = load_glyphs(out, "train", max_per_class=5)
    assert few.class_counts().tolist() == [5] * train.num_classes
    assert np.array_equal(few.images, load_glyphs(out, "train", max_per_class=5).images)
    every = load_glyphs(out, "all/Hebrew+greek", protocol="cross_domain")
    assert every.num_classes == 8 + 5 and {n.split(":")[0] for n in every.class_names} == {"Hebrew", "Greek"}
    with pytest.raises(OmniJaxError, match=r"unknown protocol 'cross_time'"):
        load_dataset("glyphs:cross_time", out, "train")
    with pytest.raises(OmniJaxError, match=r"has no split 'test_in'"):
        load_dataset("glyphs", out, "test_in")
    with pytest.raises(OmniJaxError, match=r"unknown script 'Klingon'"):
        load_dataset("glyphs", out, "test/Klingon")
    # a damaged archive is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in (ARCHIVE, MANIFEST):
        (bad / name).write_bytes((out / name).read_bytes())
    with open(bad / ARCHIVE, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(OmniJaxError, match=r"has sha256 .* the manifest says"):
        load_dataset("glyphs", bad, "train")
    m = json.loads((bad / MANIFEST).read_text())
    m["version"] = 99
    (bad / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(OmniJaxError, match=r"has version 99"):
        load_dataset("glyphs", bad, "train")
    with pytest.raises(OmniJaxError, match=r"manifest.json not found; build it with `omni-jax data glyphs"):
        load_dataset("glyphs", tmp_path, "train")


def test_manifest_records_scripts_faces_and_checksum(built):
    out, manifest = built
    on_disk = json.loads((out / MANIFEST).read_text())
    assert on_disk["sha256"] == sha256_file(out / ARCHIVE)
    assert on_disk["version"] == 1 and on_disk["num_classes"] == len(on_disk["classes"])
    assert set(on_disk["scripts"]) == {"Latin", "Greek", "Hebrew"}
    _, images, labels, faces = read_benchmark(out)
    counts = np.bincount(labels)
    assert counts.tolist() == [c["faces"] for c in on_disk["classes"]]
    for k in range(len(counts)):   # one glyph per face in a class
        assert len(set(faces[labels == k].tolist())) == counts[k]


def test_cli_errors_are_one_line(tmp_path, capsys):
    from omni_jax.cli import main

    empty = tmp_path / "nofonts"
    empty.mkdir()
    assert main(["data", "glyphs", "--out", str(tmp_path / "o"), "--font-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no font files" in err and "docs/glyphs.md" in err and not (tmp_path / "o").exists()
    assert main(["data", "inspect", "--dataset", "glyphs", "--data-dir", str(tmp_path)]) == 2
    assert "manifest.json not found" in capsys.readouterr().err


def test_cli_inspect(built, capsys):
    from omni_jax.cli import main

    out, manifest = built
    assert main(["data", "inspect", "--dataset", "glyphs:cross_domain", "--data-dir", str(out), "--split", "train"]) == 0
    assert f"{len(manifest['splits']['cross_domain']['train'])} classes" in capsys.readouterr().out


# ---------------------------------------------------------------- real fonts

def test_normalize_crops_to_ink_box():
    a = np.zeros((60, 40), np.uint8)
    a[10:50, 18:22] = 255                 # a tall bar, off centre
    out = normalize(a)
    ys, xs = np.nonzero(out > 128)
    assert out.shape == (28, 28) and ys.max() - ys.min() + 1 == 24   # the longer side spans 24 px
    assert abs((ys.min() + ys.max()) / 2 - 13.5) <= 1 and abs((xs.min() + xs.max()) / 2 - 13.5) <= 1
    assert normalize(np.zeros((10, 10), np.uint8)) is None


def _dejavu():
    files = [f for f in find_font_files(["/usr/share/fonts", "/usr/local/share/fonts"]) if "DejaVu" in Path(f).name
             and "Math" not in f]
    if len(files) < 4:
        pytest.skip("DejaVu fonts are not installed (apt-get install fonts-dejavu-core fonts-dejavu-extra)")
    return files


def test_render_face_on_dejavu():
    path = next((f for f in _dejavu() if Path(f).name == "DejaVuSans.ttf"), None)
    if path is None:
        pytest.skip("DejaVuSans.ttf is not installed")
    res = render_face(path, 0, {"Latin": (list("ABab"), []), "Greek": (["Α", "Ω"], []),
                                "Khmer": (["ក", "ខ"], [])})
    assert res.family == "DejaVu Sans" and res.skipped is None
    chars, imgs = res.units["Latin"]
    assert chars == list("ABab") and imgs.shape == (4, 28, 28) and imgs.dtype == np.uint8
    assert "Khmer" not in res.units                 # DejaVu Sans has no Khmer: not a face of that script
    for im in imgs:
        ys, xs = np.nonzero(im > 16)
        assert max(ys.max() - ys.min(), xs.max() - xs.min()) + 1 >= 23


def test_tiny_build_on_dejavu(tmp_path):
    files = _dejavu()
    manifest = build(tmp_path, font_files=files, scripts=["Greek", "Cyrillic"], workers=1, min_faces=3,
                     max_per_family=4, min_classes_per_script=3)
    assert manifest["num_classes"] > 40 and set(manifest["scripts"]) <= {"Greek", "Cyrillic"}
    merged = [c["chars"] for c in manifest["classes"] if len(c["chars"]) > 1]
    assert ["Α", "А"] in merged                      # Greek Alpha and Cyrillic A are one class
    ds = load_dataset("glyphs", tmp_path, "train")
    assert ds.images.shape[1:] == (28, 28, 1)
    again = tmp_path / "again"
    assert build(again, font_files=files, scripts=["Greek", "Cyrillic"], workers=1, min_faces=3,
                 max_per_family=4, min_classes_per_script=3)["sha256"] == manifest["sha256"]   # deterministic


# ---------------------------------------------------------------- the build's phases, on tiny hand-made inputs

def _unit_face(k, family="F", style="Regular", chars=tuple("ABCDEFGH"), script="Latin", same_as=None, dingbat=False):
    """A face drawing ``chars`` of one script; ``same_as``: the images of face ``same_as`` (a duplicate)."""
    src = k if same_as is None else same_as
    width, shift = 2 + src % 3, ((src // 3) % 3 - 1, 0)
    imgs = np.stack([_glyph(c, width, shift, picture=ord(c) if dingbat else None) for c in chars])
    return FaceResult(f"/fonts/u{k}.ttf", 0, family, style, {script: (list(chars), imgs)}, {})


def test_collect_faces_and_sample_table():
    faces = [_unit_face(0), FaceResult("/fonts/bitmap.ttf", 0, skipped="no outlines", dropped={"empty": 2}),
             _unit_face(1, chars=tuple("AB"), script="Greek")]
    faces[0].dropped = {"empty": 1, "placeholder": 3}
    stats = {"font_files": 3}
    kept, skipped = phases.collect_faces(faces, stats)
    assert [f.path for f in kept] == ["/fonts/u0.ttf", "/fonts/u1.ttf"] and skipped == {"no outlines": 1}
    assert stats == {"font_files": 3, "glyphs_dropped_empty": 3, "glyphs_dropped_placeholder": 3,
                     "faces_with_glyphs": 2}
    samples = phases.sample_table(kept)
    assert samples.face.tolist() == [0] * 8 + [1] * 2 and samples.char.tolist() == list("ABCDEFGH") + ["A", "B"]
    assert samples.script.tolist() == ["Latin"] * 8 + ["Greek"] * 2 and samples.alive.all()
    assert samples.images.shape == (10, 28, 28)
    with pytest.raises(OmniJaxError, match="no font draws any of the scripts"):
        phases.sample_table([])


def test_case_partners():
    same = phases.case_partners(["A", "B", "a"])
    assert same.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


def test_drop_units_drops_duplicates_pictures_and_the_family_cap():
    faces = [_unit_face(k, family=f"F{k}") for k in range(5)]
    faces.append(_unit_face(5, family="Copy", same_as=2))                        # a duplicate of face 2
    faces.append(_unit_face(6, family="Pictures", dingbat=True))                  # off-script
    faces.append(_unit_face(7, family="F0", style="Bold"))                        # over the cap of 1 for F0
    faces[3].units["Latin"] = (faces[3].units["Latin"][0] + ["é"],                # an extra letter goes with its unit
                               np.concatenate([faces[3].units["Latin"][1], faces[3].units["Latin"][1][:1]]))
    samples = phases.sample_table(faces)
    totals, per_script = phases.drop_units(samples, faces, {"Latin": (list("ABCDEFGH"), ["é"])}, dup_threshold=0.04,
                                           min_ncm_accuracy=0.5, max_per_family=1)
    assert totals == {"units": 8, "duplicate": 1, "off_script": 1, "family_cap": 1}
    assert per_script == {"Latin": {"units": 8, "duplicate": 1, "off_script": 1, "family_cap": 1, "kept": 5}}
    assert sorted(set(samples.face[samples.alive].tolist())) == [0, 1, 2, 3, 4]
    assert samples.alive[(samples.face == 3) & (samples.char == "é")].all()


def test_candidate_classes_merge_lookalikes_and_one_glyph_per_face():
    # four faces draw Latin A and Greek Alpha alike; Latin B apart; one row (face 1's B) already dropped
    faces = [_unit_face(k, chars=("B", "A")) for k in range(4)]
    for k, f in enumerate(faces):
        f.units["Greek"] = (["Α"], np.stack([_glyph("A", 2 + k % 3, ((k // 3) % 3 - 1, 0))]))
    samples = phases.sample_table(faces)
    samples.alive[(samples.face == 1) & (samples.char == "B")] = False
    keys, rows = phases.candidate_classes(samples)
    assert [(str(s), str(c)) for s, c in keys] == [("Latin", "A"), ("Latin", "B"), ("Greek", "Α")]
    assert [samples.face[r].tolist() for r in rows] == [[0, 1, 2, 3], [0, 2, 3], [0, 1, 2, 3]]
    merged_into, num_groups = phases.lookalike_heads(samples, keys, rows, 0.06)
    assert merged_into == {2: 0} and num_groups == 1
    classes = phases.merged_classes(samples, keys, rows, merged_into)
    assert [(c["script"], c["chars"]) for c in classes] == [("Latin", ["A", "Α"]), ("Latin", ["B"])]
    assert classes[0]["rows"].tolist() == rows[0].tolist()                      # the head's glyph of each face


def test_drop_outliers_then_min_faces():
    images = np.stack([_glyph("A", 2 + k % 3, (k % 3 - 1, 0)) for k in range(5)] + [_glyph("A", picture=1)])
    stats = {}
    few = {"script": "Latin", "chars": ["Z"], "rows": np.arange(2)}
    kept = phases.drop_outliers([{"script": "Latin", "chars": ["A"], "rows": np.arange(6)}, few], images, 5, 0.3,
                                stats)
    assert len(kept) == 1 and kept[0]["rows"].tolist() == [0, 1, 2, 3, 4] and stats == {"glyphs_dropped_outlier": 1}
    assert phases.drop_outliers([{"script": "Latin", "chars": ["A"], "rows": np.arange(6)}], images, 6, 0.3, {}) == []


def test_cap_scripts_keeps_the_biggest_classes_and_drops_small_scripts():
    def cls(script, ch, n):
        return {"script": script, "chars": [ch], "rows": np.arange(n)}
    classes = [cls("Greek", "Α", 9), cls("Latin", "D", 5), cls("Latin", "B", 7), cls("Latin", "C", 7),
               cls("Latin", "A", 3)]
    stats = {}
    final = phases.cap_scripts(classes, max_classes_per_script=3, min_classes_per_script=2, stats=stats)
    assert [c["chars"][0] for c in final] == ["B", "C", "D"] and stats == {"script_dropped_Greek": 1}


def test_output_arrays_renumber_the_used_faces():
    face_of = np.array([7, 3, 7, 9, 3])
    images = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    final = [{"rows": np.array([1, 0])}, {"rows": np.array([4, 2])}]
    used, out_images, labels, faces = phases.output_arrays(final, face_of, images)
    assert used == [3, 7] and labels.tolist() == [0, 0, 1, 1] and faces.tolist() == [0, 1, 0, 1]
    assert out_images[:, 0, 0].tolist() == [1, 0, 4, 2] and labels.dtype == faces.dtype == np.int32


# ---------------------------------------------------------------- fontTools' logger and the output folder

def test_quiet_fonttools_is_scoped():
    logger = logging.getLogger("fontTools")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        with quiet_fonttools():
            assert logging.getLogger("fontTools.ttLib").getEffectiveLevel() == logging.ERROR
        assert logger.level == logging.INFO
        with pytest.raises(ZeroDivisionError), quiet_fonttools():
            1 / 0
        assert logger.level == logging.INFO
        logger.setLevel(logging.CRITICAL)                       # never lowered
        assert Quietly(operator.methodcaller("getEffectiveLevel"))(logger) == logging.CRITICAL
        assert logger.level == logging.CRITICAL
    finally:
        logger.setLevel(before)


def test_worker_processes_render_quietly():
    logger = logging.getLogger("fontTools")
    before = logger.level
    levels = phases._map(operator.methodcaller("getEffectiveLevel"), [logger, logger], workers=2)
    assert levels == [logging.ERROR, logging.ERROR] and logger.level == before


def test_importing_the_builder_leaves_logging_alone():
    code = ("import logging, omni_jax.glyphs.build, omni_jax.data.formats.glyphs, omni_jax.data.main; "
            "assert logging.getLogger('fontTools').level == logging.NOTSET")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_restores_the_fonttools_logger(tmp_path):
    files = _dejavu()
    logger = logging.getLogger("fontTools")
    before = logger.level
    seen = []
    try:
        logger.setLevel(logging.INFO)
        build(tmp_path, font_files=files, scripts=["Greek"], workers=1, min_faces=3, max_per_family=4,
              min_classes_per_script=3, progress=lambda m: seen.append(logger.getEffectiveLevel()))
        assert seen[0] == logging.ERROR and seen[-1] == logging.INFO    # quiet while rendering only
        assert logger.level == logging.INFO
        (tmp_path / "nofonts").mkdir()
        with pytest.raises(OmniJaxError, match="no font files"):
            build(tmp_path / "o", [str(tmp_path / "nofonts")])
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)


def test_check_writable(tmp_path):
    check_writable(tmp_path / "a" / "b" / "c")
    assert not (tmp_path / "a").exists()                        # nothing is left behind
    check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    for bad in (tmp_path / "afile" / "out", tmp_path / "afile"):
        with pytest.raises(OmniJaxError, match=f"cannot write the output folder {bad} "):
            check_writable(bad)


def test_an_unwritable_out_fails_before_rendering(tmp_path, capsys):
    from omni_jax.cli import main

    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "out"
    (tmp_path / "nofonts").mkdir()
    assert main(["data", "glyphs", "--out", str(out), "--font-dir", str(tmp_path / "nofonts")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the output folder {out} " in err and len(err.strip().splitlines()) == 1
    with pytest.raises(OmniJaxError, match="cannot write the output folder"):
        build(out, font_files=["/nonexistent.ttf"])             # checked before the fonts
