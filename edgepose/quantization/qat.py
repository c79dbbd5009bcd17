"""Quantisation-aware training with torchao PT2E, fine-tuning a trained fp32 model.

Per stage: ``torch.export`` from a batch-2 example with a symbolic batch (batch 1 can bake
into a ViT's reshapes), ``prepare_qat_pt2e`` with ``X86InductorQuantizer(is_qat=True)``
(u8 activations, s8 per-channel weights: what ONNX Runtime and OpenVINO run in int8) minus
the model's float scopes. The stages are then trained *together*, composed as
``model.forward`` composes them (``pipeline.run_pipeline``), with the model family's own
task and loss (``edgepose.training.tasks``) on the training split; CUDA when present. It is
fine-tuning, not training: 1/20 of the recipe's learning rate, mild augmentation (the
caller's dataset), BatchNorm frozen at its trained statistics. With the papers' full
augmentation and BatchNorm updating, one epoch moved DSTA's statistics and cost it 7 mAP
before any int8 export (measured; ``benchmarks/results/int8_report.md``).

Stages of one model share modules (SHaRPose runs one ViT in both passes, TAR-ViTPose one
decoder in both stages); each exported stage holds its own copy, so the copies are tied
back to single parameters before training and the fine-tuned weights stay one model.
After training, ``convert_pt2e(fold_quantize=False)`` gives each stage's QDQ graph
(exported to ONNX, then read by OpenVINO), and the fine-tuned float weights (BatchNorm
still separate: PT2E simulates the fold and only folds at convert) are loaded back into a
copy of the zoo model for the formats quantised from weights (TFLite, Core ML).

Losses the stage outputs cannot give are mapped by the family object's ``qat_outputs``, and its
``qat_options`` adjust the task: DistilPose's confidence loss reads the clamped ``scores`` (its
raw score is not a stage output; the clamp's zero gradient outside [0, 1] only matters far from
the targets, which lie in [0, 1]); token distillation needs a teacher and is not used here, and
DistilPose fine-tunes on its regression loss only (``edgepose.families.distilpose`` says why).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from ..data.topdown import AugmentConfig
from ..export.stages import EXPORT_BATCH_DYNAMIC, named_module
from ..families import get_family
from ..training.recipes import recipe_for
from ..training.tasks import build_task
from ..training.trainer import resolve_device, seed_everything
from .pipeline import StagePlan, run_pipeline
from .pt2e import export_for_quantization, scoped_quantizer
from .scopes import FloatScopes

PREFIX = "stage.model."  # where a named Stage wrapper keeps the PoseModel's parameters
LR_SCALE = 0.05  # QAT learning rate = the family's synthetic recipe's from-scratch rate x this


def fine_tune_augmentation():
    """Milder than the papers' (scale 0.25, rotation 30 deg at p 0.4, half-body p 0.1): the synthetic
    benchmark's short-run setting; QAT adapts to quantisation, it does not learn new invariances."""

    return AugmentConfig(scale_factor=0.25, rotation_factor=30.0, rotation_prob=0.4, half_body_prob=0.1)


