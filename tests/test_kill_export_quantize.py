"""Issue 13, "SIGKILL at 10 moments of an export and of a quantize".

For ``edgepose export`` and ``edgepose quantize`` (``dsta_mnv2_tiny``, ONNX): two complete runs
make a good bundle (the second, with warm caches, is the timed reference, its output lines
time-stamped); then the same command is started again into the same output as a subprocess and
SIGKILLed at 10 moments spread over that runtime (5%, 15%, ... 95%), each anchored to the
reference run's last output line before it (killed that long after the same line, or when the next
line comes), so the kills land in the same phases whatever the load of a shared machine. After each kill:
the bundle is byte-identical to the one before (or, where the kill came after the swap, a complete
new bundle), ``edgepose.load`` runs a frame with it and ``edgepose verify`` gives the verdict the good
bundle got. Then one more complete run must leave nothing behind: no ``.NAME.*.partial|.tmp|.old-*``
beside the bundle and no ``edgepose-export-*`` / ``edgepose-quantize-*`` in the temp dir (``TMPDIR``
points at a fresh folder). Each moment's outcome is printed (``pytest -s``): where the run was (its
last progress line), what it left, and whether the next run cleaned it.

The quantised bundle comes from a saved seed-0 random-init checkpoint, so ``verify`` can rebuild its
PyTorch reference (``--weights``); random weights fail the int8 parity check (``--no-strict`` keeps
the bundle), so for quantize "verify passes" means: the same verdict (exit code and per-stage result)
as right after the good run. Slow (about 5 min for export, 10 for quantize on 2 idle cores; 25 and
50 min at load 15): ``EDGEPOSE_SLOW=1``.

``test_a_kill_inside_the_swap_keeps_a_copy`` (fast) puts a directory in the state a SIGKILL leaves
between the two renames of ``atomic_dir``'s swap (the bundle renamed to ``.NAME.old-<pid>``, the new
one still ``.NAME.<pid>-*.partial``), which timed kills cannot hit reliably, and checks that the
next write keeps a copy.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.cli import app

MOMENTS = [round(0.05 + 0.1 * i, 2) for i in range(10)]  # fractions of the measured runtime
MODEL = "dsta_mnv2_tiny"
TEMP_PREFIXES = ("edgepose-export-", "edgepose-quantize-")


def _command(kind: str, out: Path, ckpt: Path) -> list[str]:
    cli = [sys.executable, "-m", "edgepose.cli"]
    if kind == "export":
        return cli + ["export", MODEL, "--format", "onnx", "--out", str(out)]
    return cli + [
        "quantize",
        MODEL,
        "--weights",
        str(ckpt),
        "--data",
        "synthetic",
        "--format",
        "onnx",
        "--calib",
        "8",
        "--eval-limit",
        "20",
        "--no-latency",
        "--no-strict",
        "--out",
        str(out),
    ]


def _snapshot(bundle: Path) -> dict[str, str]:
    if not bundle.is_dir():
        return {}
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bundle.iterdir()) if p.is_file()
    }


def _leftovers(bundle: Path, tmp: Path) -> list[str]:
    beside = [p.name for p in bundle.parent.iterdir() if p.name.startswith(f".{bundle.name}.")]
    temp = [p.name for p in tmp.iterdir() if p.name.startswith(TEMP_PREFIXES)]
    return sorted(beside) + sorted(f"$TMPDIR/{n}" for n in temp)


def _runs_a_frame(bundle: Path) -> int:
    import edgepose

    est = edgepose.PoseEstimator(edgepose.load(bundle))
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    poses = est(img, np.array([[60, 20, 200, 230]], np.float32))
    assert len(poses) == 1 and np.isfinite(poses[0].keypoints).all()
    return len(poses)


def _verify(bundle: Path, kind: str, ckpt: Path) -> tuple[int, str]:
    args = ["verify", str(bundle)] + (["--weights", str(ckpt)] if kind == "quantize" else [])
    res = CliRunner().invoke(app, args)
    # the verdict: exit code and each stage's ok/FAILED, not the timings or paths
    words = [w for w in res.output.split() if w in ("ok", "FAILED", "structural")]
    return res.exit_code, " ".join(words)


def _run(cmd, env, log: Path, kill_at: tuple[int, float] | None = None):
    """Run ``cmd``, time-stamping each output line. ``kill_at=(k, d)``: SIGKILL it ``d`` s after its
    line ``k`` appeared (``k=-1``: after the start), or at once if line ``k+1`` comes first, so the
    kill lands in the same phase of the run as in the timed reference run whatever the machine's load.
    Returns (lines [(t, text)], finished, returncode)."""
    t0 = time.monotonic()
    p = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[tuple[float, str]] = []

    def read():
        with open(log, "w") as f:
            for line in p.stdout:
                f.write(line)
                lines.append((time.monotonic() - t0, line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed, deadline = False, None
    try:
        while kill_at is not None and p.poll() is None:
            k, d = kill_at
            if deadline is None and len(lines) >= k + 1:
                deadline = time.monotonic() + d
            if deadline is not None and (time.monotonic() >= deadline or len(lines) > k + 1):
                os.kill(p.pid, signal.SIGKILL)  # the run itself, as the OOM killer or `kill -9` would
                killed = True
                break
            time.sleep(0.005)
        rc = p.wait()
    finally:
        try:  # anything it started (converters) goes too, so the next run is not raced
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        reader.join(timeout=30)
    return lines, not killed, rc


def _anchor(ref: list[tuple[float, str]], at: float) -> tuple[int, float]:
    """(k, d): the reference run's last line before ``at`` seconds and the time from it to ``at``."""
    k = max((i for i, (t, _) in enumerate(ref) if t <= at), default=-1)
    return k, at - (ref[k][0] if k >= 0 else 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["export", "quantize"])
