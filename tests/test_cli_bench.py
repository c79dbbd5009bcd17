"""``edgepose bench`` (quick mode) on the tiny DSTA: its four tables, their invariants, and the files."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.bench.report import Table
from edgepose.cli import app
from edgepose.core.assets import asset_path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEPOSE_CACHE", str(root / "cache"))
    try:
        args = "bench --models dsta_mnv2_tiny --formats onnx --rounds 2 --threads 1 --json --out".split()
        res = CliRunner().invoke(
            app,
            [*args, str(root / "results")],
        )
    finally:
        mp.undo()
    assert res.exit_code == 0, res.output
    return {t["name"]: t for t in json.loads(res.stdout)}, root


def rows(t: dict) -> list[dict]:
    return [dict(zip(t["columns"], r)) for r in t["rows"]]


def test_quick_bench_produces_four_tables_and_files(tables):
    got, root = tables
    assert set(got) == {"ring_buffer", "persons", "backends", "blazepose"}
    for name in got:
        for suffix in (".md", ".json"):
            assert (root / "results" / f"{name}{suffix}").is_file()
        md = (root / "results" / f"{name}.md").read_text()
        assert md.startswith("### ") and "| --- |" not in md and "|---|" in md
    for name in ("ring_buffer", "persons", "backends"):
        assert (root / "results" / f"{name}.png").stat().st_size > 1000


def test_ring_buffer_runs_the_frame_stage_once_per_person(tables):
    t = tables[0]["ring_buffer"]
    assert {r["T"] for r in rows(t)} == {3, 5}
    for r in rows(t):
        assert r["frame-stage rows/frame (ring)"] == r["persons"]
        assert r["frame-stage rows/frame (recompute)"] == r["T"] * r["persons"]
        assert r["max kp diff px"] < 1e-2  # same crops, same windows: the same poses
        assert 0 <= r["temporal share"] <= 1
        assert r["expected ratio"] == pytest.approx(r["T"] * (1 - r["temporal share"]) + r["temporal share"])
        assert r["ring ms/frame"] > 0 and r["recompute / ring"] > 0


def test_persons_table_has_papers_layout(tables):
    t = tables[0]["persons"]
    assert t["columns"][:5] == ["method", "loop", "1", "3", "5"]
    loops = [r["loop"] for r in rows(t)]
    assert loops == ["ring buffer", "recompute window", "speed-up (recompute / ring)"]
    ring, rec, speed = rows(t)
    for c in ("1", "3", "5"):
        assert ring[c] > 0 and rec[c] > 0 and speed[c] > 0
    assert ring["5 vs 1"] == pytest.approx(ring["5"] / ring["1"])


def test_backends_table_has_a_column_per_precision(tables):
    t = tables[0]["backends"]
    assert "fp32 ms" in t["columns"] and "fp16 ms" in t["columns"] and "fp16 speed-up" in t["columns"]
    by_fmt = {r["format"]: r for r in rows(t)}
    assert set(by_fmt) == {"onnx"}
    assert by_fmt["onnx"]["fp32 ms"] > 0 and by_fmt["onnx"]["fp32 vs onnx fp32"] == pytest.approx(1.0)
    for r in rows(t):  # an empty cell is explained in the notes
        if r["fp16 ms"] is None:
            assert any(f"{r['format']} fp16: not measured" in n for n in t["notes"])


def test_blazepose_table(tables):
    t = tables[0]["blazepose"]
    if asset_path("pose_landmark_full.tflite") is None:
        assert not t["rows"] and "not measured" in t["notes"][0]
        return
    rs = rows(t)
    assert rs[0]["model"].startswith("BlazePose") and rs[0]["x BlazePose"] == pytest.approx(1.0)
    assert [r["runtime/device"].split("/")[0] for r in rs[1:]] == ["onnx"]
    assert all(r["ms/person"] > 0 for r in rs)


def test_unknown_table_or_model_is_an_error():
    res = CliRunner().invoke(app, ["bench", "--tables", "speed"])
    assert res.exit_code == 2 and "unknown benchmark table" in res.stderr
    res = CliRunner().invoke(app, ["bench", "--models", "nope"])
    assert res.exit_code == 2 and "unknown model" in res.stderr


def test_table_rejects_ragged_rows():
    t = Table("x", "x", ["a", "b"])
    with pytest.raises(ValueError, match="2 columns"):
        t.add(1)


def test_precisions_slot_in_through_builders(monkeypatch):
    from edgepose.bench import backends
    from edgepose.bench.settings import quick
    from edgepose.export.formats import PRECISIONS

    hooked = [n for n, p in PRECISIONS.items() if getattr(p, "needs_hook", False)]
    names, notes = backends.precisions(quick())
    assert names[0] == "fp32" and not set(hooked) & set(names)
    assert all(any(n in note for note in notes) for n in hooked)
    monkeypatch.setitem(backends.BUNDLE_BUILDERS, "int8", lambda model, fmt, settings: None)
    names, notes = backends.precisions(quick())
    assert "int8" in names and not any(note.startswith("int8") for note in notes)
    assert backends.precisions(quick(precisions=("fp16",))) == (["fp16"], [])


@pytest.mark.slow
def test_backends_table_on_two_runtimes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["bench", "--tables", "backends", "--models", "dsta_mnv2_tiny", "--formats",
                                   "onnx,openvino", "--rounds", "2", "--json"])
    assert res.exit_code == 0, res.output
    (t,) = json.loads(res.stdout)
    assert [r["format"] for r in rows(t)] == ["onnx", "openvino"]
    assert all(r["fp32 ms"] > 0 for r in rows(t))
