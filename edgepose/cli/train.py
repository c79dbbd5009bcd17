"""``edgepose train``: train a zoo model with its paper's recipe on a dataset directory or the synthetic set."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import typer

from ._common import console, err_console, friendly_errors, print_json

# --weights names that are not files: starts read from a checked third-party asset. Each gives the
# loader ("module:function", model -> note), the config the model must be built with for it, and the
# BN calibration ("module:function", (trunk, crops)) run on that many training crops once they exist.
NAMED_STARTS = {
    "movenet": {
        "loader": "edgepose.zoo.movenet_trunk:init_from_movenet",
        "config": {"pad": "tf"},  # TF's padding: MoveNet's trunk is a Keras one
        "calibrate": ("edgepose.zoo.movenet_trunk:calibrate_batchnorm", 16),
    },
}


def _function(ref: str):
    import importlib

    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def _start_config(spec, weights: str | None) -> tuple[dict, list[str]]:
    """Config overrides a named start needs (only keys the model has), and a note for each."""
    start = NAMED_STARTS.get(weights or "")
    if start is None:
        return {}, []
    changed = {k: v for k, v in start["config"].items() if k in spec.config and spec.config[k] != v}
    notes = [
        f"built with {k}={v!r} for --weights {weights} (the checkpoints record it)"
        for k, v in changed.items()
    ]
    return changed, notes


def _calibrate(model, weights: str | None, train_set) -> str | None:
    """A named start's BN statistics from evenly spaced training crops (all frames of each window)."""
    import torch

    start = NAMED_STARTS.get(weights or "")
    if start is None or not start.get("calibrate"):
        return None
    ref, count = start["calibrate"]
    n = min(count, len(train_set))
    picks = [train_set[round(i * (len(train_set) - 1) / max(n - 1, 1))] for i in range(n)]
    crops = torch.cat([(item["frames"] if "frames" in item else item["image"][None]) for item in picks])
    _function(ref)(model.trunk, crops)
    return f"BN statistics of the {weights} trunk from {len(crops)} training crops (so training-mode BN starts there)"


def _init_weights(model, path: str) -> str:
    """Load initial weights non-strictly (e.g. a COCO ViTPose into TAR-ViTPose) and say what was left out."""
    from ..zoo.checkpoints import few_keys, load_weights

    before = set(model.state_dict())
    report = load_weights(model, path, strict=False)
    note = f"initialised from {path}: {report.loaded} tensors ({report.source})"
    missing = len(before) - report.loaded
    if missing > 0:
        note += f", {missing} model tensors not in it keep their random init"
    if report.ignored:
        note += f", {len(report.ignored)} of its keys unused ({few_keys(report.ignored, 4)})"
    return note


def _init_task(task, path: str | None) -> tuple[str | None, bool]:
    """Carry the training-only state of a task (RLE's flow) over from an edgepose checkpoint given as
    ``--weights`` (a run's, or shipped weights that keep it): a continuation of a run then starts from
    the flow it learnt, not a random one (whose first steps would otherwise swamp the loss). Only a
    state of exactly the same keys and shapes. Returns the note and whether the state must be fitted
    to the weights first (``edgepose.training.task_state``: they hold none that fits)."""
    import torch

    from ..zoo.checkpoints import CheckpointError, read_checkpoint

    if path is None or not isinstance(task, torch.nn.Module) or not Path(path).is_file():
        return None, False
    mine = task.state_dict()
    if not mine:
        return None, False
    try:
        saved = (read_checkpoint(path).get("train") or {}).get("task") or {}
    except CheckpointError:  # _init_weights has read it already; nothing more to say here
        return None, False
    if set(saved) != set(mine) or any(saved[k].shape != v.shape for k, v in mine.items()):
        return f"{type(task).__name__}'s training state starts fresh ({path} holds none that fits)", True
    task.load_state_dict(saved)
    return f"{type(task).__name__}'s training state (e.g. RLE's flow) from {path}", False


def _check_arguments(name: str, lr: float | None, weights: str | None, frames: int | None) -> None:
    """Bounds and the --weights file's model, before any data is made or read."""
    import math

    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 10):
        raise ValueError(f"--lr must be a finite number in (0, 10], got {lr:g}")
    if frames is not None and frames not in (3, 5):
        raise ValueError(f"--frames must be 3 or 5, got {frames}")
    if weights and weights not in NAMED_STARTS:
        from ..zoo.checkpoints import check_model_name, read_checkpoint

        check_model_name(read_checkpoint(weights), name, f"checkpoint {weights!r}")


