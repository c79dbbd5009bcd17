"""The bundle cache behind ``edgepose run --model`` and the benchmarks: export once, reuse, remember
failures."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from edgepose.bench.bundles import bundle_key, cached_bundle
from edgepose.core.manifest import read_manifest
from edgepose.export.formats import ExportError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_exports_once_then_reuses(cache):
    said = []
    path = cached_bundle("dsta_mnv2_tiny", progress=said.append)
    assert path.parent == cache / "bundles" and any("exporting" in s for s in said)
    m = read_manifest(path)
    assert m.model == "dsta_mnv2_tiny" and all(v.passed for v in m.verification)
    stamp = (path / "manifest.json").stat().st_mtime_ns
    said.clear()
    assert cached_bundle("dsta_mnv2_tiny", frames=3, progress=said.append) == path  # 3 is the default window
    assert (
        said == [f"using the cached bundle {path}"] and (path / "manifest.json").stat().st_mtime_ns == stamp
    )


def test_key_separates_what_the_graph_depends_on():
    base = bundle_key("dsta_mnv2_tiny")
    assert base == bundle_key("dsta_mnv2_tiny", frames=3)
    others = {
        bundle_key("dsta_mnv2_tiny", frames=5),
        bundle_key("dsta_mnv2_tiny", format="openvino"),
        bundle_key("dsta_mnv2_tiny", precision="fp16"),
        bundle_key("dsta_mnv2_tiny", init_seed=1),
    }
    assert base not in others and len(others) == 4


def test_a_damaged_cached_bundle_is_exported_again(cache):
    path = cached_bundle("distilpose_s_tiny")
    (path / "model.onnx").unlink()
    again = cached_bundle("distilpose_s_tiny")
    assert again == path and (path / "model.onnx").is_file()


def test_failures_are_remembered_until_export_changes(cache):
    with pytest.raises(ExportError, match="precision"):
        cached_bundle("dsta_mnv2_tiny", precision="fp8")
    with pytest.raises(ExportError, match="cached failure"):
        cached_bundle("dsta_mnv2_tiny", precision="fp8")
    with pytest.raises(ExportError) as e:
        cached_bundle("dsta_mnv2_tiny", precision="fp8", refresh=True)
    assert "cached failure" not in str(e.value)
