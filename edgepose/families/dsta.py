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
        # Measured on the shipped dsta_mnv2_coco weights (benchmarks/results/int8_real.md; held-out
        # real frames, 13-joint COCO AP, fp32 82.4). Keeping a trunk block float did not recover the
        # loss (OpenVINO: conv1, layer1-3 each moved val AP < 0.2; ONNX: conv1 +0.8 held-out AP);
        # avoiding int16 saturation of u8 x s8 pair sums on this AVX2 CPU (no VNNI) did: ONNX 80.1 ->
        # 81.6 with 7-bit weights in every non-depthwise conv (7-bit in the depthwise ones too: 78.0),
        # OpenVINO 79.2 -> 82.0 with NNCF's overflow fix on every layer (default: first layer only).
        # Speed unchanged: ms per person 0.70x -> 0.68x of fp32 (ONNX), 0.93x -> 0.87x (OpenVINO).
        options={"weight_type": "s7_dense", "overflow_fix": "enable"},
    ),
)