# the data settings a run keeps: resuming under others would train one run on two data sets
RUN_DATA_FLAGS = {"collapse_window": "--collapse-window", "mix_synthetic": "--mix-synthetic"}


def _check_resumable(out: Path, name: str, resume: bool, data_settings: dict | None = None) -> None:
    from ..zoo.checkpoints import read_checkpoint

    last = out / "last.pt"
    if not (resume and last.is_file()):
        return
    ck = read_checkpoint(last)
    ck_model = ck.get("model")
    if ck_model and ck_model != name:
        raise ValueError(
            f"{last} is a run of {ck_model}, not {name}; choose another --out or pass --no-resume"
        )
    meta = ck.get("meta") or {}
    for key, wanted in (data_settings or {}).items():
        had = meta.get(key, type(wanted)())  # runs from before the setting existed had it off
        if had != wanted:
            flag = RUN_DATA_FLAGS[key]
            shown = (flag if had else "--no-" + flag[2:]) if isinstance(had, bool) else f"{flag} {had}"
            raise ValueError(f"{last} was trained with {shown}; resume it so, or choose another --out")


MIN_STEPS_PER_EPOCH = 4
MIX_SIZE = (512, 384)  # synthetic frames mixed into real data: the generator's own default size


def fit_batch(asked: int | None, recipe_batch: int, crops: int, notes: list[str], world_size: int = 1) -> int:
    """The (global) batch size: ``--batch-size`` as given (it must fit the data), else the recipe's, shrunk
    on a small dataset so an epoch has at least ``MIN_STEPS_PER_EPOCH`` steps (the papers' 512 on 40 crops
    was zero steps and an error after the data had loaded). Under torchrun it is split over the
    ``world_size`` processes, so it must be a multiple of it (the recipe's is rounded down to one)."""
    if crops < 1:
        raise ValueError("the training split has no person crops")
    if asked is not None:
        if asked > crops:
            raise ValueError(
                f"--batch-size {asked} is larger than the {crops} training crops; pass at most {crops}"
            )
        if asked % world_size:
            raise ValueError(
                f"--batch-size {asked} is the global batch and must split evenly over the "
                f"{world_size} processes; pass a multiple of {world_size}"
            )
        return asked
    bs = max(1, min(recipe_batch, crops // MIN_STEPS_PER_EPOCH))
    if bs < recipe_batch:
        notes.append(
            f"batch {bs}, not the recipe's {recipe_batch}: {crops} training crops make at least "
            f"{MIN_STEPS_PER_EPOCH} steps an epoch (--batch-size to choose)"
        )
    if bs % world_size:
        if crops < world_size:
            raise ValueError(f"{crops} training crops cannot make a batch for each of {world_size} processes")
        bs = max(world_size, bs // world_size * world_size)
        notes.append(f"global batch {bs}: a multiple of the {world_size} processes")
    return bs


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        model_name: str = typer.Argument(
            ..., metavar="MODEL", help="Zoo model, e.g. dsta_mnv2 (see `edgepose models`)."
        ),
        data: str = typer.Option(
            ..., "--data", help="Dataset directory (PoseTrack and/or COCO form), or 'synthetic'."
        ),
        out: Path = typer.Option(
            ..., "--out", "-o", help="Run directory: checkpoints, history, cached synthetic data."
        ),
        epochs: int = typer.Option(None, "--epochs", min=1, help="Epochs (default: the recipe's)."),
        recipe_name: str = typer.Option(
            None,
            "--recipe",
            help="Recipe (default: the family's paper recipe, or its "
            "_synthetic variant with --data synthetic).",
        ),
        batch_size: int = typer.Option(
            None, "--batch-size", min=1, help="Batch size (default: the recipe's)."
        ),
        lr: float = typer.Option(
            None, "--lr", help="Base learning rate (default: the recipe's; not batch-scaled)."
        ),
        device: str = typer.Option(
            "auto", "--device", help="auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)."
        ),
        amp: bool = typer.Option(
            None,
            "--amp/--no-amp",
            help="Mixed precision (default: on for CUDA; bf16 where "
            "the GPU has it, else fp16 with a GradScaler; on CPU bf16 autocast).",
        ),
        amp_dtype: str = typer.Option("auto", "--amp-dtype", help="auto | bf16 | fp16 (with --amp)."),
        channels_last: bool = typer.Option(
            None,
            "--channels-last/--no-channels-last",
            help="NHWC memory (default: on for CUDA convnets, e.g. DSTA).",
        ),
        compile_model: bool = typer.Option(
            False, "--compile/--no-compile", help="torch.compile the training step."
        ),
        weights: str = typer.Option(
            None,
            "--weights",
            help="Initial weights: ours, an official checkpoint, or for SHaRPose a plain ViT (MAE, ViTPose) "
            "for its shared encoder, as the paper starts; 'movenet' starts the MobileNet-V2 trunk of a DSTA or "
            "of pave_mnv2 from MoveNet Lightning's (the checked asset; built with TF padding).",
        ),
        teacher: str = typer.Option(
            None, "--teacher", help="DistilPose teacher: MODEL, CHECKPOINT or MODEL:CHECKPOINT."
        ),
        frames: int = typer.Option(None, "--frames", help="Window length for temporal models (3 or 5)."),
        seed: int = typer.Option(0, "--seed", help="Seed of init, data order, augmentation, synthetic data."),
        resume: bool = typer.Option(
            True, "--resume/--no-resume", help="Continue from OUT/last.pt if present."
        ),
        val_every: int = typer.Option(
            1,
            "--val-every",
            min=0,
            help="Validate every N epochs (0: never; the last epoch always when N > 0).",
        ),
        flip_test: bool = typer.Option(
            False, "--flip-test/--no-flip-test", help="Flip test during validation."
        ),
        data_format: str = typer.Option("auto", "--format", help="auto | posetrack | coco."),
        checkpoint_every: int = typer.Option(
            0, "--checkpoint-every", min=0, help="Also checkpoint every N steps."
        ),
        workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes."),
        synthetic_videos: int = typer.Option(
            6, "--synthetic-videos", min=2, help="Videos in the synthetic set."
        ),
        synthetic_frames: int = typer.Option(
            24, "--synthetic-frames", min=1, help="Frames per synthetic video."
        ),
        freeze: str = typer.Option(
            None,
            "--freeze",
            help="Comma list of parameter-name prefixes to keep as loaded (no gradient, "
            "BatchNorm in eval mode), e.g. trunk.conv1,trunk.layer to train on a MoveNet trunk.",
        ),
        stop_after_epoch: int = typer.Option(
            0,
            "--stop-after-epoch",
            min=0,
            help="Stop (resumably) after N epochs of the --epochs schedule: a fine-tune that keeps "
            "the warm-up and first plateau of a longer schedule. 0: all epochs.",
        ),
        mix_synthetic: int = typer.Option(
            0,
            "--mix-synthetic",
            min=0,
            help="Add the training crops of N synthetic videos (--synthetic-frames each, 512x384, "
            "the 'easy' preset: jumping jacks, squats, swings, waves) to real --data for pose variety; "
            "validation stays on the real data. 0: none.",
        ),
        collapse_window: bool = typer.Option(
            False,
            "--collapse-window/--no-collapse-window",
            help="Fill every slot of a temporal model's window with the current frame, in training and "
            "validation: the collapsed twin that measures what the window adds.",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
        as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
    ):
        """Train MODEL with its paper's losses and recipe; atomic checkpoints, exact resume.

        Data-parallel on several GPUs or processes: ``torchrun --nproc_per_node N -m edgepose.cli train ...``
        (--batch-size is then the global batch; rank 0 writes the checkpoints and the log)."""
        from ..families import families, get_family
        from ..training import datasets as D
        from ..training import distributed
        from ..training.recipes import get_recipe, layer_decay, recipe_for, trained_part
        from ..training.tasks import build_task
        from ..training.trainer import Trainer, resolve_device, seed_everything
        from ..training.validate import evaluate, primary_metric
        from ..training.validate_whole_frame import adapt_for_spec
        from ..zoo import create_model, get_spec

        with friendly_errors(), _process_group(device) as dist_info:
            main = dist_info.is_main
            say = err_console.print if main else (lambda *a, **k: None)  # rank 0 logs
            logging.getLogger("edgepose.training").setLevel(logging.WARNING)
            spec = get_spec(model_name)
            D, evaluate = adapt_for_spec(
                spec, D, evaluate
            )  # whole-frame models: frame windows, predicted people
            _check_arguments(model_name, lr, weights, frames)
            synthetic = data == "synthetic"

            def render(**kw) -> Path:  # rendered once, by rank 0; the others then find it made
                made = D.synthetic_dataset(out, seed=seed, frames=synthetic_frames, **kw) if main else None
                distributed.barrier()
                return made or D.synthetic_dataset(out, seed=seed, frames=synthetic_frames, **kw)

            if synthetic:
                if mix_synthetic:
                    raise ValueError(
                        "--mix-synthetic adds synthetic videos to real --data; here --data is synthetic"
                    )
                data_dir = render(videos=synthetic_videos)
                say(f"synthetic data: {data_dir}")
            else:
                data_dir = Path(data)
            recipe = get_recipe(recipe_name) if recipe_name else recipe_for(spec, synthetic)
            _check_resumable(
                out, model_name, resume, {"collapse_window": collapse_window, "mix_synthetic": mix_synthetic}
            )
            overrides = {}
            if frames is not None:
                if "frames" not in spec.config:
                    raise ValueError(f"{model_name} is not a temporal model; --frames does not apply")
                overrides["frames"] = frames
            start_config, start_notes = _start_config(spec, weights)
            overrides.update(start_config)
            resolve_device(device)  # fail early on a missing GPU
            seed_everything(seed)
            model = create_model(model_name, **overrides)
            spec = _spec_with_offsets(spec, model)
            if collapse_window and len(spec.frame_offsets) < 2:
                raise ValueError(f"{model_name} sees one frame; --collapse-window applies to temporal models")
            notes = [f"recipe {recipe.name}: {recipe.source}", *start_notes]
            if collapse_window:
                notes.append("collapsed window: every slot holds the current frame (training and validation)")
            if weights in NAMED_STARTS:
                notes.append(_function(NAMED_STARTS[weights]["loader"])(model))
            elif weights:
                notes.append(_init_weights(model, weights))
            model, spec = trained_part(model, spec, recipe)
            if recipe.single_frame:
                notes.append(
                    f"{recipe.name} trains {model_name}'s single-frame part on still crops; start "
                    f"{model_name} from it with --weights {out / 'last.pt'}"
                )
            options = dict(recipe.task_options)
            if teacher:
                if not get_family(spec).accepts_teacher:
                    takers = " and ".join(f.title for f in families().values() if f.accepts_teacher)
                    raise ValueError(f"--teacher applies to {takers} students; {model_name} is {spec.family}")
                from ..training.teacher import build_teacher

                options["teacher"], desc = build_teacher(teacher, spec)
                notes.append(f"teacher: {desc}")
            task = build_task(spec, model, **options)
            notes += task.notes
            carried, fit_state = _init_task(task, weights if weights not in NAMED_STARTS else None)
            if carried:
                notes.append(carried)

            def training_set(split):
                return D.topdown_dataset(
                    spec,
                    split,
                    train=True,
                    heatmap_size=task.heatmap_size(),
                    seed=seed,
                    collapse_window=collapse_window,
                    **recipe.dataset_options(spec.layout),
                )

            train_split = D.load_split(data_dir, "train", spec, data_format)
            train_set = training_set(train_split)
            if mix_synthetic:
                mix_dir = render(videos=mix_synthetic, size=MIX_SIZE, name="mix-synthetic")
                mix_set = training_set(D.load_split(mix_dir, "train", spec, train_split.format))
                notes.append(
                    f"mixed in {len(mix_set)} synthetic crops ({mix_synthetic} videos in {mix_dir}) with "
                    f"{len(train_set)} of {data_dir}"
                )
                train_set = D.MixedDataset([train_set, mix_set])
            calibrated = _calibrate(model, weights, train_set)
            if calibrated:
                notes.append(calibrated)
            if fit_state and not (resume and (out / "last.pt").is_file()):  # a resumed run has its own
                from ..training.task_state import fit_task_state

                notes.append(fit_task_state(model, task, train_set, seed=seed))
            val_split = val_set = None
            if val_every:
                try:
                    val_split = D.load_split(data_dir, "val", spec, train_split.format)
                    val_set = D.topdown_dataset(spec, val_split, train=False, collapse_window=collapse_window)
                except FileNotFoundError as e:
                    notes.append(f"no validation: {e}")
            bs = fit_batch(batch_size, recipe.batch_size, len(train_set), notes, dist_info.world_size)
            config = recipe.config(
                epochs=epochs,
                batch_size=bs,
                lr=lr,
                steps_per_epoch=len(train_set) // bs,
                seed=seed,
                device=device,
                checkpoint_every=checkpoint_every,
                num_workers=workers,
                val_metric=primary_metric(val_split.format, spec.layout, val_split.records)
                if val_set is not None
                else "",
                freeze=tuple(f.strip() for f in (freeze or "").split(",") if f.strip()),
                stop_after_epoch=stop_after_epoch,
            )
            config.amp, config.amp_dtype, config.channels_last = amp, amp_dtype, channels_last
            config.compile = compile_model
            lr_scale = layer_decay(model, spec.family, recipe.layer_decay) if recipe.layer_decay else None

            def validate(m):
                epoch = trainer.state.epoch + 1
                if val_set is None or (
                    epoch % val_every and epoch not in (config.epochs, config.stop_after_epoch)
                ):
                    return {}
                dev = next(m.parameters()).device
                return evaluate(
                    m, spec, val_split, val_set, batch_size=min(bs, 64), device=dev, flip=flip_test
                )

            meta = {
                "recipe": recipe.name,
                "data": str(data_dir),
                "format": train_split.format,
                "seed": seed,
                "single_frame": recipe.single_frame,
                "collapse_window": collapse_window,
                "mix_synthetic": mix_synthetic,
            }
            trainer = Trainer(
                model,
                task,
                train_set,
                config,
                out,
                evaluate=validate if val_set is not None else None,
                progress=progress,
                meta=meta,
                lr_scale=lr_scale,
                on_epoch=lambda line: err_console.print(line, highlight=False),
            )
            for n in notes:
                say(f"[dim]{n}[/]")
            precision = str(trainer.amp_dtype).replace("torch.", "") + " AMP" if trainer.amp else "fp32"
            say(
                f"train {model_name}: {len(train_set)} crops ({train_split.format}, {train_split.path}), "
                f"{config.epochs} epochs x {len(train_set) // config.batch_size} steps, batch {config.batch_size}, "
                f"lr {config.lr:g}, device {trainer.device}, {precision}"
                + (", channels-last" if trainer.channels_last else "")
                + (", compiled" if config.compile else "")
                + (
                    f", DDP {dist_info.world_size} processes ({config.batch_size // dist_info.world_size} each)"
                    if dist_info.enabled
                    else ""
                )
                + (f", val {len(val_set)} crops" if val_set is not None else "")
            )
            if main:
                _write_run(
                    out, model_name, recipe, config, {**meta, "world_size": dist_info.world_size}, notes
                )
            state = trainer.fit(resume=resume)
        if not main:
            return
        summary = {
            "model": model_name,
            "out": str(out),
            "epochs": state.epoch,
            "steps": state.step,
            "best": state.best,
            "val_metric": config.val_metric or None,
            "history": state.history,
        }
        if as_json:
            print_json(summary)
            return
        last = state.history[-1] if state.history else {}
        line = f"[bold green]done[/] {model_name}: {state.epoch} epochs, loss {last.get('train_loss', float('nan')):.4f}"
        if config.val_metric:
            line += (
                f", best val {config.val_metric} {state.best if state.best is not None else float('nan'):.2f}"
            )
        console.print(line + f"; checkpoints in {out}")


@contextlib.contextmanager
def _process_group(device: str):
    """torchrun's process group for the command (none when launched plainly), closed at the end."""
    from ..training import distributed
    from ..training.trainer import resolve_device

    resolve_device(device)  # the one-line refusal (no GPU for --device cuda) before any data or rendezvous
    info = distributed.init_from_env(device)
    try:
        yield info
    finally:
        distributed.shutdown()


def _spec_with_offsets(spec, model):
    """The spec with the built model's window (``--frames 5`` changes the offsets)."""
    import dataclasses

    if tuple(spec.frame_offsets) == tuple(model.frame_offsets):
        return spec
    return dataclasses.replace(spec, frame_offsets=tuple(model.frame_offsets))


def _write_run(out: Path, name: str, recipe, config, meta: dict, notes: list[str]) -> None:
    from ..core.atomic import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "run.json", "w") as f:
        json.dump(
            {
                "model": name,
                "recipe": recipe.to_dict(),
                "config": config.to_dict(),
                "meta": meta,
                "notes": notes,
            },
            f,
            indent=1,
            default=str,
        )
