"""PAVE-Net: whole-frame set prediction (Hungarian matching, focal + RLE); int8 quantises everything."""

from ..training.pave_task import SetPredictionTask
from .base import Family

FAMILY = Family(name="pavenet", title="PAVE-Net", recipe="pave", task=SetPredictionTask)