def test_sigkill_at_ten_moments_keeps_the_previous_bundle_and_leaves_nothing(kind, tmp_path):
    from edgepose.zoo import create_model
    from edgepose.zoo.checkpoints import save_checkpoint

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1", COLUMNS="250")
    ckpt = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(create_model(MODEL).eval(), ckpt)
    bundle = tmp_path / "out" / "bundle"
    cmd = _command(kind, bundle, ckpt)

    times = []
    # the first run fills caches in the fresh TMPDIR (torch's compile cache): time the second
    for i in range(2):
        t = time.monotonic()
        ref, finished, rc = _run(cmd, env, tmp_path / f"complete{i}.log")
        times.append(time.monotonic() - t)
        assert rc == 0, (tmp_path / f"complete{i}.log").read_text()[-3000:]
    runtime = times[-1]
    good = _snapshot(bundle)
    assert good and "manifest.json" in good
    _runs_a_frame(bundle)
    verdict = _verify(bundle, kind, ckpt)
    if kind == "export":
        assert verdict[0] == 0, verdict
    print(
        f"\n{kind}: complete runs {times[0]:.1f}s (cold) and {runtime:.1f}s, verify {verdict}; killing at "
        f"{MOMENTS} of the runtime, each anchored to the reference run's last output line before it"
    )

    rows, failures = [], []
    for i, frac in enumerate(MOMENTS):
        before = set(_leftovers(bundle, tmp))
        k, d = _anchor(ref, frac * runtime)
        lines, finished, rc = _run(cmd, env, tmp_path / f"kill{i}.log", kill_at=(k, d))
        anchor = "the start" if k < 0 else repr(ref[k][1].strip()[-50:])
        where = (
            "finished before the kill"
            if finished
            else (f"{d:.1f}s after {anchor}" + ("" if len(lines) <= k + 1 else " (the next line came first)"))
        )
        now = _snapshot(bundle)
        state = "intact" if now == good else ("missing" if not now else "replaced")
        problems = []
        try:
            _runs_a_frame(bundle)
        except Exception as e:  # noqa: BLE001 - any failure to load/run is the finding
            problems.append(f"load/run: {type(e).__name__}: {str(e)[:200]}")
        v = _verify(bundle, kind, ckpt)
        if v != verdict:
            problems.append(f"verify {v} != {verdict}")
        if state == "replaced" and not problems:
            good = now  # the kill came after the swap: a complete new bundle is the previous one now
        elif state != "intact":
            problems.append(f"bundle {state}")
        left = _leftovers(bundle, tmp)
        cleaned = sorted(before - set(left))
        rows.append((f"{frac:.0%}", f"{frac * runtime:.1f}s", where, state, left, len(cleaned), problems))
        failures += [f"kill at {frac:.0%} ({where}): {p}" for p in problems]

    t = time.monotonic()
    last = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert last.returncode == 0, last.stdout[-3000:] + last.stderr[-3000:]
    left = _leftovers(bundle, tmp)
    _runs_a_frame(bundle)
    final_verdict = _verify(bundle, kind, ckpt)

    print(f"{'kill at':>8} {'ref. t':>7}  {'moment':<90} {'bundle':<8} left (after the kill) / cleaned")
    for frac, after, where, state, left_then, n_cleaned, problems in rows:
        print(
            f"{frac:>8} {after:>7}  {where:<90} {state:<8} {len(left_then)} {left_then} / {n_cleaned}"
            + (f"  PROBLEMS: {problems}" if problems else "")
        )
    print(
        f"next complete run ({time.monotonic() - t:.1f}s): leftovers {left or 'none'}, verify {final_verdict}"
    )

    assert not failures, "\n".join(failures)
    assert final_verdict == verdict or (kind == "export" and final_verdict[0] == 0)
    assert not left, f"leftovers after a complete run: {left}"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has it (until the system reuses it)


def test_a_kill_inside_the_swap_keeps_a_copy(tmp_path):
    """atomic_dir swaps with two renames (bundle -> .NAME.old-<pid>, then the staging dir -> bundle);
    a writer killed between them leaves no bundle. The next write into the place restores the previous
    bundle (even when that write then fails) and removes the dead writer's staging dir."""
    from edgepose.core.atomic import atomic_dir

    dead = _dead_pid()
    old = tmp_path / f".bundle.old-{dead}"  # the previous bundle, moved aside
    old.mkdir()
    (old / "manifest.json").write_text("previous")
    stage = tmp_path / f".bundle.{dead}-ab12cd.partial"  # the new one, complete, not yet renamed
    stage.mkdir()
    (stage / "manifest.json").write_text("new")
    assert not (tmp_path / "bundle").exists()  # what a reader sees in this state: no bundle
    try:
        with atomic_dir(tmp_path / "bundle") as s:  # the next export into the same place: it fails
            raise RuntimeError(f"conversion failed (stage {s.name})")
    except RuntimeError:
        pass
    assert (tmp_path / "bundle" / "manifest.json").read_text() == "previous"
    assert sorted(os.listdir(tmp_path)) == ["bundle"], os.listdir(tmp_path)
