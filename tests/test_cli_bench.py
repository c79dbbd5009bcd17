"""``edgepose bench`` (quick mode) on the tiny DSTA: its four tables, their invariants, and the files."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.bench.report import Table
from edgepose.bench.workload import median, paired_ratio
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


def check_backends_cells(t: dict) -> None:
    """Each ms cell is the median of its measured rounds and each ratio the median of the per-round
    ratios its column names (the rounds are in the table's ``series_ms_per_frame``); an empty cell
    is explained in the notes."""
    precs = t["settings"]["precisions"]
    series = t["extra"]["series_ms_per_frame"]
    for r in rows(t):
        got = {p: series.get(f"{r['model']} {r['format']}/{p}") for p in precs}
        onnx = series[f"{r['model']} onnx/fp32"]
        for p, times in got.items():
            if times is None:
                assert r[f"{p} ms"] is None
                assert any(f"{r['format']} {p}: not measured" in n for n in t["notes"])
                continue
            assert len(times) >= 2 and all(ms > 0 for ms in times)
            assert r[f"{p} ms"] == pytest.approx(median(times))
            if p != "fp32":
                assert r[f"{p} speed-up"] == pytest.approx(paired_ratio(got["fp32"], times))
        assert r["fp32 vs onnx fp32"] == pytest.approx(paired_ratio(onnx, got["fp32"]))


def test_backends_table_has_a_column_per_precision(tables):
    t = tables[0]["backends"]
    precs = t["settings"]["precisions"]
    assert precs[0] == "fp32" and "fp16" in precs
    others = [f"{p} speed-up" for p in precs[1:]]
    assert t["columns"] == [
        "model",
        "format",
        "runtime/device",
        *[f"{p} ms" for p in precs],
        *others,
        "fp32 vs onnx fp32",
    ]
    assert [r["format"] for r in rows(t)] == ["onnx"]
    check_backends_cells(t)


def test_blazepose_table(tables):
    t = tables[0]["blazepose"]
    if asset_path("pose_landmark_full.tflite") is None:
        assert not t["rows"] and "not measured" in t["notes"][0]
        return
    rs = rows(t)
    assert rs[0]["model"].startswith("BlazePose")
    assert [r["runtime/device"].split("/")[0] for r in rs[1:]] == ["onnx"]
    # ms/person is the median of the measured rounds, x BlazePose the median per-round ratio to BlazePose
    series = t["extra"]["series_ms_per_person"]
    blaze = series["BlazePose"]
    assert len(series) == len(rs) and len(blaze) >= 2
    for r, (key, times) in zip(rs, series.items(), strict=True):
        assert all(ms > 0 for ms in times)
        assert r["ms/person"] == pytest.approx(median(times))
        assert r["x BlazePose"] == pytest.approx(paired_ratio(times, blaze))
        if key != "BlazePose":
            assert key == f"{r['model']}/onnx"


def test_unknown_table_or_model_is_an_error():
    res = CliRunner().invoke(app, ["bench", "--tables", "speed"])
    assert res.exit_code == 2 and "unknown benchmark table" in res.stderr
    res = CliRunner().invoke(app, ["bench", "--models", "nope"])
    assert res.exit_code == 2 and "unknown model" in res.stderr


def test_table_rejects_ragged_rows():
    t = Table("x", "x", ["a", "b"])
    with pytest.raises(ValueError, match="2 columns"):
        t.add(1)


def test_publish_prints_writes_and_says_where(tmp_path):
    import io

    from rich.console import Console

    t = Table("x", "a title", ["a", "b"], notes=["a note"])
    t.add("row", 1.5)
    buf = io.StringIO()
    paths = t.publish(Console(file=buf, width=100), tmp_path)
    assert [p.name for p in paths][:2] == ["x.md", "x.json"] and all(p.is_file() for p in paths)
    out = buf.getvalue()
    assert "row" in out and "a note" in out and f"wrote {tmp_path / 'x.md'}" in out
    assert (tmp_path / "x.md").read_text().startswith("### a title") and "| row |" in (
        tmp_path / "x.md"
    ).read_text()


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
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "--tables",
            "backends",
            "--models",
            "dsta_mnv2_tiny",
            "--formats",
            "onnx,openvino",
            "--rounds",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    (t,) = json.loads(res.stdout)
    assert [r["format"] for r in rows(t)] == ["onnx", "openvino"]
    check_backends_cells(t)  # the OpenVINO row's 'fp32 vs onnx fp32' is a real ratio of two runtimes
