"""The top-level API: every public name resolves, and the device side loads without torch."""

import subprocess
import sys

import edgepose


def test_every_public_name_resolves():
    for name in edgepose.__all__:
        if name != "__version__":
            assert callable(getattr(edgepose, name)), name


def test_device_side_imports_no_torch():
    code = (
        "import sys, edgepose; edgepose.load; edgepose.PoseEstimator; edgepose.VideoPipeline; "
        "import edgepose.quantization; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_export_is_callable_whichever_import_came_first():
    code = (
        "import edgepose.export.formats, edgepose, edgepose.export.to_onnx as t; "
        "assert callable(edgepose.export) and edgepose.export.export is not None and t.convert; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
