"""`quantize` with several formats: a format that fails does not lose the others (they are written, the
failures are tabled, the exit code is non-zero); the strict int8 check says what to change in the
Python API and in the CLI; long steps report progress."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.core.manifest import Verification, read_manifest
from edgepose.data.synth_dataset import write_dataset
from edgepose.data.synthetic import SynthConfig
from edgepose.quantization import quantize
from edgepose.quantization.api import REPORT_NAME, QuantizationError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("qa") / "data"
    write_dataset(
        out, SynthConfig.preset("easy", width=256, height=192, frames=6), videos=4, seed=3, split_val=0.5
    )
    return out


def _boom(job):
    raise RuntimeError("converter exploded on purpose")


def test_one_failing_format_does_not_lose_the_others(data, tmp_path, monkeypatch):
    from edgepose.export import to_tflite

    monkeypatch.setattr(to_tflite, "convert", _boom)
    out = tmp_path / "q"
    res = CliRunner().invoke(
        app,
        [
            "quantize",
            "dsta_mnv2_tiny",
            "--data",
            str(data),
            "--format",
            "onnx,tflite",
            "--out",
            str(out),
            "--calib",
            "8",
            "--eval-limit",
            "20",
            "--no-latency",
            "--no-strict",
        ],
    )
    assert res.exit_code == 1, res.output
    # the format that worked is installed and reported; the one that failed is in the final table
    assert read_manifest(out / "onnx").precision == "int8"
    assert not (out / "tflite").exists()
    report = json.loads((out / REPORT_NAME).read_text())
    assert [a["format"] for a in report["artifacts"]] == ["onnx"]
    assert "converter exploded on purpose" in report["failures"]["tflite"]
    tail = res.output[res.output.index("format(s) failed") :]
    assert "tflite" in tail and "converter exploded" in tail
    # progress: each step was announced (plain lines: the test's stderr is not a terminal)
    for step in ("calibration:", "tflite: int8 conversion", "onnx: converting frame", "evaluat"):
        assert step in res.output, step


def test_every_format_failing_raises(data, tmp_path, monkeypatch):
    from edgepose.export import to_onnx, to_tflite

    monkeypatch.setattr(to_onnx, "convert", _boom)
    monkeypatch.setattr(to_tflite, "convert", _boom)
    with pytest.raises(QuantizationError, match="no format could be quantised") as e:
        quantize(
            "dsta_mnv2_tiny",
            out=tmp_path / "x",
            data=data,
            calib=8,
            format="onnx,tflite",
            eval_limit=20,
            latency=False,
        )
    assert "onnx: export" in str(e.value) and "tflite: export" in str(e.value)
    assert not (tmp_path / "x").exists()


def test_strict_check_message_names_the_keyword_and_the_flag(data, tmp_path, monkeypatch):
    from edgepose.quantization import api

    def failing_check(path, manifest, model, crops, threads=None):
        return [
            Verification(stage=s.name, passed=False, reason="RMS error 2.0 of the output's RMS > 0.35")
            for s in manifest.stages
        ], {}

    monkeypatch.setattr(api, "check", failing_check)
    with pytest.raises(QuantizationError) as e:
        quantize(
            "dsta_mnv2_tiny",
            out=tmp_path / "s",
            data=data,
            calib=8,
            format="onnx",
            eval_limit=20,
            latency=False,
        )
    msg = str(e.value)
    assert "strict=False" in msg and "quantize(" in msg  # the Python API's keyword
    assert "--no-strict" in msg and "edgepose quantize" in msg  # the CLI's flag
    assert not (tmp_path / "s").exists()
