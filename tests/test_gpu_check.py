"""The prepared GPU check (issue #14) runs on a CPU in its dry-run sizes and writes the report's
fields: so the script that waits for a GPU machine is known to work before one is lent."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 busy cores: spinning OpenMP threads cost 10x


def test_dry_run_on_cpu_writes_every_section(tmp_path, tiny_bundle):
    out = tmp_path / "report"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gpu_check.py"),
        "--dry-run",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--steps",
        "4",
        "--parity-steps",
        "2",
        "--bundle",
        f"dsta_mnv2_tiny={tiny_bundle}",
    ]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "gpu_check.json").read_text())
    assert rep["finished"] and rep["errors"] == [], rep["errors"]
    env = rep["environment"]
    assert (
        env["dry_run"]
        and env["device"] == "cpu"
        and env["torch"]
        and "CPUExecutionProvider" in env["ort_providers"]
    )

    # loss trajectories: the device's AMP (CPU bf16 here) against CPU fp32 from the same init and batches
    assert {p["model"] for p in rep["parity"]} == {"dsta_mnv2_tiny", "tar_vitpose_s_tiny"}
    for p in rep["parity"]:
        assert len(p["losses"]) == len(p["cpu_losses"]) == 2 and p["ok"], p
        assert p["max_rel_diff"] <= p["rtol"] and "bf16" in p["mode"]

    # throughput through the Trainer
    assert [t["model"] for t in rep["train"]] == ["dsta_mnv2_tiny", "tar_vitpose_s_tiny"]
    for t in rep["train"]:
        assert (
            t["steps"] == 4
            and t["samples_per_s"] > 0
            and math.isfinite(t["loss_last"])
            and t["precision"] == "fp32"
        )

    assert rep["ddp"] == {"ran": False, "why": "0 GPU(s): DDP over GPUs needs at least 2"}

    # every stage of the bundle at batch 1 and 8 on the providers this onnxruntime has (CPU here)
    (onnx,) = rep["onnx"]
    runs = {(r["stage"], r["batch"]): r for r in onnx["runs"]}
    assert set(runs) == {("frame", 1), ("frame", 8), ("temporal", 1), ("temporal", 8)}
    for r in runs.values():
        assert r["ms"] > 0 and r["got"] == ["CPUExecutionProvider"] and not r["fell_back"]
    assert any("CUDAExecutionProvider" in s["what"] for s in rep["skipped"])  # said, not silently left out

    md = (out / "gpu_check.md").read_text()
    for heading in (
        "Loss trajectory vs CPU fp32",
        "Training throughput",
        "## DDP",
        "## ONNX bundles",
        "## Skipped",
    ):
        assert heading in md


def test_the_shell_entry_point_picks_a_python_and_says_why(tmp_path):
    """No CUDA torch here: it says so in the report and still writes it (the CPU sections, tiny)."""
    out = tmp_path / "gc"
    env = (
        {**ENV, "EDGEPOSE_PYTHON": str(ROOT / ".venv" / "bin" / "python")}
        if (ROOT / ".venv").is_dir()
        else ENV
    )
    env.pop("OUT", None)
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "gpu_check.sh"),
            str(out),
            "--train-models",
            "tar_vitpose_s_tiny",
            "--steps",
            "2",
            "--skip",
            "parity",
            "onnx",
        ],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rep = json.loads((out / "gpu_check.json").read_text())
    assert rep["finished"] and rep["train"][0]["model"] == "tar_vitpose_s_tiny"
    if not rep["environment"]["cuda_available"]:
        assert "no Python here has a CUDA torch" in rep["environment"]["note"]
        assert rep["environment"]["dry_run"]
    assert "torch" in (out / "env.txt").read_text() and not (out / "work").exists()
