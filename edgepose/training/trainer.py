"""The training loop: CUDA with AMP when present, CPU otherwise; one process or DDP; atomic, resumable, deterministic.

What the loop needs from a model family is a *task* (``forward(model, batch)
-> outputs`` and ``loss(outputs, batch) -> (loss, parts)``); what it needs
from the user is a recipe (optimizer, schedule, epochs). Everything else is
here: seeding, the progress bar, checkpoints written atomically every epoch
and every ``checkpoint_every`` steps, and resumption from the last one (a
killed run continues where its last checkpoint left it, down to the batch,
and reaches the same weights as an uninterrupted run).

Under ``torchrun`` (a process group initialised, see :mod:`.distributed`) the
same loop runs DistributedDataParallel: ``batch_size`` is the global batch,
each rank takes its slice of every global batch of the one-process order,
BatchNorm is synchronised over the global batch, and only rank 0 writes
checkpoints (with every rank's RNG state), ``history.json`` and the log. The
saved position is in global batches, so a run resumes with any process count.

On CUDA: AMP (bf16 where the GPU has it, else fp16 with a GradScaler),
channels-last for convnets, and ``torch.compile`` on request. AMP on CPU is
bf16 autocast.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..core.atomic import atomic_file
from ..zoo.checkpoints import read_checkpoint, save_checkpoint
from . import distributed as D


class Task(Protocol):
    def forward(self, model: torch.nn.Module, batch: dict) -> dict: ...

    def loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, float]]: ...


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adamw"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | step | constant
    milestones: tuple[float, ...] = (0.8, 0.95)  # fractions of training for "step"
    gamma: float = 0.1
    warmup_steps: int = 0
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool | None = None  # None: on for CUDA
    amp_dtype: str = "auto"  # auto (bf16 where supported, else fp16 + GradScaler) | bf16 | fp16
    channels_last: bool | None = None  # None: on for CUDA when the model is mostly convolutions
    compile: bool = False  # torch.compile the training step (model + loss)
    compile_backend: str = "inductor"
    find_unused_parameters: bool = False  # DDP: for models with parameters some steps do not use
    num_workers: int = 0
    checkpoint_every: int = 0  # steps; 0 = only at epoch ends
    val_metric: str = ""  # key of the validation dict to select best.pt; "" = none
    val_mode: str = "max"
    # parameter-name prefixes kept as loaded: no gradient, and their modules stay in eval mode, so a
    # pretrained trunk keeps its BatchNorm statistics (train mode would normalise by each batch)
    freeze: tuple[str, ...] = ()
    # stop (resumably) once this many epochs are done, on the schedule of ``epochs``: a fine-tune that
    # keeps the warm-up and first plateau of a longer step schedule; 0 = run all ``epochs``
    stop_after_epoch: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        d["freeze"] = list(self.freeze)
        return d


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done in total
    step_in_epoch: int = 0  # batches of the current epoch already consumed
    best: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    # the current epoch's summed losses and batch count so far: a run resumed mid-epoch averages the
    # whole epoch, not just the steps after the resume
    epoch_sums: dict[str, float] = field(default_factory=dict)
    epoch_batches: int = 0


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if device == "cuda" and D.current().enabled:
        return torch.device("cuda", torch.cuda.current_device())  # init_from_env set it to LOCAL_RANK
    return torch.device(device)


def resolve_amp_dtype(device: torch.device, wanted: str = "auto") -> torch.dtype:
    """bf16 where the device runs it (CPU autocast is bf16), fp16 otherwise (with a GradScaler)."""
    if wanted not in ("auto", "bf16", "fp16"):
        raise ValueError(f"unknown AMP dtype {wanted!r}; choose from auto, bf16, fp16")
    if wanted == "fp16":
        return torch.float16
    if wanted == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU has no bf16; use --amp-dtype fp16 or auto")
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def is_convnet(model: torch.nn.Module) -> bool:
    """Most parameters in convolutions: channels-last memory helps (tensor cores read NHWC)."""
    conv = sum(
        p.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d) for p in m.parameters(False)
    )
    return conv > 0.5 * max(sum(p.numel() for p in model.parameters()), 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


_NO_DECAY_NAMES = ("token", "pos_embed", "pos_embedding")


def _make_optimizer(
    cfg: TrainConfig,
    named_params: list[tuple[str, torch.nn.Parameter]],
    lr_scale: Callable[[str], float] | None = None,
) -> torch.optim.Optimizer:
    """Parameter groups by (weight decay or not, lr scale); ``lr_scale(name)`` gives layer-wise decay."""
    groups: dict[tuple[bool, float], dict] = {}
    for n, p in named_params:
        if not p.requires_grad:
            continue
        # norms, biases, tokens and position tables are not decayed (the ViT papers' recipes)
        last = n.rsplit(".", 1)[-1]
        no_decay = p.ndim <= 1 or any(k in last for k in _NO_DECAY_NAMES)
        scale = float(lr_scale(n)) if lr_scale is not None else 1.0
        key = (no_decay, scale)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                "lr_scale": scale,
            }
        groups[key]["params"].append(p)
    param_groups = [groups[k] for k in sorted(groups)]
    makers = {
        "adam": lambda: torch.optim.Adam(param_groups, lr=cfg.lr),
        "adamw": lambda: torch.optim.AdamW(param_groups, lr=cfg.lr),
        "sgd": lambda: torch.optim.SGD(param_groups, lr=cfg.lr, momentum=0.9, nesterov=True),
    }
    if cfg.optimizer not in makers:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from {sorted(makers)}")
    return makers[cfg.optimizer]()


def _lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    frac = step / max(total, 1)
    schedules: dict[str, Callable[[], float]] = {
        "constant": lambda: 1.0,
        "cosine": lambda: 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))),
        "step": lambda: cfg.gamma ** sum(frac >= m for m in cfg.milestones),
    }
    if cfg.schedule not in schedules:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose from {sorted(schedules)}")
    return schedules[cfg.schedule]()


def _to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    if isinstance(batch, torch.Tensor):
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {
            k: _to_device(v, device, channels_last and k in ("image", "frames")) for k, v in batch.items()
        }
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


class _TrainStep(torch.nn.Module):
    """Model and task as one module whose forward is the loss: what DDP wraps (the task's own
    parameters, e.g. RLE's flow, are averaged with the model's) and what ``torch.compile`` compiles."""

    def __init__(self, model: torch.nn.Module, task: Any):
        super().__init__()
        self.model = model
        self.task_module = task if isinstance(task, torch.nn.Module) else None  # registered once, here
        self.__dict__["_task"] = task  # not a second registration of the same module

    def forward(self, batch: dict):
        outputs = self._task.forward(self.model, batch)
        return self._task.loss(outputs, batch)


def _rng_state(device: torch.device | None = None) -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "python": json.dumps(random.getstate()),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(s: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(s["cuda"], device)
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    st = json.loads(s["python"])
    random.setstate((st[0], tuple(st[1]), st[2]))


class Trainer:
    """Runs ``task`` on ``model`` over ``train_data``; writes ``out/last.pt``, ``best.pt``, ``history.json``."""

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        train_data: Dataset,
        config: TrainConfig,
        out_dir: str | Path,
        evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        progress: bool = True,
        meta: dict | None = None,
        lr_scale: Callable[[str], float] | None = None,
        on_epoch: Callable[[str], None] | None = None,
    ):
        self.model, self.task, self.data, self.cfg = model, task, train_data, config
        self.lr_scale = lr_scale  # parameter name ("task." prefix for the task's) -> lr multiplier
        self.out = Path(out_dir)
        self.evaluate = evaluate
        self.progress = progress
        self.on_epoch = on_epoch  # receives each epoch's summary line when the progress bar is off
        self.meta = dict(meta or {})
        self.device = resolve_device(config.device)
        self.dist = D.current()
        self.amp = (self.device.type == "cuda") if config.amp is None else bool(config.amp)
        self.amp_dtype = resolve_amp_dtype(self.device, config.amp_dtype) if self.amp else torch.float32
        self.channels_last = (
            (self.device.type == "cuda" and is_convnet(model))
            if config.channels_last is None
            else bool(config.channels_last)
        )
        self.state = TrainState()
        self.interrupt_after_steps: int | None = None  # tests use this to simulate a kill
        # called after every optimizer step with (step, parts): the global batch's losses, on every rank
        self.on_step: Callable[[int, dict[str, float]], None] | None = None

    @property
    def steps_per_epoch(self) -> int:
        if len(self.data) < self.cfg.batch_size:
            raise ValueError(
                f"{len(self.data)} training samples are fewer than one batch of {self.cfg.batch_size}"
            )
        if self.cfg.batch_size % self.dist.world_size:
            raise ValueError(
                f"the global batch {self.cfg.batch_size} does not split evenly over "
                f"{self.dist.world_size} processes; pass a multiple of {self.dist.world_size}"
            )
        return len(self.data) // self.cfg.batch_size

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        """The epoch's batches from ``start_batch`` on: a seeded permutation sliced, not replayed,
        so resuming loads no skipped samples and draws no extra random numbers."""
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch, seed=self.cfg.seed)  # augmentation keyed by (seed, epoch, index)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.data), generator=g)[: self.steps_per_epoch * self.cfg.batch_size]
        # this rank's slice of each global batch (all of it with one process): the one-process order
        sampler = D.rank_indices(
            order, self.cfg.batch_size, self.dist.rank, self.dist.world_size, start_batch
        )
        return DataLoader(
            self.data,
            batch_size=self.cfg.batch_size // self.dist.world_size,
            sampler=sampler,
            num_workers=self.cfg.num_workers,
            worker_init_fn=_seed_worker if self.cfg.num_workers else None,
            pin_memory=self.device.type == "cuda",
            # the loader's own seed from the epoch's generator, not the global one: a resumed run's
            # global RNG (dropout, drop path) then continues exactly where the killed run left it
            generator=g,
        )

    @property
    def _task_module(self) -> torch.nn.Module | None:
        """The task when it holds training-only parameters (e.g. RLE's flow): optimised and checkpointed."""
        return self.task if isinstance(self.task, torch.nn.Module) else None

    def _named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        named = list(self.model.named_parameters())
        if self._task_module is not None:
            named += [(f"task.{n}", p) for n, p in self._task_module.named_parameters()]
        return named

    # -- checkpoints ---------------------------------------------------------
    def _checkpoint(self, names: list[str]) -> None:
        """Save ``names`` from rank 0 with every rank's RNG state (a collective: all ranks call it)."""
        rngs = D.gather_objects(_rng_state(self.device))
        if self.dist.is_main:
            for name in names:
                self._save(name, rngs)

    def _save(self, name: str, rngs: list[dict] | None = None) -> None:
        s = self.state
        rngs = rngs or [_rng_state(self.device)]
        save_checkpoint(
            self.model,
            self.out / name,
            meta={**self.meta, "epoch": s.epoch, "step": s.step},
            train={
                "config": self.cfg.to_dict(),
                "state": {k: v for k, v in asdict(s).items() if k != "history"},
                "history": json.dumps(s.history),
                "optimizer": self.optimizer.state_dict(),
                "task": self._task_module.state_dict() if self._task_module is not None else {},
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "rng": rngs[0],
                "rng_ranks": rngs if len(rngs) > 1 else [],
                "world_size": self.dist.world_size,
            },
        )

    def _resume(self) -> bool:
        path = self.out / "last.pt"
        if not path.exists():
            return False
        ck = read_checkpoint(path)
        if "train" not in ck:
            raise ValueError(f"{path} has no training state; remove it or choose another --out")
        self.model.load_state_dict(ck["state_dict"])
        tr = ck["train"]
        if self._task_module is not None:
            self._task_module.load_state_dict(tr.get("task", {}))
        self.optimizer.load_state_dict(tr["optimizer"])
        if self.scaler is not None and tr["scaler"]:
            self.scaler.load_state_dict(tr["scaler"])
        self.state = TrainState(**tr["state"], history=json.loads(tr["history"]))
        ranks = tr.get("rng_ranks") or [tr["rng"]]
        if self.dist.rank < len(ranks):  # a rank new to the run keeps its seeded state
            _set_rng_state(ranks[self.dist.rank], self.device)
        return True

    # -- loop ------------------------------------------------------------------
    def _apply_freeze(self) -> int:
        """Turn gradients off under the ``freeze`` prefixes; how many tensors it froze."""
        frozen = 0
        for name, p in self.model.named_parameters():
            if any(name.startswith(f) for f in self.cfg.freeze):
                p.requires_grad_(False)
                frozen += 1
        if self.cfg.freeze and not frozen:
            raise ValueError(f"--freeze {','.join(self.cfg.freeze)} matches no parameter of the model")
        return frozen

    def _frozen_modules(self) -> list[torch.nn.Module]:
        """Modules whose parameters are all frozen (and that have some): kept in eval mode."""
        if not self.cfg.freeze:
            return []
        out = []
        for name, module in self.model.named_modules():
            params = list(module.parameters(recurse=True))
            if (
                params
                and all(not p.requires_grad for p in params)
                and any(name.startswith(f.rstrip(".")) for f in self.cfg.freeze)
            ):
                out.append(module)
        return out

    def _build_step_module(self) -> torch.nn.Module:
        """The module each step calls: model + loss, DDP-wrapped under a process group, compiled on request."""
        step: torch.nn.Module = _TrainStep(self.model, self.task)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            step = DistributedDataParallel(
                step,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.cfg.find_unused_parameters,
            )
        if self.cfg.compile:
            step = torch.compile(step, backend=self.cfg.compile_backend)
        return step

    def fit(self, resume: bool = True) -> TrainState:
        try:
            return self._fit(resume)
        finally:
            self.step_module = None  # DDP's reducer holds the process group: release it before shutdown
            if self.dist.enabled:  # the model works outside the process group again
                D.revert_sync_batchnorm(self.model)
                if self._task_module is not None:
                    D.revert_sync_batchnorm(self._task_module)

    def _fit(self, resume: bool) -> TrainState:
        cfg = self.cfg
        main = self.dist.is_main
        # rank 0 draws what a one-process run draws; the others their own streams (dropout masks)
        seed_everything(cfg.seed + 7919 * self.dist.rank)
        self.model.to(self.device)
        if self._task_module is not None:
            self._task_module.to(self.device)
        if self.dist.enabled:  # statistics over the global batch, as one process with that batch has them
            D.convert_sync_batchnorm(self.model, self.device)
            if self._task_module is not None:
                D.convert_sync_batchnorm(self._task_module, self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._apply_freeze()
        self.optimizer = _make_optimizer(cfg, self._named_parameters(), self.lr_scale)
        fp16 = self.amp and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        resumed = resume and self._resume()
        self.step_module = self._build_step_module()  # after the resume: DDP starts from the loaded weights
        total = cfg.epochs * self.steps_per_epoch
        with _progress_bar(self.progress and main) as bar:
            job = bar.add_task(
                "train", total=total, completed=self.state.step, info="resumed" if resumed else ""
            )
            last = min(cfg.epochs, cfg.stop_after_epoch) if cfg.stop_after_epoch > 0 else cfg.epochs
            while self.state.epoch < last:
                epoch = self.state.epoch
                self.model.train()
                for module in self._frozen_modules():
                    module.eval()
                if self._task_module is not None:
                    self._task_module.train()
                if hasattr(self.task, "set_epoch"):
                    self.task.set_epoch(epoch, cfg.epochs)  # e.g. SHaRPose's late quality-loss weight
                start = self.state.step_in_epoch
                t0 = time.perf_counter()
                sums = dict(self.state.epoch_sums) if start else {}
                n = self.state.epoch_batches if start else 0
                for i, batch in enumerate(self._loader(epoch, start), start=start):
                    parts = self._step(_to_device(batch, self.device, self.channels_last), total)
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v
                    n += 1
                    self.state.epoch_sums, self.state.epoch_batches = dict(sums), n
                    self.state.step += 1
                    self.state.step_in_epoch = i + 1
                    bar.update(
                        job,
                        advance=1,
                        description=f"epoch {epoch + 1}/{cfg.epochs}",
                        info=f"loss {parts['loss']:.4f}",
                    )
                    if self.on_step is not None:
                        self.on_step(self.state.step, parts)
                    if cfg.checkpoint_every and self.state.step % cfg.checkpoint_every == 0:
                        self._checkpoint(["last.pt"])
                    if (
                        self.interrupt_after_steps is not None
                        and self.state.step >= self.interrupt_after_steps
                    ):
                        raise KeyboardInterrupt("interrupted on request")
                record = {"epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 2)}
                record.update({f"train_{k}": v / max(n, 1) for k, v in sums.items()})
                if self.evaluate is not None and main:  # the others wait for it at their next step
                    self.model.eval()
                    with torch.no_grad():
                        record.update({f"val_{k}": v for k, v in self.evaluate(self.model).items()})
                self.state.history.append(record)
                self.state.epoch, self.state.step_in_epoch = epoch + 1, 0
                self.state.epoch_sums, self.state.epoch_batches = {}, 0
                key = f"val_{cfg.val_metric}"
                saves = ["last.pt"]
                if cfg.val_metric and key in record:  # only rank 0 has validation numbers
                    better = self.state.best is None or (
                        record[key] > self.state.best
                        if cfg.val_mode == "max"
                        else record[key] < self.state.best
                    )
                    if better:
                        self.state.best = record[key]
                        saves.insert(0, "best.pt")
                self._checkpoint(saves)
                if not main:
                    continue
                with atomic_file(self.out / "history.json", "w") as f:
                    json.dump(self.state.history, f, indent=1)
                if self.progress:
                    bar.console.log(_format_record(record))
                elif self.on_epoch is not None:
                    self.on_epoch(_format_record(record))
        D.barrier()  # rank 0's last files are written before any rank returns
        return self.state

    def _step(self, batch: dict, total: int) -> dict[str, float]:
        for g in self.optimizer.param_groups:
            g["lr"] = self.cfg.lr * g.get("lr_scale", 1.0) * _lr_factor(self.cfg, self.state.step, total)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            loss, parts = self.step_module(batch)
        # the logged numbers are the global batch's: the mean over ranks of each rank's mean
        names = list(parts)
        logged = D.mean_across_ranks(
            torch.stack(
                [
                    loss.detach().float(),
                    *(
                        torch.as_tensor(parts[k], dtype=torch.float32, device=loss.device).reshape(())
                        for k in names
                    ),
                ]
            )
        )
        logged = logged.tolist()
        if not math.isfinite(logged[0]):  # the same on every rank: all stop together
            raise FloatingPointError(
                f"loss became {logged[0]} at step {self.state.step}; lower the learning rate or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for _, p in self._named_parameters()], self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return {"loss": logged[0], **dict(zip(names, logged[1:]))}


class _NoBar:
    """What the loop calls on a progress bar, doing nothing (other ranks, --no-progress; no rich needed)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def update(self, *args, **kwargs) -> None:
        pass


def _progress_bar(show: bool):
    if not show:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    return Progress(*columns, transient=False)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _format_record(r: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items())
