"""What the two PAVE-Net training benchmarks (``benchmarks/pave_train_synthetic.py`` and
``benchmarks/pave_train_real.py``) share, so that both train, stop and score the same way: the Trainer
set-up, the wall-time budget as an ``on_step`` hook, the predicted-people rows (score cut, all M per
frame, oracle) and the mean-pose floor, and the JSON + markdown result files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def input_size(text: str) -> tuple[int, int]:
    """``"HxW"`` -> (H, W)."""
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def make_trainer(model, task, train_set, recipe, run_dir: Path, args, **config):
    """A quiet Trainer (epoch lines printed) over ``train_set`` with ``recipe.config``: the schedule from
    the options both scripts have (``args.epochs``, ``batch_size``, ``lr``, ``seed``), the rest from
    ``config``. Returns (trainer, config, steps_per_epoch)."""
    from edgepose.training.trainer import Trainer

    steps_per_epoch = len(train_set) // args.batch_size
    cfg = recipe.config(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        steps_per_epoch=steps_per_epoch,
        seed=args.seed,
        **config,
    )
    trainer = Trainer(
        model,
        task,
        train_set,
        cfg,
        run_dir,
        progress=False,
        on_epoch=lambda line: print(line, flush=True),
    )
    return trainer, cfg, steps_per_epoch


def schedule_fields(recipe, config, args, steps: int, steps_per_epoch: int, train_set) -> dict:
    """The result JSON's account of the training schedule (the same keys, in the same order, in both)."""
    return {
        "recipe": recipe.name,
        "lr": config.lr,
        "batch_size": args.batch_size,
        "epochs_planned": args.epochs,
        "steps": steps,
        "epochs_done": round(steps / max(steps_per_epoch, 1), 2),
        "train_windows": len(train_set),
    }


class Budget:
    """The training's wall-time budget as a Trainer ``on_step`` hook: each step's loss parts go to
    ``log`` (``step``, ``s`` since the first run began, then the parts), every ``every``-th is printed,
    and once ``seconds`` are spent it stops the fit with KeyboardInterrupt (see :func:`fit`)."""

    def __init__(self, seconds: float, log: Callable[[dict], None], every: int, before_s: float = 0.0):
        self.seconds, self.log, self.every, self.before_s = seconds, log, every, before_s
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, step: int, parts: dict) -> None:
        row = {
            "step": step,
            "s": round(self.before_s + self.elapsed(), 1),
            **{k: round(float(v), 4) for k, v in parts.items()},
        }
        self.log(row)
        if step % self.every == 0:
            print(
                f"step {step}  {row['s']:.0f}s  " + "  ".join(f"{k} {v:.3f}" for k, v in parts.items()),
                flush=True,
            )
        if self.elapsed() > self.seconds:
            raise KeyboardInterrupt("time budget spent")


def fit(trainer) -> bool:
    """Train (resuming from the run's last.pt); True when the budget (or Ctrl-C) stopped it."""
    try:
        trainer.fit(resume=True)
    except KeyboardInterrupt:
        return True
    return False


def load_last(model, trainer, path: Path) -> int:
    """Load a run's checkpoint into ``model`` and ``trainer``'s step (for ``--eval-only``); the step."""
    from edgepose.zoo.checkpoints import read_checkpoint

    ck = read_checkpoint(path)
    model.load_state_dict(ck["state_dict"])
    trainer.state.step = int(ck["meta"]["step"])
    return trainer.state.step


def scored(preds: list, records, spec, fmt: str, frames: int) -> dict:
    """``validate_whole_frame.metrics`` of ``preds`` plus ``people_per_frame`` over ``frames``."""
    from edgepose.training import validate_whole_frame as V

    row = V.metrics(preds, records, spec.layout, fmt)
    row["people_per_frame"] = len(preds) / max(frames, 1)
    return row


def people_rows(model, ds, split, spec, label: str, *, drop_ignored: bool = False, **predict):
    """Predicted people (no GT boxes) of ``ds`` scored on ``split``: rows ``label (score >= thr)``,
    ``label (all M per frame)`` and ``label (oracle: ...)``; with ``drop_ignored`` the people in ignore
    regions are left out before counting and the oracle. Returns (rows, every prediction)."""
    from edgepose.training import validate_whole_frame as V

    thr = V.DEFAULT_SCORE_THRESHOLD
    everyone = V.predict(model, ds, score_threshold=0.0, **predict)  # all M people of every frame

    def kept(preds):
        return V.drop_ignored(preds, split.records) if drop_ignored else preds

    rows = {}
    for cut, preds in (
        (f"score >= {thr:g}", [p for p in everyone if p.score >= thr]),
        (f"all {model.max_persons} per frame", everyone),
    ):
        rows[f"{label} ({cut})"] = scored(kept(preds), split.records, spec, split.format, len(ds))
    oracle = V.oracle_assignment(
        kept(everyone), split.records, spec.layout
    )  # diagnostic: GT picks the queries
    rows[f"{label} (oracle: GT picks one query per person)"] = scored(
        oracle, split.records, spec, split.format, len(ds)
    )
    return rows, everyone


def mean_pose_row(train_split, val_split, spec, frames: int) -> dict:
    """The floor: the training split's mean pose placed in every *true* box of ``val_split``."""
    from edgepose.training import validate_whole_frame as V

    floor = V.mean_pose_predictions(val_split.records, V.mean_pose(train_split.records, spec.layout))
    return scored(floor, val_split.records, spec, val_split.format, frames)


def labelled_people(split) -> int:
    """How many people the labelled frames of ``split`` hold."""
    return sum(len(f.persons) for v in split.records for f in v.frames if f.is_labeled)


def table_lines(rows: dict[str, dict], keys: Iterable[str]) -> list[str]:
    """One markdown row per entry of ``rows``: its name, then ``keys`` (floats at one decimal, NaN if
    missing)."""
    keys = tuple(keys)
    out = []
    for name, r in rows.items():
        cells = [r.get(k, float("nan")) for k in keys]
        out.append(
            f"| {name} | " + " | ".join(f"{c:.1f}" if isinstance(c, float) else str(c) for c in cells) + " |"
        )
    return out


def write_result(out: Path, name: str, result: dict, md: list[str]) -> None:
    """``OUT/NAME.json`` and ``OUT/NAME.md``; the markdown is printed too."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=float))
    (out / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
