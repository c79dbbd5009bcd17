"""benchmarks/mix_real.py's bookkeeping: where each arm trains, and a scored checkpoint not scored again
unless its bytes or the labels change."""

import importlib.util
from pathlib import Path

import pytest

from edgepose.bench.heldout import Entry

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mix_real.py"


@pytest.fixture(scope="module")
def mix_real():
    spec = importlib.util.spec_from_file_location("mix_real", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_arm_directories(mix_real, tmp_path):
    assert mix_real.arm_dir(tmp_path, "mixed", 0) == tmp_path / "dsta-real-mixed"  # the first runs' names
    assert mix_real.arm_dir(tmp_path, "control", 1) == tmp_path / "dsta-real-control-s1"
    assert mix_real.arm_dir(tmp_path, "mixed", 1, "flow") == tmp_path / "dsta-real-mixed-flow-s1"


def test_a_scored_checkpoint_is_not_scored_again(mix_real, tmp_path, monkeypatch):
    calls = []

    def fake_score(entry, labels, progress=print):
        calls.append((entry.weights, str(labels)))
        return {"AP": 50.0 + len(calls), "by_source": {"v": 1.0}, "oks": None, "speed": None}

    monkeypatch.setattr(mix_real, "score", fake_score)
    weights, labels, photos = tmp_path / "last.pt", tmp_path / "labels", tmp_path / "photos"
    weights.write_bytes(b"one")
    entry = Entry("arm", "dsta_mnv2_coco", str(weights), collapse=False)
    first = mix_real.cached_score(entry, labels, progress=None)
    assert (
        mix_real.cached_score(entry, labels, progress=None) == first == {"AP": 51.0, "by_source": {"v": 1.0}}
    )
    assert len(calls) == 1 and (tmp_path / "last.scores.json").is_file()
    assert mix_real.cached_score(entry, photos, progress=None)["AP"] == 52.0  # other labels: scored
    weights.write_bytes(b"two")  # retrained in place: scored again
    assert mix_real.cached_score(entry, labels, progress=None)["AP"] == 53.0
    assert len(calls) == 3
