"""The roofline benchmark's measuring code at tiny sizes: the MAC counter and the table's rows (no timing)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgepose.bench import roofline  # noqa: E402
from edgepose.core.assets import asset_path  # noqa: E402


@pytest.mark.parametrize("kind", roofline.KINDS)
def test_onnx_macs_equal_the_torch_counter(kind, tmp_path):
    net, x = roofline.plain_net(kind, scale=0.25)
    macs = roofline.onnx_macs(roofline.export_onnx(net, x, tmp_path / "net.onnx"))
    assert macs.total == roofline.torch_macs(net, x)
    assert roofline.kind_of(macs) == kind


def test_onnx_macs_cover_deconv_gemm_and_groups(tmp_path):
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(4 * 16 * 12, 10),
    ).eval()
    x = torch.randn(1, 3, 16, 12)
    macs = roofline.onnx_macs(roofline.export_onnx(net, x, tmp_path / "net.onnx"))
    assert set(macs.by_op) == {"Conv", "ConvTranspose", "Gemm"}
    assert macs.total == roofline.torch_macs(net, x)


def test_table_has_a_row_per_ceiling_stage_and_detector(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    detectors = ("nanodet",) if asset_path("nanodet.onnx") is not None else ()
    settings = roofline.quick(
        models=("dsta_mnv2_tiny",),
        detectors=detectors,
        threads=(1,),
        rounds=1,
        reps=1,
        warmup=0,
        scale=0.25,
        calib=2,
    )
    table = roofline.run(settings)
    names = table.column("graph")
    assert names[:3] == [f"ceiling: {roofline.KIND_NAMES[k]}" for k in roofline.KINDS]
    assert names[3:5] == ["dsta_mnv2_tiny/frame", "dsta_mnv2_tiny/temporal"]
    assert names[5:] == [f"{d} 416x416" for d in detectors]
    assert table.columns[3:] == [
        "ORT fp32 1t", "ORT int8 1t", "OV fp32 1t", "OV int8 1t", "% ORT 1t", "% OV 1t",
    ]  # fmt: skip
    ceilings, stages = table.rows[:3], table.rows[3:]
    assert all(r[3] > 0 and r[4] > 0 for r in ceilings)  # every ceiling timed fp32 and int8 on ORT
    assert all(r[7] is None for r in ceilings) and all(r[4] is None for r in stages)
    assert all(r[7] and r[7] > 0 for r in stages)  # every stage got a fraction of its ORT ceiling
    written = table.write(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "roofline.json").read_text())
    assert [g["graph"] for g in data["extra"]["graphs"]][3:5] == names[3:5]
    assert "load_avg_1m" in data["settings"]
    assert {p.suffix for p in written} >= {".md", ".json"}