@dataclass
class QATResult:
    modules: dict[str, torch.fx.GraphModule]  # stage -> converted QDQ graph (positional inputs)
    model: torch.nn.Module  # the zoo model with the fine-tuned float weights
    float_nodes: dict[str, list[str]]
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Loss as the mean of the first and the last tenth of the steps (single steps are noisy)."""
        losses = [h["loss"] for h in self.history]
        k = max(1, len(losses) // 10)
        first = round(sum(losses[:k]) / k, 5) if losses else None
        last = round(sum(losses[-k:]) / k, 5) if losses else None
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "device": self.device,
            "first_loss": first,
            "last_loss": last,
            "notes": self.notes,
        }


def _set(module: torch.nn.Module, dotted: str, value) -> None:
    parent, _, leaf = dotted.rpartition(".")
    owner = module.get_submodule(parent) if parent else module
    if isinstance(value, torch.nn.Parameter):
        owner.register_parameter(leaf, value)
    else:
        owner.register_buffer(leaf, value)


def tie(modules: list[torch.nn.Module]) -> int:
    """Make same-named parameters and buffers of the stage graphs one tensor (the first graph's)."""
    owner: dict[str, torch.Tensor] = {}
    tied = 0
    for gm in modules:
        named = [*gm.named_parameters(remove_duplicate=False), *gm.named_buffers(remove_duplicate=False)]
        for name, t in named:
            if not name.startswith(PREFIX):
                continue  # observers and fake-quant state are per stage
            if name in owner:
                if owner[name].shape == t.shape and owner[name] is not t:
                    _set(gm, name, owner[name])
                    tied += 1
            else:
                owner[name] = t
    return tied


def prepare_stages(model, scopes: FloatScopes, device: torch.device) -> tuple[dict, dict]:
    """Exported, QAT-prepared stage graphs (tied), and the nodes left in float per stage."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e  # lazy: torchao
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (  # lazy: torchao
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    prepared, float_nodes = {}, {}
    for stage in model.stage_names:
        ins, outs = model.stage_io(stage)
        module = named_module(model.stage(stage), ins, outs)
        example = model.example_inputs(stage, EXPORT_BATCH_DYNAMIC, seed=0)
        gm = export_for_quantization(module, example, dynamic_batch=True, positional=True)
        inner = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
        quantizer = scoped_quantizer(inner, scopes.for_stage(stage), close_outputs=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepared[stage] = prepare_qat_pt2e(gm, quantizer).to(device)
        float_nodes[stage] = list(quantizer.float_nodes)
    tie(list(prepared.values()))
    return prepared, float_nodes


def float_weights(model, prepared: dict) -> tuple[torch.nn.Module, list[str]]:
    """A copy of ``model`` carrying the fine-tuned weights of the stage graphs; names model keys not found."""
    state = {}
    for gm in prepared.values():
        for k, v in gm.state_dict().items():
            if k.startswith(PREFIX):
                state.setdefault(k[len(PREFIX) :], v.detach().cpu())
    out = copy.deepcopy(model).cpu()
    own = out.state_dict()
    missing = [k for k in own if k not in state]
    out.load_state_dict({k: state.get(k, v) for k, v in own.items()})
    return out.eval(), missing


def _lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))


def finetune(
    model,
    spec,
    train_set,
    scopes: FloatScopes,
    epochs: float = 1.0,
    max_steps: int | None = None,
    batch_size: int = 16,
    lr: float | None = None,
    device: str = "auto",
    task_state: dict | None = None,
    seed: int = 0,
    train_bn: bool = False,
    log: Callable[[str], None] | None = None,
) -> QATResult:
    """QAT-fine-tune ``model`` (trained fp32) on ``train_set`` (a TopDownDataset with augmentation)."""
    from torchao.quantization.pt2e import (  # lazy: torchao
        allow_exported_model_train_eval,
        move_exported_model_to_eval,
        move_exported_model_to_train,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e  # lazy: torchao

    say = log or (lambda s: None)
    seed_everything(seed)
    dev = resolve_device(device)
    notes = []
    recipe = recipe_for(spec, synthetic=True)
    family = get_family(spec)
    task = build_task(spec, model, **{**recipe.task_options, **family.qat_options})
    if task_state:
        task.load_state_dict(task_state)
        notes.append("task's training-only parameters (e.g. RLE flow) restored from the checkpoint")
    task.set_epoch(recipe.epochs, recipe.epochs)  # the end of training: SHaRPose's quality loss is on
    task.to(dev)
    model = copy.deepcopy(model).eval()  # torch.export shares parameters with the module it traced
    prepared, float_nodes = prepare_stages(model, scopes, dev)
    plan = StagePlan.from_model(model)
    steps_per_epoch = len(train_set) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training samples are fewer than one batch of {batch_size}")
    total = max(1, int(round(epochs * steps_per_epoch)))
    if max_steps is not None:
        total = min(total, int(max_steps))
    # fine-tuning: 1/20 of the recipe's from-scratch rate, short warm-up, cosine to zero
    base_lr = lr if lr is not None else recipe.lr * LR_SCALE
    params = {id(p): p for gm in prepared.values() for p in gm.parameters() if p.requires_grad}
    task_params = [p for p in task.parameters() if p.requires_grad]
    groups = [{"params": list(params.values()), "weight_decay": recipe.weight_decay}]
    if task_params:
        groups.append({"params": task_params, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=base_lr)
    warmup = max(1, total // 10)
    for gm in prepared.values():
        # BatchNorm frozen at its trained statistics (the conv+BN fold is simulated with them) and
        # dropout/drop-path off: fine-tuning adapts weights to the quantisers, not the statistics
        (move_exported_model_to_train if train_bn else move_exported_model_to_eval)(gm)
    task.train()

    def run(stage: str, feeds: dict) -> dict:
        out = prepared[stage](*[feeds[n] for n in plan.io(stage)[0]])
        return dict(zip(plan.io(stage)[1], out))

    history, step, t0 = [], 0, time.perf_counter()
    epoch = 0
    say(f"QAT: {total} steps (batch {batch_size}, lr {base_lr:g}, AdamW), device {dev}")
    while step < total:
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch, seed=seed)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        loader = DataLoader(
            train_set,
            batch_size=batch_size,
            sampler=torch.randperm(len(train_set), generator=g)[: steps_per_epoch * batch_size].tolist(),
        )
        for batch in loader:
            if step >= total:
                break
            batch = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in batch.items()}
            for grp in opt.param_groups:
                grp["lr"] = base_lr * _lr(step, total, warmup)
            x = batch["frames"] if "frames" in batch else batch["image"]
            _, outs = run_pipeline(plan, run, x)
            loss, parts = task.loss(family.qat_outputs(outs), batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"QAT loss became {loss.item()} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
            opt.step()
            step += 1
            history.append({"step": step, "loss": round(float(loss.detach()), 6)})
            every = max(1, total // 5)
            if step % every == 0 or step == total:
                recent = [h["loss"] for h in history[-every:]]
                say(
                    f"QAT step {step}/{total}: loss {sum(recent) / len(recent):.4f} (mean of the last {len(recent)})"
                )
        epoch += 1
    seconds = time.perf_counter() - t0
    converted = {}
    for gm in prepared.values():
        move_exported_model_to_eval(gm)
    fine, missing = float_weights(model, prepared)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        notes.append(
            f"{len(missing)} model tensors were not in any stage graph and keep their values: {missing[:4]}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for stage, gm in prepared.items():
            # .eval() on it (as the exporters' wrappers call) switches dropout/BatchNorm instead of raising
            converted[stage] = allow_exported_model_train_eval(convert_pt2e(gm.cpu(), fold_quantize=False))
    return QATResult(converted, fine, float_nodes, history, step, seconds, str(dev), notes)
