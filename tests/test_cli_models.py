"""``edgepose models`` and the root options: rows measured once and cached per zoo code (a warm call
needs no torch), an unknown name is one line also on a cache hit, tables fit 80 columns and are plain
in a pipe, and ``--version`` answers without a command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgepose import __version__
from edgepose.cli import _catalog, app


@pytest.fixture
def fake_measure(monkeypatch, tmp_path):
    """Cache in tmp; rows 'measured' by a counter (the real measurement is tested once below)."""
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path))
    calls = []

    def measure_row(name):
        calls.append(name)
        return {
            "name": name,
            "family": "x",
            "params_m": 1.0,
            "gflops": {"model": 0.5},
            "gflops_mmcv": {"model": 0.4},
            "stage_params_m": {"model": 1.0},
            "gflops_per_frame": 0.5,
            "gflops_per_frame_mmcv": 0.4,
            "input_size": [256, 192],
            "keypoints": "coco17",
            "frames": 1,
            "frame_offsets": [0],
            "stages": ["model"],
            "codec": "rle",
            "paper": {"params_m": 1.1, "gflops": {"total": 0.45}, "accuracy": "70 AP", "note": "n"},
            "pretrained": {"input_size": [64, 48], "trained_on": "edgepose synthetic benchmark"},
        }

    monkeypatch.setattr(_catalog, "measure_row", measure_row)
    return calls


def test_rows_are_measured_once_then_read_from_the_cache(fake_measure):
    runner = CliRunner()
    first = runner.invoke(app, ["models", "--json"])
    assert first.exit_code == 0, first.output
    names = [r["name"] for r in json.loads(first.stdout)]
    assert names and all(not n.endswith("_tiny") for n in names)
    assert fake_measure == names
    second = runner.invoke(app, ["models", "--json"])
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert fake_measure == names  # nothing measured again
    assert _catalog.cache_path().is_file() and __version__ in _catalog.cache_path().name
    # a new model asked for is measured and added; the others stay cached
    runner.invoke(app, ["models", "dsta_mnv2_tiny", "--json"])
    assert fake_measure == [*names, "dsta_mnv2_tiny"]


def test_the_cache_key_follows_the_zoo_code(fake_measure, monkeypatch, tmp_path):
    before = _catalog.cache_path()
    monkeypatch.setattr(_catalog, "zoo_stamp", lambda: "0123456789abcdef")
    assert _catalog.cache_path() != before


def test_refresh_and_an_unreadable_cache_measure_again(fake_measure):
    _catalog.model_rows(["dsta_mnv2"])
    _catalog.cache_path().write_text("{not json")
    _catalog.model_rows(["dsta_mnv2"])
    _catalog.model_rows(["dsta_mnv2"], refresh=True)
    assert fake_measure == ["dsta_mnv2"] * 3


def test_unknown_model_is_one_line_even_from_the_cache(fake_measure):
    runner = CliRunner()
    runner.invoke(app, ["models", "--json"])
    res = runner.invoke(app, ["models", "dsta"])
    assert res.exit_code == 2
    assert "unknown model 'dsta'; did you mean" in res.output and "dsta_mnv2" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_table_fits_80_columns_and_is_plain_in_a_pipe(fake_measure):
    res = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(s) for s in lines) <= 80
    assert not any(ch in res.output for ch in "┃│━─┏╭")  # no box drawing when stdout is not a terminal
    row = next(s for s in lines if s.startswith("dsta_mnv2 "))
    assert "1.00 [1.1]" in row and "0.400 [0.45]" in row and "64x48 synthetic" in row


def test_shipped_column_says_what_data_the_weights_saw_not_what_a_recipe_is_called():
    from edgepose.cli.models import _shipped
    from edgepose.zoo.pretrained import pretrained_info

    for name, shown in (("dsta_mnv2_coco", "256x192 real"), ("dsta_mnv2", "64x48 synthetic")):
        info = pretrained_info(
            name
        )  # the shipped index: the real run's commands name --recipe dsta_synthetic
        assert _shipped({"pretrained": info}) == shown
    assert _shipped({"pretrained": {"input_size": [8, 6], "trained_on": "unrecorded"}}) == "8x6"
    assert _shipped({}) == "-"


def test_measured_row_of_a_tiny_model_has_costs():
    row = _catalog.measure_row("dsta_mnv2_tiny")
    assert row["params_m"] > 0 and set(row["gflops"]) == {"frame", "temporal"}
    assert row["gflops_per_frame"] == pytest.approx(sum(row["gflops"].values()), abs=1e-3)


def test_version_and_help_need_no_command():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"edgepose {__version__}"
    out = subprocess.run([sys.executable, "-m", "edgepose.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"edgepose {__version__}"


def test_cli_import_loads_no_torch_scipy_or_models():
    code = (
        "import sys, edgepose.cli; bad = [m for m in ('torch', 'scipy.optimize', 'cv2', 'edgepose.zoo') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
