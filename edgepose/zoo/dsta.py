"""DSTA (Decoupled Space-Time Aggregation, CVPR 2024) with a MobileNet-V2 trunk.

Pipeline (the paper; official ``posetimation/zoo/DSTA/dsta_std_resnet50.py``): a
CNN trunk and a joint-centric feature decoder (JFD) turn every frame into one
32-dim token per joint. Spatial aggregation runs 4 transformer blocks over the
joints of each body part (head, two arms, two legs: 5 groups of 3) in the
current frame; temporal aggregation runs 4 blocks over each joint's tokens
across the window. A learned 1x1 conv mixes the two per joint, and two
LayerNorm+Linear heads give the coordinates (x/W, y/H of the crop) and a
sigmoid sigma; ``scores = 1 - mean(sigma)`` as the official code reports. The
RLE RealNVP flow is a training loss, not part of the model (official ``flow.*``
keys are returned as ignored).

Stages (the ring buffer keeps the tiny per-frame token set, not feature maps):

* ``frame``: ``image`` (B, 3, 256, 192) -> ``tokens`` (B, 17, 32): trunk + JFD.
* ``temporal``: ``tokens`` (B, T, 17, 32), time order, current frame at the
  index of offset 0 -> ``coords`` (B, 17, 2), ``sigma`` (B, 17, 2), ``scores``
  (B, 17). T = 3 (offsets -1, 0, 1) or ``frames=5`` (-2..2).

Joint decoder. No MobileNet-V2 DSTA exists officially. The official ResNet-50
code pools the last feature map globally and applies one linear layer (output
divided by the pooled vector's L2 norm, RLE's ``Linear(norm=True)``) to get
J x 32 values; on a 1280-channel MobileNet-V2 that layer alone is 0.70M
parameters and the model 2.99M, against the paper's 2.4M. The appendix (§A)
describes the JFD the authors use on HRNet: a 1x1 conv with one kernel per
joint, then each joint's flattened map through a shared linear layer to 32
dims; on MobileNet-V2's 8x6 map that gives 2.32M (2.37M with the training-only
flow), matching the paper. ``jfd="conv"`` (the default for ``compat="paper"``)
is that decoder; ``jfd="pool"`` is the official code's.

``compat="official"`` reproduces the official forward so a checkpoint in the
official layout gives the official outputs:

1. Input: the official model takes the window on channels, (B, 3T, H, W) =
   previous, current, next frame (or (1, T, 3, H, W) at batch 1, its demo's
   path). ``forward_official`` accepts both; ``forward`` and the stages take
   (B, T, 3, H, W) in every mode.
2. Joint order: the official tokens are in body-part order (head_top, nose,
   head_bottom, then shoulder/elbow/wrist and hip/knee/ankle per side), with two
   spare tokens, and its ``joint_ordor`` gathers them into the 17 output slots,
   copying the head_top token into head_top and both (never labelled) ear slots
   while the two spare tokens are computed and never used. The paper mode gives
   every slot its own token (the spare tokens become the ear slots' tokens;
   tokens outside the 5 groups skip the spatial blocks, as the spare ones do in
   the official code). The checkpoint conversion permutes the official decoder's
   output rows into slot order, so the modes differ only in the ear slots.
3. ``jfd="auto"`` resolves to the official pooled decoder.

The official checkpoint's trunk is assumed under ``preact.`` with mmpose's
MobileNet-V2 names (the official ResNet trunk sits under ``preact.``; the
authors' code base builds on mmpose).

Layouts. The paper benchmarks PoseTrack, so ``layout="posetrack17"`` (DCPose's
slots) is the default and the only layout official checkpoints load into (their
``joint_ordor`` is PoseTrack's). ``layout="coco17"`` is the same network with COCO's
names on the slots: both layouts hold the 12 body joints in slots 5-16 and head
joints in slots 0-4, and the COCO build groups slots (2, 0, 1) (right_eye, nose,
left_eye) where PoseTrack groups (head_top, nose, head_bottom), leaving the ears
(slots 3-4) outside the spatial blocks as before. So both builds compute the same
function slot for slot, and only the names (training labels, flip pairs, exported
keypoint names) differ.

``pad="tf"`` builds the trunk with TensorFlow's padding (see
``layers/mobilenet_v2.py``), which a Keras trunk's weights need (MoveNet's,
``zoo/movenet_trunk.py``); the default is mmpose's, as official checkpoints expect.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.keypoints import POSETRACK17, get_layout
from .base import PoseModel
from .layers.mobilenet_v2 import MobileNetV2
from .layers.timm_vit_block import Block
from .resnet import RESNET50_DEPTHS, ResNet
from .spec import ModelSpec, PaperNumbers

COMPAT_MODES = ("paper", "official")
FRAME_OFFSETS = {3: (-1, 0, 1), 5: (-2, -1, 0, 1, 2)}
LAYOUT = POSETRACK17

# Body parts for the spatial blocks, in the official token order (head_top first, as its joint_ordor shows).
SPATIAL_GROUPS = (
    ("head_top", "nose", "head_bottom"),
    ("left_shoulder", "left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow", "right_wrist"),
    ("left_hip", "left_knee", "left_ankle"),
    ("right_hip", "right_knee", "right_ankle"),
)
# Groups per layout: the COCO head group takes the slots of PoseTrack's (see the module docstring).
SPATIAL_GROUPS_BY_LAYOUT = {
    "posetrack17": SPATIAL_GROUPS,
    "coco17": (("right_eye", "nose", "left_eye"),) + SPATIAL_GROUPS[1:],
}
OFFICIAL_LAYOUT = LAYOUT.name
# Official facts: the token order behind ``joint_ordor`` and ``joint_ordor`` itself (output slot -> token).
OFFICIAL_TOKEN_NAMES = tuple(n for g in SPATIAL_GROUPS for n in g) + ("left_ear", "right_ear")
OFFICIAL_JOINT_ORDER = (1, 2, 0, 0, 0, 3, 6, 4, 7, 5, 8, 9, 12, 10, 13, 11, 14)

GROUP_INDEX = tuple(LAYOUT.index(n) for g in SPATIAL_GROUPS for n in g)
REST_INDEX = tuple(i for i in range(len(LAYOUT)) if i not in GROUP_INDEX)
# Our slot j holds the official token OFFICIAL_TOKEN_OF_SLOT[j].
OFFICIAL_TOKEN_OF_SLOT = tuple(OFFICIAL_TOKEN_NAMES.index(n) for n in LAYOUT.names)
# compat="official": output slot s reads our token OFFICIAL_OUT_INDEX[s] (ears read head_top).
OFFICIAL_OUT_INDEX = tuple(LAYOUT.index(OFFICIAL_TOKEN_NAMES[k]) for k in OFFICIAL_JOINT_ORDER)

# Official state-dict prefix -> ours. Everything under a TRAINING_ONLY prefix is dropped on load.
OFFICIAL_PREFIXES = (
    ("preact.", "trunk."),
    ("fc_coord.linear.", "jfd.fc."),
    ("Spatial_pos_embed", "spatial_pos"),
    ("Spatial_blocks.", "spatial_blocks."),
    ("Spatial_norm.", "spatial_norm."),
    ("blocks.", "temporal_blocks."),
    ("Temporal_pos_embed", "temporal_pos"),
    ("Temporal_norm.", "temporal_norm."),
    ("weighted_mean.", "fuse."),
    ("head_coord.", "head_coord."),
    ("head_sigma.", "head_sigma."),
)
TRAINING_ONLY = ("flow.",)


def _rename(key: str, table) -> str | None:
    for src, dst in table:
        if key.startswith(src):
            return dst + key[len(src) :]
    return None


class JointConvDecoder(nn.Module):
    """Appendix §A's JFD: a 1x1 conv gives one map per joint; one shared linear maps each flattened map
    to that joint's token."""

    def __init__(self, cin: int, joints: int, dim: int, map_size: tuple[int, int]):
        super().__init__()
        self.map_size = tuple(map_size)
        self.conv = nn.Conv2d(cin, joints, 1)
        self.ffn = nn.Linear(map_size[0] * map_size[1], dim)
        nn.init.normal_(self.conv.weight, std=0.001)  # the official init for every head conv
        nn.init.zeros_(self.conv.bias)
        nn.init.zeros_(self.ffn.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if tuple(features.shape[-2:]) != self.map_size:
            raise ValueError(
                f"joint decoder was built for a {self.map_size} feature map, got "
                f"{tuple(features.shape[-2:])}: the input size must match the model's input_size"
            )
        return self.ffn(self.conv(features).flatten(2))


class JointPoolDecoder(nn.Module):
    """The official code's JFD: global average pool, then ``(p @ W^T) / ||p|| + b`` reshaped to (J, dim)."""

    def __init__(self, cin: int, joints: int, dim: int):
        super().__init__()
        self.joints, self.dim = joints, dim
        self.fc = nn.Linear(cin, joints * dim)
        nn.init.xavier_uniform_(self.fc.weight, gain=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        norm = torch.linalg.vector_norm(pooled, dim=1, keepdim=True)
        out = pooled @ self.fc.weight.t() / norm + self.fc.bias
        return out.reshape(-1, self.joints, self.dim)


class DSTA(PoseModel):
    """DSTA-MobileNet-V2; see the module docstring for stages and the ``compat``/``jfd`` options."""

    codec = "regression"
    STAGES = {
        "frame": (("image",), ("tokens",)),
        "temporal": (("tokens",), ("coords", "sigma", "scores")),
    }

    @classmethod
    def frame_offsets_for(cls, frames: int) -> tuple[int, ...]:
        return FRAME_OFFSETS[frames]

    def __init__(
        self,
        input_size: tuple[int, int] = (256, 192),
        frames: int = 3,
        compat: str = "paper",
        jfd: str = "auto",
        layout: str = OFFICIAL_LAYOUT,
        pad: str = "torch",
        width: float = 1.0,
        last_channels: int | None = None,
        dim: int = 32,
        depth: int = 4,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.1,
        trunk: str = "mnv2",
        resnet_depths: tuple[int, ...] = RESNET50_DEPTHS,
        resnet_width: int = 64,
    ):
        if frames not in FRAME_OFFSETS:
            raise ValueError(f"DSTA supports frames in {sorted(FRAME_OFFSETS)} (window -T..T), got {frames}")
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        if jfd == "auto":
            jfd = "pool" if compat == "official" else "conv"
        if jfd not in ("conv", "pool"):
            raise ValueError(
                f"jfd must be 'auto', 'conv' (paper appendix) or 'pool' (official code), got {jfd!r}"
            )
        if layout not in SPATIAL_GROUPS_BY_LAYOUT:
            raise ValueError(f"DSTA layouts are {sorted(SPATIAL_GROUPS_BY_LAYOUT)}, got {layout!r}")
        if compat == "official" and layout != OFFICIAL_LAYOUT:
            raise ValueError(
                f"compat='official' reproduces the official {OFFICIAL_LAYOUT} joint order; layout {layout!r} "
                "has no official counterpart"
            )
        lay = get_layout(layout)
        super().__init__(len(lay), input_size, self.frame_offsets_for(frames))
        self.compat, self.jfd_kind, self.dim, self.layout = compat, jfd, dim, layout
        self.current = self.frame_offsets.index(0)
        joints = self.num_joints

        if trunk not in ("mnv2", "r50"):
            raise ValueError(f"DSTA trunks are 'mnv2' and 'r50' (the official ResNet-50), got {trunk!r}")
        self.trunk_kind = trunk
        if trunk == "r50":  # torchvision's layout, as the official ``preact`` ResNet; C5 only
            self.trunk = ResNet(tuple(resnet_depths), resnet_width, (3,))
            trunk_channels, map_size = self.trunk.out_channels[-1], ResNet.output_sizes(self.input_size)[-1]
        else:
            self.trunk = MobileNetV2(width, last_channels, pad, self.input_size)
            trunk_channels, map_size = self.trunk.out_channels, MobileNetV2.output_size(self.input_size)
        if jfd == "conv":
            self.jfd = JointConvDecoder(trunk_channels, joints, dim, map_size)
        else:
            self.jfd = JointPoolDecoder(trunk_channels, joints, dim)

        groups = SPATIAL_GROUPS_BY_LAYOUT[layout]
        group_size = len(groups[0])
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.spatial_pos = nn.Parameter(torch.zeros(group_size, dim))
        self.spatial_blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, True, r, 1e-6) for r in rates)
        self.spatial_norm = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_pos = nn.Parameter(torch.zeros(1, self.num_frames, dim))
        self.temporal_blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, True, r, 1e-6) for r in rates)
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        self.fuse = nn.Conv2d(2, 1, 1)  # per-joint weighted mean of (temporal, spatial)
        self.head_coord = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        self.head_sigma = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2))
        self._init_head()

        self.group_size = group_size
        group_index = tuple(lay.index(n) for g in groups for n in g)
        rest_index = tuple(i for i in range(joints) if i not in group_index)
        self.register_buffer("group_index", torch.tensor(group_index), persistent=False)
        self.register_buffer("rest_index", torch.tensor(rest_index), persistent=False)
        order = group_index + rest_index
        ungroup = torch.tensor([order.index(j) for j in range(joints)])
        self.register_buffer("ungroup_index", ungroup, persistent=False)
        out = OFFICIAL_OUT_INDEX if compat == "official" else tuple(range(joints))
        self.register_buffer("out_index", torch.tensor(out), persistent=False)

    def _init_head(self) -> None:
        """The official init: fusion conv N(0, 0.001), Linear biases 0, Linear weights PyTorch's default."""
        nn.init.normal_(self.fuse.weight, std=0.001)
        nn.init.zeros_(self.fuse.bias)
        for part in (self.spatial_blocks, self.temporal_blocks, self.head_coord, self.head_sigma):
            for m in part.modules():
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    # ---- stages -------------------------------------------------------------------------------
    def forward_frame(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(image)
        if isinstance(features, tuple):  # the ResNet trunk returns its requested stages
            features = features[-1]
        return {"tokens": self.jfd(features)}

    def forward_temporal(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t, j, c = tokens.shape
        if (t, j, c) != (self.num_frames, self.num_joints, self.dim):
            raise ValueError(
                f"temporal stage expects tokens (B, {self.num_frames}, {self.num_joints}, {self.dim}), "
                f"got {tuple(tokens.shape)}"
            )
        current = tokens[:, self.current]

        # Spatial: joints of one body part attend to each other in the current frame.
        groups = current.index_select(1, self.group_index).reshape(-1, self.group_size, c) + self.spatial_pos
        for blk in self.spatial_blocks:
            groups = blk(groups)
        groups = self.spatial_norm(groups).reshape(b, -1, c)
        spatial = torch.cat([groups, current.index_select(1, self.rest_index)], 1)
        spatial = spatial.index_select(1, self.ungroup_index)  # back to slot order

        # Temporal: each joint attends over its own tokens in the window.
        seq = tokens.transpose(1, 2).reshape(b * j, t, c) + self.temporal_pos
        for blk in self.temporal_blocks:
            seq = blk(seq)
        temporal = self.temporal_norm(seq[:, self.current]).reshape(b, j, c)

        fused = self.fuse(torch.stack([temporal, spatial], 1)).squeeze(1).index_select(1, self.out_index)
        coords = self.head_coord(fused)
        sigma = self.head_sigma(fused).sigmoid()
        return {"coords": coords, "sigma": sigma, "scores": 1.0 - sigma.mean(-1)}

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T, 3, H, W) in time order -> codec outputs of the frame at offset 0."""
        b, t = frames.shape[:2]
        tokens = self.forward_frame(frames.flatten(0, 1))["tokens"]
        return self.forward_temporal(tokens.reshape(b, t, *tokens.shape[1:]))

    def forward_official(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The official input convention: (B, 3T, H, W) frames on channels in time order, or (1, T, 3, H, W).

        With ``compat="official"`` and an official checkpoint this is the official forward.
        """
        if x.dim() == 5:
            return self.forward(x)
        if x.dim() != 4 or x.shape[1] != 3 * self.num_frames:
            raise ValueError(
                f"forward_official expects (B, {3 * self.num_frames}, H, W) (the {self.num_frames} frames' "
                f"RGB on channels, oldest first) or (B, {self.num_frames}, 3, H, W); got {tuple(x.shape)}"
            )
        return self.forward(x.reshape(x.shape[0], self.num_frames, 3, *x.shape[2:]))

    def example_inputs(self, stage: str, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        self.stage_io(stage)
        g = torch.Generator().manual_seed(seed)
        if stage == "frame":
            return {"image": torch.randn(batch, 3, *self.input_size, generator=g)}
        return {"tokens": torch.randn(batch, self.num_frames, self.num_joints, self.dim, generator=g)}

    # ---- official checkpoints -----------------------------------------------------------------
    def official_key_map(self) -> dict[str, str]:
        """Official state-dict key -> our key, for every key of this model."""
        back = tuple((dst, src) for src, dst in OFFICIAL_PREFIXES)
        table = {}
        for key in self.state_dict():
            official = _rename(key, back)
            if official is None:
                raise KeyError(f"{key} has no counterpart in the official DSTA layout")
            table[official] = key
        return table

    def convert_official_state(self, state):
        from .checkpoints import CheckpointError, few_keys

        keys = list(state)
        if not any(k.startswith(("Spatial_blocks.", "weighted_mean.")) for k in keys):
            raise CheckpointError(
                "not an official DSTA checkpoint: expected keys under "
                + ", ".join([p for p, _ in OFFICIAL_PREFIXES] + list(TRAINING_ONLY))
                + f" (zgspose/DSTA); found {few_keys(keys, 6)}"
            )
        if self.layout != OFFICIAL_LAYOUT:
            name = getattr(self, "spec_name", type(self).__name__)
            raise CheckpointError(
                f"official DSTA checkpoints are in the {OFFICIAL_LAYOUT} layout (their joint_ordor); {name} is "
                f"{self.layout}: load it into dsta_mnv2 (or a model built with layout='{OFFICIAL_LAYOUT}')"
            )
        if self.jfd_kind != "pool":
            raise CheckpointError(
                "the official DSTA layout uses the pooled joint decoder (fc_coord.linear.*); this model was "
                "built with jfd='conv'. Build it with compat='official' or jfd='pool' to load the checkpoint."
            )
        ignored = sorted(k for k in keys if k.startswith(TRAINING_ONLY))
        expected = self.official_key_map()
        own = self.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in keys if k not in expected and k not in ignored]
        shapes = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[v].shape)}"
            for k, v in expected.items()
            if k in state and tuple(state[k].shape) != tuple(own[v].shape)
        ]
        problems = []
        if missing:
            problems.append(f"missing keys: {few_keys(missing, 6)}")
        if unexpected:
            problems.append(f"unexpected keys: {few_keys(unexpected, 6)}")
        if shapes:
            frames = any(s.startswith("Temporal_pos") for s in shapes)
            hint = f" (this model has {self.num_frames} frames)" if frames else ""
            problems.append("mis-shaped keys: " + "; ".join(shapes[:6]) + hint)
        if problems:
            name = getattr(self, "spec_name", type(self).__name__)
            raise CheckpointError(
                f"official DSTA checkpoint does not fit model {name}: " + " | ".join(problems)
            )

        converted = {ours: state[official] for official, ours in expected.items()}
        perm = torch.tensor(OFFICIAL_TOKEN_OF_SLOT)
        w, bias = converted["jfd.fc.weight"], converted["jfd.fc.bias"]
        j, c = self.num_joints, self.dim
        converted["jfd.fc.weight"] = w.reshape(j, c, -1)[perm].reshape(j * c, -1)
        converted["jfd.fc.bias"] = bias.reshape(j, c)[perm].reshape(-1)
        return converted, ignored


