"""PAVE-Net's training task: whole-frame windows in, Hungarian set loss on every prediction level out.

The trainer's task interface (``forward(model, batch)``, ``loss(outputs, batch)``) over
:class:`edgepose.data.whole_frame.WholeFrameDataset` batches (``frames`` (B, T, 3, H, W), ``people``
(B, P, K, 3) normalised with a weight, ``num_people`` (B,)).

Levels, as the paper and the official head (``VideoPoseHeadMulFrames.loss``) train them:

* ``init``: every token of the current frame proposes a pose and a person logit (the initial poses);
* ``dec0`` .. ``dec{L-1}``: the pose decoder's layers (person logit and the current frame's pose);
* ``joint0`` .. ``joint{R-1}``: the joint decoder's refinements, which score no people.

Each level with logits is matched to the people on its own (Hungarian, ``training.set_loss``) and
gets the focal classification and the RLE regression; the joint decoder's levels reuse the last
pose-decoder level's matching. As in the official code (PETR lineage) the joint decoder refines the
*matched* queries during training: the model's training-only ``select`` hook hands it the matched
queries first (then the best-scored unmatched ones up to ``max_persons``), and only the matched
slots are regressed. The initial poses, the pose decoder and the joint decoder each have their own
RealNVP flow, as the official ``enc_flow``, ``dec_flow`` and ``flow`` (training-only, saved in the
training checkpoint with the task, never in the model's weights).

Ignore regions (``WholeFrameDataset``'s ``ignore`` boxes: pseudo-labels' people the teachers disagree
on, crowds): a query matched to nobody whose pose centre (mean joint) lies in one is left out of the
classification loss (its logit is replaced by a constant far below zero, so it adds neither loss nor
gradient), as COCO and PoseTrack evaluation leave detections there uncounted. Matching is unchanged:
nobody inside a region is a target.

Dropout (0.1 in every transformer layer) draws its masks from a generator keyed on the process seed
and the task's step count (saved with the task), so a run killed mid-epoch resumes to the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.keypoints import get_layout
from ..data.whole_frame import ignore_of, targets_of
from .set_loss import MatchWeights, SetCriterion
from .tasks import PoseTask

IGNORED_LOGIT = (
    -1e4
)  # focal loss of label 0 at this logit is 0 in float32 and bfloat16; constant: no gradient


class SetPredictionTask(PoseTask):
    """PAVE-Net (family ``pavenet``): focal + RLE over all levels after Hungarian matching.

    ``joint_weights``: per-joint RLE weights by joint name (others 1); ``cls_weight``/``rle_weight``
    the loss weights; ``match``: the assigner's cost weights (``MatchWeights`` fields as a dict).
    """

    def __init__(
        self,
        spec,
        model,
        joint_weights: dict | None = None,
        cls_weight: float = 0.5,
        rle_weight: float = 1.0,
        match: dict | None = None,
    ):
        super().__init__(spec, model)
        layout = get_layout(spec.layout)
        jw = [float((joint_weights or {}).get(n, 1.0)) for n in layout.names]
        mw = MatchWeights(**(match or {}))
        make = lambda: SetCriterion(
            layout.name, cls_weight=cls_weight, rle_weight=rle_weight, match=mw, joint_weights=jw
        )
        self.enc_criterion, self.dec_criterion, self.joint_criterion = make(), make(), make()
        self.max_persons = int(getattr(model, "max_persons", 0))
        # forward passes so far (saved with the task in training checkpoints): keys the dropout masks
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.int64))

    def forward(self, model, batch):
        targets = targets_of(batch)
        box: dict = {}

        def select(aux: dict) -> torch.Tensor:
            """The joint decoder's queries: the last pose-decoder level's matches first, then the best rest."""
            last = {"logits": aux["dec_logits"][-1], "poses": aux["dec_kpts"][-1]}
            matches = self.dec_criterion.match_level(last, targets)
            scores = last["logits"].detach()
            m = self.max_persons
            picks, joint_matches = [], []
            for b, (q, g) in enumerate(matches):
                q, g = q[:m], g[:m]
                order = torch.argsort(scores[b], descending=True).cpu().numpy()
                rest = order[~np.isin(order, q)][: m - len(q)]
                picks.append(np.concatenate([q, rest]).astype(np.int64))
                joint_matches.append((np.arange(len(q), dtype=np.int64), g))
            box["joint_matches"] = joint_matches
            return torch.as_tensor(np.stack(picks), device=scores.device)

        # Dropout masks drawn from a generator keyed on (process seed, step), not from wherever the global
        # RNG happens to be: the trainer's DataLoader draws from it when an epoch's loader starts, which a
        # run resumed mid-epoch does once more than an uninterrupted one; keyed masks make resume exact.
        frames = batch["frames"]
        seed = (torch.initial_seed() * 1_000_003 + int(self.steps_seen)) % (2**63 - 1)
        self.steps_seen += 1
        with torch.random.fork_rng(devices=[frames.device.index or 0] if frames.is_cuda else []):
            torch.manual_seed(seed)
            out = dict(model(frames, select=select))
        if "dec_logits" not in out:
            raise RuntimeError("PAVE-Net gives its per-level outputs only in training mode (model.train())")
        out["joint_matches"] = box["joint_matches"]
        return out

    def levels(self, outputs: dict) -> list[tuple[str, SetCriterion, dict]]:
        """(name, criterion, level) for every prediction level, initial poses first."""
        out = [
            (
                "init",
                self.enc_criterion,
                {
                    "logits": outputs["enc_logits"],
                    "poses": outputs["enc_kpts"],
                    "sigmas": outputs["enc_sigma"],
                },
            )
        ]
        for i in range(len(outputs["dec_logits"])):
            out.append(
                (
                    f"dec{i}",
                    self.dec_criterion,
                    {
                        "logits": outputs["dec_logits"][i],
                        "poses": outputs["dec_kpts"][i],
                        "sigmas": outputs["dec_sigma"][i],
                    },
                )
            )
        for i in range(len(outputs["refine_kpts"])):
            out.append(
                (
                    f"joint{i}",
                    self.joint_criterion,
                    {"poses": outputs["refine_kpts"][i], "sigmas": outputs["refine_sigma"][i]},
                )
            )
        return out

    @staticmethod
    def ignored_queries(poses: torch.Tensor, matches, ignore: list[torch.Tensor]) -> torch.Tensor:
        """(B, Q) bool: unmatched queries whose mean joint (normalised x, y) lies in an ignore box."""
        centre = poses.detach().float().mean(-2)  # (B, Q, 2)
        out = torch.zeros(centre.shape[:2], dtype=torch.bool, device=centre.device)
        for b, boxes in enumerate(ignore):
            if len(boxes) == 0:
                continue
            r = boxes.to(centre.device).float()
            c = centre[b, :, None]  # (Q, 1, 2)
            out[b] = ((c >= r[None, :, :2]) & (c <= r[None, :, 2:])).all(-1).any(-1)
            out[b, torch.as_tensor(matches[b][0], dtype=torch.long, device=centre.device)] = False
        return out

    def loss(self, outputs, batch):
        targets = [t.float() for t in targets_of(batch)]
        ignore = ignore_of(batch)
        has_ignore = any(len(r) for r in ignore)
        ignored_total = 0
        total = outputs["enc_logits"].new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        sums = {"cls": 0.0, "rle_init": 0.0, "rle_dec": 0.0, "rle_joint": 0.0}
        for name, crit, level in self.levels(outputs):
            matches = crit.match_level(level, targets) if "logits" in level else outputs["joint_matches"]
            if has_ignore and "logits" in level:
                skip = self.ignored_queries(level["poses"], matches, ignore)
                if skip.any():
                    logits = level["logits"]
                    level = {**level, "logits": logits.masked_fill(skip, IGNORED_LOGIT)}
                    ignored_total += int(skip.sum())
            got = crit.level_loss(level, targets, matches)
            for k, v in got.items():
                total = total + (crit.cls_weight if k == "cls" else crit.rle_weight) * v
                key = (
                    "cls"
                    if k == "cls"
                    else "rle_" + ("init" if name == "init" else name.rstrip("0123456789"))
                )
                sums[key] = sums[key] + v.detach()
        parts.update({k: torch.as_tensor(v) for k, v in sums.items()})
        with torch.no_grad():  # the final poses' error in input pixels over matched, labelled joints
            final = outputs["refine_kpts"][-1]
            scale = final.new_tensor([self.input_size[1], self.input_size[0]])
            err, n = final.new_zeros(()), 0.0
            for b, (p, g) in enumerate(outputs["joint_matches"]):
                if len(p) == 0:
                    continue
                t = targets[b][torch.as_tensor(g, device=final.device)]
                w = t[..., 2] > 0
                d = ((final[b, torch.as_tensor(p, device=final.device)] - t[..., :2]) * scale).norm(dim=-1)
                err, n = err + d[w].sum(), n + float(w.sum())
            parts["err_px"] = err / max(n, 1.0)
            parts["people"] = torch.as_tensor(float(sum(len(t) for t in targets)) / max(len(targets), 1))
            # queries per image left out of the classification (ignore regions), summed over the levels
            parts["ignored_q"] = torch.as_tensor(ignored_total / max(len(targets), 1))
        return total, parts
