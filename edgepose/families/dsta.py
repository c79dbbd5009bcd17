"""DSTA: RLE regression over a frame window (no layer decay, no token reader as a teacher)."""

from ..quantization.scopes import Scope, ScopeChoice
from ..training.tasks import RLERegressionTask
from .base import Family

FAMILY = Family(
    name="dsta",
    title="DSTA",
    recipe="dsta",
    task=RLERegressionTask,
    float_scopes=ScopeChoice(
        candidates={
            "heads": (
                Scope("head_coord", why="coordinate regression head"),
                Scope("head_sigma", why="sigma/score head"),
            ),
            "fuse": (Scope("fuse", why="1x1 conv mixing temporal and spatial tokens per joint"),),
            "joint_decoder": (
                Scope("jfd", why="joint feature decoder: feature map -> 32-d token per joint"),
            ),
            "attention_scores": (
                Scope("spatial_blocks.*.attn", direct=True, why="q@k^T and attn@v"),
                Scope("temporal_blocks.*.attn", direct=True, why="q@k^T and attn@v"),
            ),
            "temporal_stage": (
                Scope(
                    "*",
                    stages=("temporal",),
                    why="the whole temporal stage: 0.002 of 0.297 GFLOPs per frame, so int8 saves "
                    "nothing there; quantised, it moved the shipped real-footage weights' keypoints "
                    "6.7 px (90th percentile, ONNX) / 8.3 px (OpenVINO) on real crops",
                ),
            ),
        },
        chosen=("heads", "fuse", "joint_decoder", "attention_scores", "temporal_stage"),
        measured="benchmarks/results/int8_report.md, section 'Float scopes: the measurement'; the "
        "temporal stage and the weight type on the real-footage weights: benchmarks/results/int8_real.md",
        # Measured on dsta_mnv2_coco's real-footage weights (benchmarks/results/int8_real.md; held-out
        # real frames, 13-joint COCO AP). Keeping a trunk block float did not recover the loss; avoiding
        # int16 saturation of u8 x s8 pair sums on this AVX2 CPU (no VNNI) did. ONNX: 7-bit weights in
        # the convolutions fed a signed input (s7_signed_inputs) keep the shipped weights within 0.3 AP
        # (85.1 -> 84.8); 7-bit in every non-depthwise conv (s7_dense, the previous weights' best: 82.4
        # -> 81.6) loses them 2.5, s8 everywhere 1.8. OpenVINO: NNCF's overflow fix on every layer
        # (previous weights 79.2 -> 82.0; its default fixes the first layer only). Speed unchanged.
        options={"weight_type": "s7_signed_inputs", "overflow_fix": "enable"},
    ),
)
