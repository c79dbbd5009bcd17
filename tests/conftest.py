"""Shared test set-up: small thread pools (CI has 2 cores) and the slow-test switch."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # the device side is tested without torch too
    torch = None


def pytest_collection_modifyitems(config, items):
    if os.environ.get("EDGEPOSE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set EDGEPOSE_SLOW=1 to run full-size tests")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A dsta_mnv2_tiny ONNX bundle (seed 0, unverified), exported once for the tests that only read
    it (run, predict, interrupts); tests that damage a bundle copy it first."""
    import torch

    from edgepose.export import export
    from edgepose.zoo import create_model

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    torch.manual_seed(0)
    export(
        create_model("dsta_mnv2_tiny").eval(),
        out=out,
        format="onnx",
        onnx_exporter="torchscript",
        verify=False,
    )
    return out
