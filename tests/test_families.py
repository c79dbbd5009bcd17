"""Model families: one object per zoo family, looked up by spec or name.

A dummy family defined in this module and registered by one line (``FAMILY_MODULES`` plus this
module) drives the training task lookup, the recipe, layer decay, the int8 float scopes and the
QAT loss mapping; every zoo family is registered and names a recipe that exists.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edgepose.families import DerivedInput, Family, families, get_family, last_stage, registry
from edgepose.quantization.scopes import Scope, ScopeChoice, choice_for, resolve
from edgepose.training.recipes import RECIPES, layer_decay, recipe_for
from edgepose.training.tasks import RLERegressionTask, build_task
from edgepose.zoo import create_model, get_spec, list_models

CALLS: list[str] = []  # what the dummy family's hooks saw


class DummyTask(RLERegressionTask):
    """DSTA's task with one option only QAT passes, so the test sees QAT took the family's options."""

    def __init__(self, spec, model, origin: str = "training", **options):
        super().__init__(spec, model, **options)
        CALLS.append(f"task:{origin}")


class StopQAT(Exception):
    """Raised by the dummy's QAT mapping once it has run: the test needs no backward or convert."""


def dummy_qat_outputs(outs: dict[str, dict]) -> dict:
    CALLS.append("qat_outputs")
    assert set(last_stage(outs)) >= {"coords", "sigma"}  # the stages' outputs came in
    raise StopQAT


FAMILY = Family(
    name="dummy_pose",
    title="DummyPose",
    recipe="distilpose",  # a recipe no DSTA model would get: proves where it came from
    task=DummyTask,
    layer_rule=(r"^spatial_blocks\.(\d+)\.", r"^backbone\."),
    float_scopes=ScopeChoice(
        candidates={"heads": (Scope("head_coord"), Scope("head_sigma")), "fuse": (Scope("fuse"),)},
        chosen=("fuse",),
    ),
    qat_outputs=dummy_qat_outputs,
    qat_options={"origin": "qat"},
    derived_inputs={"dummy_index": DerivedInput(lambda source, k: source["coords"][:, :k], {"op": "dummy"})},
    manifest_config=("depth",),
)


@pytest.fixture
def dummy(monkeypatch):
    """The dummy family registered (one registry line), and unregistered after the test."""
    monkeypatch.setattr(registry, "FAMILY_MODULES", (*registry.FAMILY_MODULES, __name__))
    registry.refresh()
    CALLS.clear()
    yield dataclasses.replace(get_spec("dsta_mnv2_tiny"), name="dummy_pose_tiny", family="dummy_pose")
    monkeypatch.undo()
    registry.refresh()


def test_every_zoo_family_is_registered_with_a_recipe():
    known = families()
    assert {get_spec(n).family for n in list_models(include_variants=True)} == set(known)
    for name, family in known.items():
        assert family.name == name and get_family(name) is family
        assert family.recipe in RECIPES and f"{family.recipe}_synthetic" in RECIPES
    assert [n for n, f in known.items() if f.accepts_teacher] == ["distilpose"]
    assert get_family(get_spec("sharpose_s_tiny")) is known["sharpose"]


def test_unknown_family_fails_with_one_clear_line():
    with pytest.raises(KeyError, match="unknown model family 'nope'") as err:
        get_family("nope")
    assert "\n" not in str(err.value) and "FAMILY_MODULES" in str(err.value)
    spec = dataclasses.replace(get_spec("dsta_mnv2_tiny"), family="nope")
    with pytest.raises(KeyError, match="unknown model family"):
        recipe_for(spec)


def test_a_dummy_family_drives_task_recipe_decay_and_float_scopes(dummy):
    assert get_family(dummy) is FAMILY and "dummy_pose" in families()
    model = create_model("dsta_mnv2_tiny")
    task = build_task(dummy, model)
    assert type(task) is DummyTask and CALLS == ["task:training"]
    assert recipe_for(dummy).name == "distilpose"
    assert recipe_for(dummy, synthetic=True).name == "distilpose_synthetic"
    scale = layer_decay(model, "dummy_pose", 0.5)
    deepest = max(
        int(n.split(".")[1]) for n, _ in model.named_parameters() if n.startswith("spatial_blocks.")
    )
    assert scale("backbone.x") == 0.5 ** (deepest + 2) and scale("head_coord.weight") == 1.0
    assert choice_for("dummy_pose") is FAMILY.float_scopes
    assert [str(s) for s in resolve("dummy_pose").scopes] == ["fuse"]
    assert [str(s) for s in resolve("dummy_pose", ["heads"]).scopes] == ["head_coord", "head_sigma"]


def test_qat_takes_the_dummy_familys_options_and_outputs(dummy, tmp_path):
    pytest.importorskip("torchao")
    from edgepose.data.synth_dataset import write_dataset
    from edgepose.data.synthetic import SynthConfig
    from edgepose.quantization.calibration import open_data
    from edgepose.quantization.qat import finetune

    data = tmp_path / "data"
    write_dataset(
        data, SynthConfig.preset("easy", width=256, height=192, frames=6), videos=2, seed=3, split_val=0.5
    )
    torch.manual_seed(0)
    model = create_model("dsta_mnv2_tiny").eval()
    train = open_data(data, dummy).dataset("train", train=True)
    with pytest.raises(StopQAT):
        finetune(model, dummy, train, resolve("dummy_pose"), max_steps=1, batch_size=2)
    assert CALLS == ["task:qat", "qat_outputs"]


def test_the_dummy_family_is_gone_after_the_test():
    with pytest.raises(KeyError, match="unknown model family 'dummy_pose'"):
        get_family("dummy_pose")


def test_export_extras_come_from_the_family_object(dummy):
    """The exporter's manifest extras (config entries, derived-input recipes) are the family's."""
    from types import SimpleNamespace

    from edgepose.export.exporter import _family_extras

    def artifacts(*names):
        return {"s": SimpleNamespace(inputs=[SimpleNamespace(name=n) for n in names])}

    cfg = {"depth": 2, "dim": 16}
    assert _family_extras("dummy_pose", cfg, artifacts("image", "dummy_index")) == {
        "depth": 2,
        "derived_inputs": {"dummy_index": {"op": "dummy"}},
    }
    assert _family_extras("dummy_pose", cfg, artifacts("image")) == {"depth": 2}  # no stage takes it
    assert _family_extras("not_a_family", cfg, artifacts("dummy_index")) == {}
    sharpose = get_family("sharpose")
    assert set(sharpose.derived_inputs) == {"patch_index"} and sharpose.manifest_config == (
        "quality_threshold",
    )


def test_sharpose_patch_index_is_the_same_from_torch_and_numpy():
    """Calibration and evaluation feed runtime arrays, verification torch tensors: one rule."""
    make = get_family("sharpose").derived_inputs["patch_index"].make
    rel = torch.tensor([[0.1, 0.9, 0.5, 0.85, 0.2], [0.3, 0.0, 0.7, 0.6, 0.8]])
    got = make({"relevance": rel.numpy()}, 3)
    assert got.dtype.name == "int64" and (got == make({"relevance": rel}, 3).numpy()).all()
