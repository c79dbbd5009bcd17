#!/usr/bin/env python
"""The prepared GPU check (issue #14): training on CUDA with AMP, DDP over GPUs, ONNX bundles through
the CUDA and TensorRT execution providers against CPU. Writes ``gpu_check.json`` and ``gpu_check.md``.

Run it through ``scripts/gpu_check.sh`` on a GPU machine (it picks a Python whose torch sees CUDA);
directly::

    python benchmarks/gpu_check.py --out runs/gpu_check                  # the GPU run (<= 8 min)
    python benchmarks/gpu_check.py --dry-run --device cpu --out /tmp/gc   # the same code, tiny, on CPU

What it measures, every section recorded as it finishes (a timeout keeps what was done):

1. ``environment``: torch, CUDA, the GPU(s), bf16 support, onnxruntime and its providers, TensorRT.
2. ``parity``: each training model (dsta_mnv2, tar_vitpose_s; ``_tiny`` with --dry-run) trained from
   the same initialisation on the same fixed batches (a seeded pool; drop-path off so CPU and GPU
   draw nothing random) for ``--parity-steps`` steps: CPU fp32 is the reference and the device runs
   fp32, bf16 AMP and fp16 AMP (GradScaler); the loss trajectory's largest relative difference to
   CPU's and whether it is within ``--parity-rtol``.
3. ``train``: the Trainer on the device as ``edgepose train`` runs it (AMP auto: bf16 where the
   GPU has it, channels-last for convnets, optional ``--compile``) for ``--steps`` steps at
   ``--batch``: samples/s and steps/s after the warm-up steps, peak memory, first and last loss.
4. ``ddp``: with two or more GPUs, ``torchrun --nproc_per_node 2 -m edgepose.cli train`` on the
   synthetic set against one process with the same global batch (loss curves, wall time).
5. ``onnx``: every zoo model (``--onnx-models``) exported to an ONNX bundle (random init, dynamic
   batch), each stage timed at batch 1 and 8 on CPUExecutionProvider, CUDAExecutionProvider and
   TensorrtExecutionProvider (fp32 and fp16, engine cache under OUT/trt_cache) where onnxruntime
   has them: median ms, the providers the session actually got (a silent fall back to CPU is
   reported as such), and the largest output difference to CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable from a plain checkout (PYTHONPATH not set, not installed)
    sys.path.insert(0, str(ROOT))

TRAIN_MODELS = ("dsta_mnv2", "tar_vitpose_s")
SCHEMA = 1


# -- the report ---------------------------------------------------------------------------------------
class Report:
    def __init__(self, out: Path, budget_s: float):
        self.out = out
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.data: dict = {
            "schema": SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(sys.argv),
            "environment": {},
            "parity": [],
            "train": [],
            "ddp": {},
            "onnx": [],
            "skipped": [],
            "errors": [],
            "finished": False,
        }

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def skip(self, what: str, why: str) -> None:
        self.data["skipped"].append({"what": what, "why": why})
        print(f"skipped {what}: {why}", flush=True)

    def error(self, what: str, e: BaseException) -> None:
        self.data["errors"].append(
            {"what": what, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=6)}
        )
        print(f"error in {what}: {type(e).__name__}: {e}", flush=True)

    def write(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.t0, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (
            ("gpu_check.json", json.dumps(self.data, indent=1, default=str)),
            ("gpu_check.md", markdown(self.data)),
        ):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
    return str(v)


def markdown(d: dict) -> str:
    env = d.get("environment", {})
    lines = [
        "# edgepose GPU check",
        "",
        (
            f"{d['created']}, {d.get('seconds', 0)} s, {'finished' if d.get('finished') else 'NOT finished'}"
            f"{' (dry run)' if env.get('dry_run') else ''}"
        ),
        "",
        (
            f"- device: **{env.get('device_name', '?')}** ({env.get('device', '?')}), GPUs: {env.get('gpu_count', 0)}, "
            f"bf16: {env.get('bf16')}, capability: {env.get('capability')}"
        ),
        (
            f"- torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}), python "
            f"{env.get('python')}"
        ),
        (
            f"- onnxruntime {env.get('onnxruntime')}: {', '.join(env.get('ort_providers') or []) or '-'}; "
            f"TensorRT (python): {env.get('tensorrt') or 'absent'}"
        ),
    ]
    if env.get("note"):
        lines.append(f"- note: {env['note']}")
    if d.get("parity"):
        lines += [
            "",
            "## Loss trajectory vs CPU fp32 (same init, same fixed batches)",
            "",
            "| model | mode | steps | batch | first loss (CPU) | first loss | max rel diff | within tol |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in d["parity"]:
            lines.append(
                f"| {p['model']} | {p['mode']} | {p['steps']} | {p['batch']} | {_fmt(p['cpu_losses'][0], 6)} "
                f"| {_fmt(p['losses'][0], 6)} | {_fmt(p['max_rel_diff'])} | {p['ok']} |"
            )
    if d.get("train"):
        lines += [
            "",
            "## Training throughput (Trainer, as `edgepose train` runs it)",
            "",
            (
                "| model | device | precision | channels-last | compiled | batch | steps | samples/s | ms/step "
                "| peak GiB | loss first -> last |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t in d["train"]:
            lines.append(
                f"| {t['model']} | {t['device']} | {t['precision']} | {t['channels_last']} | {t['compiled']} "
                f"| {t['batch']} | {t['steps']} | {_fmt(t['samples_per_s'], 4)} | {_fmt(t['ms_per_step'], 4)} "
                f"| {_fmt(t.get('peak_gib'))} | {_fmt(t['loss_first'], 4)} -> {_fmt(t['loss_last'], 4)} |"
            )
    ddp = d.get("ddp") or {}
    if ddp:
        lines += ["", "## DDP", ""]
        if ddp.get("ran"):
            lines.append(
                f"{ddp['processes']} processes vs 1, {ddp['model']}, global batch {ddp['batch']}: "
                f"loss {ddp.get('loss_ddp')} vs {ddp.get('loss_one')} (max rel diff "
                f"{_fmt(ddp.get('max_rel_diff'))}), wall {ddp.get('seconds_ddp')} s vs {ddp.get('seconds_one')} s"
            )
        else:
            lines.append(f"not run: {ddp.get('why')}")
    if d.get("onnx"):
        lines += [
            "",
            "## ONNX bundles: median ms per stage call (speed-up vs CPU)",
            "",
            "| model | stage | provider | batch | ms | vs CPU | got providers | max abs diff vs CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in d["onnx"]:
            for r in o.get("runs", []):
                lines.append(
                    f"| {o['model']} | {r['stage']} | {r['provider']} | {r['batch']} | {_fmt(r.get('ms'), 4)} "
                    f"| {_fmt(r.get('speedup_vs_cpu'))} | {', '.join(r.get('got') or []) or '-'} "
                    f"| {_fmt(r.get('max_abs_diff_vs_cpu'))} |" + (f" {r['error']}" if r.get("error") else "")
                )
    if d.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- {s['what']}: {s['why']}" for s in d["skipped"]]
    if d.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {e['what']}: {e['error']}" for e in d["errors"]]
    return "\n".join(lines) + "\n"


# -- environment -----------------------------------------------------------------------------------------
def environment(device: str, dry_run: bool, note: str) -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "device": device,
        "dry_run": dry_run,
        "note": note,
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        env.update(
            device_name=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            bf16=torch.cuda.is_bf16_supported(),
            cudnn=torch.backends.cudnn.version(),
            memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
        )
    else:
        env.update(
            device_name=platform.processor() or platform.machine(), bf16=True, capability=None, cudnn=None
        )
    try:
        import onnxruntime as ort

        env["onnxruntime"], env["ort_providers"] = ort.__version__, ort.get_available_providers()
    except Exception as e:  # noqa: BLE001 - reported, the rest still runs
        env["onnxruntime"], env["ort_providers"] = f"unavailable ({type(e).__name__}: {e})", []
    try:
        import tensorrt

        env["tensorrt"] = tensorrt.__version__
    except Exception:  # noqa: BLE001
        env["tensorrt"] = None
    if shutil.which("nvidia-smi"):
        q = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        env["nvidia_smi"] = q.stdout.strip().splitlines()
    return env


# -- training: fixed batches, parity, throughput ----------------------------------------------------------
def _build(name: str, seed: int = 0):
    """Model (drop-path / dropout off: nothing random, so CPU and GPU runs see the same computation) and task."""
    import torch

    from edgepose.training.tasks import build_task
    from edgepose.zoo import create_model, get_spec

    spec = get_spec(name)
    off = {k: 0.0 for k in ("drop_path", "dropout", "drop_rate", "attn_drop") if k in spec.config}
    torch.manual_seed(seed)
    model = create_model(name, **off)
    return spec, model, build_task(spec, model)


class Pool:
    """``length`` samples cycling over ``n`` seeded random ones (images or windows, joints, targets)."""

    def __init__(self, spec, task, joints: int, n: int, length: int, seed: int = 1):
        import torch

        g = torch.Generator().manual_seed(seed)
        (h, w), j = spec.input_size, joints
        self.length = length
        coords = torch.rand(n, j, 2, generator=g) * 0.8 + 0.1
        self.items = {
            "target_weight": torch.ones(n, j),
            "coords": coords,
            "keypoints": coords * torch.tensor([w, h]),
        }
        shape = (len(spec.frame_offsets), 3, h, w) if spec.is_temporal else (3, h, w)
        self.items["frames" if spec.is_temporal else "image"] = torch.randn(n, *shape, generator=g)
        if task.heatmap_size():
            self.items["heatmaps"] = torch.rand(n, j, *task.heatmap_size(), generator=g)
            self.items["heatmap_weight"] = torch.ones(n, j)
        self.n = n

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return {k: v[i % self.n] for k, v in self.items.items()}


def run_trainer(
    name: str,
    device: str,
    steps: int,
    batch: int,
    amp,
    amp_dtype="auto",
    lr=1e-4,
    workers=0,
    compile_=False,
    channels_last=None,
    pool=32,
    seed=0,
) -> dict:
    """``steps`` Trainer steps; per-step losses and times (one epoch over a cycling pool)."""
    import torch

    from edgepose.training.trainer import TrainConfig, Trainer

    spec, model, task = _build(name, seed)
    data = Pool(
        spec, task, int(model.num_joints), n=min(pool, batch * steps), length=batch * steps, seed=seed + 1
    )
    config = TrainConfig(
        epochs=1,
        batch_size=batch,
        lr=lr,
        optimizer="adamw",
        schedule="constant",
        seed=seed,
        device=device,
        amp=amp,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        compile=compile_,
        num_workers=workers,
    )
    losses, times = [], []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        tr = Trainer(model, task, data, config, tmp, progress=False)

        def on_step(step, parts):
            if tr.device.type == "cuda":
                torch.cuda.synchronize()
            losses.append(parts["loss"])
            times.append(time.perf_counter())

        tr.on_step = on_step
        if tr.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        tr.fit(resume=False)
        peak = torch.cuda.max_memory_allocated() / 2**30 if tr.device.type == "cuda" else None
        precision = str(tr.amp_dtype).replace("torch.", "") + (
            " AMP" + (" + GradScaler" if tr.scaler else "") if tr.amp else ""
        )
        info = {
            "device": str(tr.device),
            "precision": precision if tr.amp else "fp32",
            "channels_last": tr.channels_last,
            "compiled": bool(compile_),
        }
    warm = min(max(steps // 10, 3), max(steps - 2, 0))
    timed = times[warm:]
    per_step = (
        (timed[-1] - timed[0]) / (len(timed) - 1) if len(timed) > 1 else (times[-1] - t0) / max(len(times), 1)
    )
    return {
        "model": name,
        **info,
        "batch": batch,
        "steps": steps,
        "losses": losses,
        "ms_per_step": per_step * 1e3,
        "samples_per_s": batch / per_step,
        "warmup_steps": warm,
        "first_step_s": times[0] - t0 if times else None,
        "peak_gib": peak,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }


def parity(report: Report, name: str, device: str, steps: int, batch: int, rtol: float) -> None:
    import torch

    cpu = run_trainer(name, "cpu", steps, batch, amp=False, lr=1e-4)
    modes = [("fp32", False, "auto")]
    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            modes.append(("bf16 AMP", True, "bf16"))
        modes.append(("fp16 AMP + GradScaler", True, "fp16"))
    else:  # the dry run: the CPU's own AMP
        modes = [("bf16 AMP (CPU)", True, "bf16")]
    for label, amp, dtype in modes:
        if report.left() < 30:
            report.skip(f"parity {name} {label}", "time budget")
            continue
        run = run_trainer(name, device, steps, batch, amp=amp, amp_dtype=dtype, lr=1e-4)
        rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(run["losses"], cpu["losses"])]
        report.data["parity"].append(
            {
                "model": name,
                "mode": label,
                "device": run["device"],
                "steps": steps,
                "batch": batch,
                "cpu_losses": cpu["losses"],
                "losses": run["losses"],
                "rel_diffs": rel,
                "max_rel_diff": max(rel) if rel else None,
                "rtol": rtol,
                "ok": bool(rel) and max(rel) <= rtol and all(math.isfinite(v) for v in run["losses"]),
            }
        )
        report.write()


def train_throughput(
    report: Report, name: str, device: str, steps: int, batch: int, workers: int, compile_: bool
):
    run = run_trainer(name, device, steps, batch, amp=None, workers=workers, compile_=False)
    run.pop("losses")
    report.data["train"].append(run)
    report.write()
    if compile_ and report.left() > 90:
        run = run_trainer(name, device, steps, batch, amp=None, workers=workers, compile_=True)
        run.pop("losses")
        report.data["train"].append(run)
        report.write()


# -- DDP over GPUs -----------------------------------------------------------------------------------------
def ddp_check(report: Report, model: str, batch: int, work: Path) -> None:
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        report.data["ddp"] = {"ran": False, "why": f"{n} GPU(s): DDP over GPUs needs at least 2"}
        return
    common = [
        "-m",
        "edgepose.cli",
        "train",
        model,
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--batch-size",
        str(batch),
        "--val-every",
        "0",
        "--no-progress",
        "--device",
        "cuda",
        "--synthetic-videos",
        "4",
        "--synthetic-frames",
        "24",
        "--seed",
        "0",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = {"ran": True, "processes": 2, "model": model, "batch": batch}
    for key, cmd in (
        ("one", [sys.executable, *common, "--out", str(work / "ddp_one")]),
        (
            "ddp",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node",
                "2",
                *common,
                "--out",
                str(work / "ddp_two"),
            ],
        ),
    ):
        t0 = time.perf_counter()
        p = subprocess.run(
            cmd,
            check=False,
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=max(report.left() - 20, 30),
        )
        res[f"seconds_{key}"] = round(time.perf_counter() - t0, 1)
        res[f"rc_{key}"] = p.returncode
        if p.returncode:
            res[f"log_{key}"] = (p.stdout + p.stderr)[-2000:]
            continue
        hist = json.loads((work / f"ddp_{'one' if key == 'one' else 'two'}" / "history.json").read_text())
        res[f"loss_{key}"] = [h["train_loss"] for h in hist]
    if "loss_one" in res and "loss_ddp" in res:
        res["max_rel_diff"] = max(
            abs(a - b) / max(abs(b), 1e-12) for a, b in zip(res["loss_ddp"], res["loss_one"])
        )
    report.data["ddp"] = res
    report.write()


# -- ONNX bundles through execution providers ---------------------------------------------------------------
def _providers(kind: str, cache: Path) -> list:
    if kind == "CPUExecutionProvider":
        return ["CPUExecutionProvider"]
    if kind == "CUDAExecutionProvider":
        return [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    fp16 = kind.endswith(":fp16")
    cache.mkdir(parents=True, exist_ok=True)
    return [
        (
            "TensorrtExecutionProvider",
            {
                "device_id": 0,
                "trt_fp16_enable": fp16,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache),
            },
        ),
        ("CUDAExecutionProvider", {"device_id": 0}),
        "CPUExecutionProvider",
    ]


def _inputs(stage, batch: int, seed: int = 0):
    import numpy as np

    from edgepose.runtimes.base import numpy_dtype

    rng = np.random.default_rng(seed)
    feeds = {}
    for t in stage.inputs:
        shape = []
        for d in t.shape:
            if isinstance(d, int):
                shape.append(d)
            elif "batch" in str(d).lower() or d is None:
                shape.append(batch)
            else:
                raise ValueError(f"input {t.name} has a symbolic dimension {d!r} other than the batch")
        dtype = numpy_dtype(t.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[t.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[t.name] = rng.integers(0, 255, shape).astype(dtype)
    return feeds


def _time(sess, feeds, min_runs: int, max_s: float) -> tuple[float, list]:
    for _ in range(2):
        out = sess.run(None, feeds)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < max_s and len(times) < 200):
        t = time.perf_counter()
        out = sess.run(None, feeds)
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > 4 * max_s:
            break
    return statistics.median(times) * 1e3, out


def onnx_check(
    report: Report,
    models: list[str],
    bundles: dict[str, Path],
    work: Path,
    batches: list[int],
    min_runs: int,
    max_s: float,
) -> None:
    import numpy as np

    try:
        import onnxruntime as ort
    except Exception as e:  # noqa: BLE001
        report.skip("onnx", f"onnxruntime does not import ({type(e).__name__}: {e})")
        return
    from edgepose.core.manifest import read_manifest

    available = ort.get_available_providers()
    kinds = ["CPUExecutionProvider"]
    for k in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        if k in available:
            kinds += [k] if k.startswith("CUDA") else [f"{k}:fp32", f"{k}:fp16"]
        else:
            report.skip(
                f"onnx {k}",
                f"onnxruntime {ort.__version__} has only {available} (onnxruntime-gpu"
                + (" and the TensorRT libraries" if "Tensorrt" in k else "")
                + " needed)",
            )
    for name in models:
        if report.left() < 45:
            report.skip(f"onnx {name}", "time budget")
            continue
        entry = {"model": name, "runs": []}
        report.data["onnx"].append(entry)
        try:
            path = bundles.get(name)
            if path is None:
                from edgepose.export import export

                path = work / "bundles" / name
                t0 = time.perf_counter()
                export(name, out=path, format="onnx", verify=False, onnx_exporter="torchscript")
                entry["export_s"] = round(time.perf_counter() - t0, 1)
            onnx_dir = path / "onnx" if (path / "onnx" / "manifest.json").is_file() else path
            manifest = read_manifest(onnx_dir)
            entry["bundle"] = str(onnx_dir)
        except Exception as e:  # noqa: BLE001
            report.error(f"export {name}", e)
            report.write()
            continue
        for stage in manifest.stages:
            onnx_file = onnx_dir / stage.files[0]
            for b in batches:
                try:
                    feeds = _inputs(stage, b)
                except ValueError as e:
                    entry["runs"].append({"stage": stage.name, "provider": "-", "batch": b, "error": str(e)})
                    continue
                cpu_ms, cpu_out = None, None
                for kind in kinds:
                    if report.left() < 20:
                        report.skip(f"onnx {name}/{stage.name} {kind} b{b}", "time budget")
                        continue
                    run = {"stage": stage.name, "provider": kind, "batch": b}
                    try:
                        opts = ort.SessionOptions()
                        opts.log_severity_level = 3
                        t0 = time.perf_counter()
                        sess = ort.InferenceSession(
                            str(onnx_file), opts, providers=_providers(kind, work / "trt_cache" / name)
                        )
                        run["session_s"] = round(time.perf_counter() - t0, 2)
                        run["got"] = sess.get_providers()
                        wanted = kind.split(":")[0]
                        run["fell_back"] = run["got"][0] != wanted
                        ms, out = _time(sess, feeds, min_runs, max_s)
                        run["ms"] = ms
                        if kind == "CPUExecutionProvider":
                            cpu_ms, cpu_out = ms, out
                        elif cpu_out is not None:
                            run["speedup_vs_cpu"] = cpu_ms / ms
                            run["max_abs_diff_vs_cpu"] = float(
                                max(
                                    np.max(np.abs(a.astype(np.float64) - c.astype(np.float64)))
                                    if a.size
                                    else 0.0
                                    for a, c in zip(out, cpu_out)
                                )
                            )
                    except Exception as e:  # noqa: BLE001
                        run["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    entry["runs"].append(run)
                report.write()


# -- main ----------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "runs" / "gpu_check"))
    ap.add_argument(
        "--device", default="cuda", help="cuda | cpu (cpu: the sections that make sense on a CPU)"
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="tiny models and sizes (a CPU test of this script)"
    )
    ap.add_argument(
        "--train-models", nargs="*", default=None, help=f"default {' '.join(TRAIN_MODELS)} (_tiny dry)"
    )
    ap.add_argument(
        "--onnx-models", nargs="*", default=None, help="default: every zoo model (dry: dsta_mnv2_tiny)"
    )
    ap.add_argument(
        "--bundle", action="append", default=[], metavar="MODEL=DIR", help="use this bundle, no export"
    )
    ap.add_argument("--steps", type=int, default=None, help="throughput steps (300; dry 6)")
    ap.add_argument("--batch", type=int, default=None, help="throughput batch (32; dry 4)")
    ap.add_argument("--parity-steps", type=int, default=None, help="(10; dry 3)")
    ap.add_argument("--parity-batch", type=int, default=None, help="(8; dry 4)")
    ap.add_argument("--parity-rtol", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers for throughput (4; dry 0)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd training")
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 8], help="ONNX batch sizes")
    ap.add_argument(
        "--budget-s", type=float, default=450.0, help="stop starting new work after this many seconds"
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=["parity", "train", "ddp", "onnx"])
    ap.add_argument("--note", default="", help="a line for the report (gpu_check.sh: which python, why)")
    a = ap.parse_args(argv)

    import torch

    dry = a.dry_run
    device = a.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        a.note = (a.note + "; " if a.note else "") + "torch sees no CUDA GPU: ran the CPU sections only"
        device, dry = "cpu", True  # the CPU sizes, so the report still comes back in seconds
    report = Report(a.out, a.budget_s)
    report.data["environment"] = environment(device, dry, a.note)
    report.write()
    suffix = "_tiny" if dry else ""
    train_models = a.train_models if a.train_models is not None else [m + suffix for m in TRAIN_MODELS]
    if a.onnx_models is not None:
        onnx_models = a.onnx_models
    elif dry:
        onnx_models = ["dsta_mnv2_tiny"]
    else:
        from edgepose.zoo import list_models

        # distinct architectures first: a _coco twin differs only in its joints, and goes when time is short
        onnx_models = sorted(list_models(), key=lambda m: "_coco" in m)
    steps = a.steps or (6 if dry else 300)
    batch = a.batch or (4 if dry else 32)
    p_steps, p_batch = a.parity_steps or (3 if dry else 10), a.parity_batch or (4 if dry else 8)
    workers = a.workers if a.workers is not None else (0 if dry else 4)
    bundles = {k: Path(v) for k, v in (b.split("=", 1) for b in a.bundle)}
    work = a.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    if device == "cpu" and not dry:
        report.skip("training on cpu", "pass --dry-run for the CPU sizes")

    for name in train_models:
        if "parity" not in a.skip:
            if report.left() < 60:
                report.skip(f"parity {name}", "time budget")
            else:
                try:
                    parity(report, name, device, p_steps, p_batch, a.parity_rtol)
                except Exception as e:  # noqa: BLE001
                    report.error(f"parity {name}", e)
        if "train" not in a.skip:
            if report.left() < 60:
                report.skip(f"train {name}", "time budget")
            else:
                try:
                    train_throughput(report, name, device, steps, batch, workers, a.compile)
                except Exception as e:  # noqa: BLE001
                    report.error(f"train {name}", e)
        report.write()
    if "ddp" not in a.skip:
        try:
            ddp_check(report, train_models[0] if train_models else "dsta_mnv2", batch, work)
        except Exception as e:  # noqa: BLE001
            report.error("ddp", e)
    if "onnx" not in a.skip:
        onnx_check(
            report,
            onnx_models,
            bundles,
            work,
            a.batches,
            min_runs=3 if dry else 20,
            max_s=0.2 if dry else 2.0,
        )
    report.data["finished"] = True
    report.write()
    print((a.out / "gpu_check.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