_FULL = dict(
    input_size=(256, 192),
    frames=3,
    compat="paper",
    jfd="auto",
    layout=OFFICIAL_LAYOUT,
    pad="torch",
    width=1.0,
    last_channels=1280,
    dim=32,
    depth=4,
    heads=8,
    mlp_ratio=2.0,
    drop_path=0.1,
)
_TINY = {
    **_FULL,
    "input_size": (64, 48),
    "width": 0.25,
    "last_channels": 64,
    "dim": 16,
    "depth": 1,
    "heads": 4,
}

# COCO-17 builds for weights distilled from COCO-17 teachers; TF padding so MoveNet's trunk loads exactly.
_COCO = {"layout": "coco17", "pad": "tf"}

_PAPER = PaperNumbers(
    params_m=2.4,
    gflops={"frame": 0.35},
    accuracy="71.0 mAP PoseTrack17 val (appendix Table 9: MobileNet-V2, 256x192, 2 auxiliary frames)",
    note=(
        "Params: 2.32M with the appendix's conv+linear joint decoder (2.37M counting the training-only "
        "RealNVP flow); the official ResNet code's pooled linear decoder would give 2.99M on MobileNet-V2's "
        "1280 channels. Frame GFLOPs: the standard MobileNet-V2 at 256x192 is 0.293 GMACs of conv (0.294 "
        "with the decoder), 0.31 counting BatchNorm/ReLU6 elements as mmcv does (mmpose lists ~0.31 for "
        "the same trunk); no counting we know gives the paper's 0.35. Head: the paper prints 0.01 (two "
        "decimals) for the whole DSTA head; our temporal stage is 0.0022 GMACs and the joint decoder "
        "~0.001 per frame, too small to check against a two-decimal figure, so it is not keyed here."
    ),
)

