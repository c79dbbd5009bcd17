"""``--weights pretrained`` means ``edgepose.load_pretrained(name)`` in every command and in the Python
API, at the crop size and window the shipped weights were trained for; a missing checkpoint is one
line before any heavy import."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from typer.testing import CliRunner

from edgepose.cli import app
from edgepose.cli.evaluate import build_for_weights
from edgepose.export.formats import ExportError
from edgepose.export.source import adopt_pretrained, build
from edgepose.zoo.pretrained import list_pretrained, pretrained_info

NAME = "dsta_mnv2"
pytestmark = pytest.mark.skipif(NAME not in list_pretrained(), reason=f"no shipped weights for {NAME}")


def test_adopt_pretrained_is_load_pretrained():
    net, weights = adopt_pretrained(NAME, "pretrained")
    info = pretrained_info(NAME)
    assert weights is None and net.pretrained["sha256"] == info["sha256"]
    assert list(net.input_size) == info["input_size"]
    assert adopt_pretrained(NAME, "x.pt") == (NAME, "x.pt")  # anything else passes through
    with pytest.raises(ExportError, match="3-frame build"):
        adopt_pretrained(NAME, "pretrained", frames=5)
    with pytest.raises(ExportError, match="needs a model name"):
        adopt_pretrained(net, "pretrained")


def test_export_source_and_eval_build_the_shipped_weights():
    src = build(NAME, "pretrained")
    assert (
        "shipped weights" in src.describe()
        and list(src.model.input_size) == pretrained_info(NAME)["input_size"]
    )
    model, report = build_for_weights(NAME, "pretrained")
    assert (
        report.loaded == len(model.state_dict()) and model.pretrained["file"] == pretrained_info(NAME)["file"]
    )
    a = dict(src.model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(a[k], v)


def test_cli_export_with_pretrained_weights(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "export",
            NAME,
            "--weights",
            "pretrained",
            "--format",
            "onnx",
            "--onnx-exporter",
            "torchscript",
            "--no-verify",
            "--out",
            str(tmp_path / "b"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["input_size"] == pretrained_info(NAME)["input_size"]


@pytest.mark.parametrize(
    "command",
    [
        ["export", NAME, "--out", "OUT"],
        ["eval", NAME, "--data", "."],
        ["quantize", NAME, "--data", "synthetic", "--out", "OUT"],
        ["demo", "--out", "OUT"],
    ],
)
def test_a_missing_checkpoint_is_one_line(command, tmp_path):
    cmd = [c.replace("OUT", str(tmp_path / "o")) for c in command]
    res = CliRunner().invoke(app, [*cmd, "--weights", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2
    assert "nope.pt' does not exist (a checkpoint file, or 'pretrained')" in res.output
    assert not (tmp_path / "o").exists()
