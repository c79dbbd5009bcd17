"""benchmarks/train_synthetic.py runs end to end at toy size and writes its table, JSON, plot and
shippable weights. It asserts the plumbing, not the benchmark's conclusions (tiny models trained
for a few steps learn little)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "train_synthetic.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train_synthetic")
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--work",
        str(tmp / "work"),
        "--results",
        str(tmp / "results"),
        "--scale",
        "tiny",
        "--videos",
        "3",
        "--frames",
        "4",
        "--frame-size",
        "128x96",
        "--input-size",
        "64x48",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--ship-weights",
        str(tmp / "weights"),
        "--ship-margin",
        "-100",
    ]  # toy models do not beat the mean pose: ship anyway to test the plumbing
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, proc


def test_writes_table_json_plot(smoke):
    tmp, proc = smoke
    res = json.loads((tmp / "results" / "train_synthetic.json").read_text())
    assert set(res["baselines"]) == {"posetrack17", "coco17"}
    assert set(res["baselines"]["posetrack17"]["recoverable_share"]) == {"occluded", "blurred"}
    assert "recoverable_share" not in res["baselines"]["coco17"]  # still images: no window
    expected = {
        "dsta_mnv2",
        "dsta_mnv2/collapsed",
        "tar_vitpose_s",
        "tar_vitpose_s/collapsed",
        "tar_vitpose_s/vitpose",
        "tar_vitpose_s/from-vitpose",
        "tar_vitpose_s/from-vitpose/collapsed",
        "sharpose_s",
        "sharpose_s/vit-init",
        "distilpose_s/no-teacher",
        "distilpose_s/gt-heatmaps",
        "distilpose_s/teacher",
    }
    assert set(res["runs"]) == expected
    for key, run in res["runs"].items():
        assert run["train"]["steps"] >= 1, key
        assert run["persons"] > 0
        for metric in ("pckh@0.5", "pck@0.2"):
            assert set(run[metric]) == {
                "all",
                "occluded",
                "not_occluded",
                "blurred",
                "not_blurred",
                "recoverable",
                "not_recoverable",
            }
            assert run[metric]["all"] is None or 0 <= run[metric]["all"] <= 100
        assert run["input_size"] == [64, 48]
    assert res["runs"]["dsta_mnv2/collapsed"]["collapse_window"] is True
    assert res["runs"]["distilpose_s/teacher"]["teacher"] == "tar_vitpose_s"
    vit_init = res["runs"]["sharpose_s/vit-init"]
    assert vit_init["init_from"] == "tar_vitpose_s"
    assert any(
        n.startswith("ViT encoder (") and "from the trained tar_vitpose_s" in n for n in vit_init["notes"]
    )
    vitpose, tar = res["runs"]["tar_vitpose_s/vitpose"], res["runs"]["tar_vitpose_s/from-vitpose"]
    assert (
        vitpose["single_frame"]
        and vitpose["frame_offsets"] == [0]
        and vitpose["recipe"] == "vitpose_s_synthetic"
    )
    assert tar["recipe"] == "tar_vitpose_finetune_synthetic" and tar["frame_offsets"] == [-1, 0, 1]
    assert vitpose["params_m"] < tar["params_m"]  # the ViTPose part alone
    assert vitpose["pckh@0.5_count"] == tar["pckh@0.5_count"]  # scored on the same joints, window splits too
    assert any(
        n.startswith("ViTPose encoder + decoder (") and "from the trained tar_vitpose_s/vitpose" in n
        for n in tar["notes"]
    )
    comp = res["comparisons"]
    pairs = {"dsta_mnv2", "tar_vitpose_s", "tar_vitpose_s/from-vitpose"}
    assert set(comp["b_window_vs_collapsed"]) == pairs and set(comp["b_neighbours_used"]) == pairs
    windows = {k for k, r in res["runs"].items() if "collapsed_at_test" in r}
    assert windows == pairs  # scored again with the current frame in every slot: window runs only
    assert set(comp["c_distillation"]) == {"teacher - no-teacher", "teacher - gt-heatmaps"}
    md = (tmp / "results" / "train_synthetic.md").read_text()
    assert "| dsta_mnv2/collapsed |" in md and "## (b)" in md and "## (c)" in md
    assert "| tar_vitpose_s/from-vitpose: window - current frame only | PCKh@0.5 |" in md
    png = (tmp / "results" / "train_synthetic.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "PCKh@.5" in proc.stdout  # the rich table


def test_finished_runs_scored_before_a_split_existed_are_scored_again(smoke):
    """A reused run whose saved result lacks a split is scored again from its checkpoint, once."""
    tmp, _ = smoke
    saved_path = tmp / "work" / "runs" / "tar_vitpose_s__vitpose" / "result.json"
    saved = json.loads(saved_path.read_text())
    want = dict(saved["result"]["pckh@0.5"])
    for metric in ("pckh@0.5", "pck@0.2"):
        for split in ("recoverable", "not_recoverable"):
            del saved["result"][metric][split]
    saved_path.write_text(json.dumps(saved))
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--work",
        str(tmp / "work"),
        "--results",
        str(tmp / "again"),
        "--scale",
        "tiny",
        "--videos",
        "3",
        "--frames",
        "4",
        "--frame-size",
        "128x96",
        "--input-size",
        "64x48",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--only",
        "tar_vitpose_s/vitpose",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "tar_vitpose_s/vitpose: scoring it again" in proc.stderr
    assert json.loads(saved_path.read_text())["result"]["pckh@0.5"] == want
    res = json.loads((tmp / "again" / "train_synthetic.json").read_text())
    assert (
        res["runs"]["tar_vitpose_s/vitpose"]["reused"]
        and res["runs"]["tar_vitpose_s/vitpose"]["single_frame"]
    )


def test_recoverable_joints_need_a_clean_neighbour_of_the_same_track():
    import numpy as np

    sys.path.insert(0, str(SCRIPT.parent))
    from train_synthetic import recoverable

    from edgepose.data.records import FrameRecord, PersonRecord
    from edgepose.data.topdown import Sample

    def person(track, occluded, blurred, visible=(1, 1, 1)):
        kp = np.zeros((3, 3), np.float32)
        kp[:, 2] = visible
        return PersonRecord(
            kp,
            None,
            "posetrack17",
            track_id=track,
            extra={"occluded": np.array(occluded), "blurred": np.array(blurred)},
        )

    def frame(i, *persons):
        return FrameRecord(i, f"{i}.jpg", Path(f"{i}.jpg"), list(persons))

    now = person(1, [1, 1, 0], [0, 0, 1])  # joints 0, 1 occluded, joint 2 blurred
    before = frame(0, person(1, [0, 1, 0], [0, 0, 1]), person(2, [0, 0, 0], [0, 0, 0]))  # joint 0 clean
    after = frame(2, person(1, [1, 1, 0], [0, 0, 0], visible=(1, 1, 0)))  # joint 2 clean but unlabelled
    current = frame(1, now)
    got = recoverable(Sample(clip=(before, current, after), current=1, person=now), 3)
    assert got.tolist() == [1.0, 0.0, 0.0]
    clamped = recoverable(Sample(clip=(current, current, after), current=1, person=now), 3)  # a video's start
    assert clamped.tolist() == [0.0, 0.0, 0.0]
    unknown = PersonRecord(np.ones((3, 3), np.float32), None, "posetrack17", track_id=1)
    assert np.isnan(
        recoverable(Sample(clip=(before, frame(1, unknown), after), current=1, person=unknown), 3)
    ).all()


def test_shipped_weights_load_back(smoke):
    from edgepose.zoo.pretrained import list_pretrained, load_pretrained

    tmp, _ = smoke
    names = list_pretrained(tmp / "weights")
    assert names == ["distilpose_s", "dsta_mnv2", "sharpose_s", "tar_vitpose_s"]
    model = load_pretrained("dsta_mnv2", tmp / "weights")
    assert model.input_size == (64, 48) and model.config["width"] == 0.25  # the tiny build, from the file


def test_set_changes_a_models_build():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import train_synthetic as bench
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert bench.parse_sets(["dsta_mnv2.jfd=pool", "dsta_mnv2.width=0.5", "tar_vitpose_s.depth=2"]) == {
        "dsta_mnv2": {"jfd": "pool", "width": 0.5},
        "tar_vitpose_s": {"depth": 2},
    }
    for bad in ("dsta_mnv2=1", "nope.width=1", "dsta_mnv2.width"):
        with pytest.raises(SystemExit, match="MODEL.KEY=VALUE"):
            bench.parse_sets([bad])


def test_only_runs_that_beat_the_mean_pose_ship():
    sys.path.insert(0, str(SCRIPT.parent))
    from train_synthetic import shippable

    def run(model, pckh, layout="posetrack17", collapse=False, single_frame=False):
        return {
            "model": model,
            "layout": layout,
            "collapse_window": collapse,
            "single_frame": single_frame,
            "pckh@0.5": {"all": pckh},
        }

    res = {
        "baselines": {"posetrack17": {"pckh@0.5": {"all": 47.0}}, "coco17": {"pckh@0.5": {"all": 47.0}}},
        "runs": {
            "dsta_mnv2": run("dsta_mnv2", 59.0),
            "dsta_mnv2/collapsed": run("dsta_mnv2", 70.0, collapse=True),
            "sharpose_s": run("sharpose_s", 49.0, "coco17"),
            "distilpose_s/a": run("distilpose_s", 54.0, "coco17"),
            "distilpose_s/b": run("distilpose_s", 64.0, "coco17"),
            "tar_vitpose_s": run("tar_vitpose_s", 60.0),
            "tar_vitpose_s/vitpose": run("tar_vitpose_s", 65.0, single_frame=True),
        },
    }
    keys, skipped = shippable(res)
    # best windowed run per model, +5 over the mean pose; a single-frame stage is no whole model
    assert sorted(keys) == ["distilpose_s/b", "dsta_mnv2", "tar_vitpose_s"]
    assert len(skipped) == 1 and skipped[0].startswith("sharpose_s: +2.00")
