"""The model zoo: architectures, their registry, costs and checkpoint loading."""

from .base import PoseModel, Stage
from .checkpoints import CheckpointError, load_weights, save_checkpoint
from .registry import create_model, get_spec, list_models
from .spec import ModelSpec, PaperNumbers

__all__ = [
    "CheckpointError",
    "ModelSpec",
    "PaperNumbers",
    "PoseModel",
    "Stage",
    "create_model",
    "get_spec",
    "list_models",
    "load_weights",
    "save_checkpoint",
]