_SUMMARY = (
    "DSTA regression pose model: MobileNet-V2 + joint-centric decoder per frame (17x32 tokens into the "
    "ring buffer), decoupled spatial (body-part) and temporal (per-joint) transformer aggregation, "
    "coords+sigma heads."
)

# ResNet-50: the official DSTA_STD_ResNet50 (its ``preact`` trunk), so its published checkpoint loads.
_R50 = {**_FULL, "compat": "official", "trunk": "r50", "resnet_depths": RESNET50_DEPTHS, "resnet_width": 64}
_R50_TINY = {**_TINY, "compat": "official", "trunk": "r50", "resnet_depths": (1, 1, 1, 1), "resnet_width": 8}
_PAPER_R50 = PaperNumbers(
    params_m=24.6,
    gflops={"frame": 4.1},
    accuracy="78.6 mAP PoseTrack17 val (appendix Table 8: ResNet-50, 256x192, 2 auxiliary frames)",
    note=(
        "The official DSTA_STD_ResNet50 (compat='official': pooled normalised linear joint decoder, official "
        "joint_ordor); params include the training-only RealNVP flow in the paper's count (ours excludes it, "
        "0.05M). Head GFLOPs: the paper's 0.01 is below what two decimals can check, so it is not keyed."
    ),
)


def _spec(name: str, config: dict, **kw) -> ModelSpec:
    """A DSTA spec; stages, codec, input size, layout and window are the class's for ``config``."""
    return ModelSpec(name=name, family="dsta", builder=DSTA, config=config, **kw)


SPECS = (
    _spec("dsta_mnv2", _FULL, paper=_PAPER, summary=_SUMMARY),
    _spec(
        "dsta_mnv2_tiny",
        _TINY,
        paper=PaperNumbers(note="Test variant: the same code at width 0.25, 16-dim tokens, depth 1, 64x48"),
        summary="Small DSTA for tests: " + _SUMMARY,
        variant_of="dsta_mnv2",
    ),
    _spec(
        "dsta_mnv2_coco",
        {**_FULL, **_COCO},
        paper=_PAPER,
        summary="COCO-17 build of dsta_mnv2 (same network, COCO joint names, TF padding for a MoveNet "
        "trunk start): " + _SUMMARY,
    ),
    _spec(
        "dsta_mnv2_coco_tiny",
        {**_TINY, **_COCO},
        paper=PaperNumbers(note="Test variant of dsta_mnv2_coco: width 0.25, 16-dim tokens, depth 1, 64x48"),
        summary="Small COCO-17 DSTA for tests: " + _SUMMARY,
        variant_of="dsta_mnv2_coco",
    ),
    _spec(
        "dsta_r50",
        _R50,
        paper=_PAPER_R50,
        summary="DSTA with the official ResNet-50 trunk (torchvision key layout under the official preact.): "
        + _SUMMARY,
    ),
    _spec(
        "dsta_r50_tiny",
        _R50_TINY,
        paper=PaperNumbers(
            note="Test variant of dsta_r50: 1 block per stage at width 8, 16-dim tokens, 64x48"
        ),
        summary="Small ResNet DSTA for tests: " + _SUMMARY,
        variant_of="dsta_r50",
    ),
)
