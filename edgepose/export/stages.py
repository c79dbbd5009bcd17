"""What every converter gets (a ``StageJob``) and gives back (an ``Artifact``), plus shared helpers.

A job is one stage of one model for one format: the stage as a torch module,
example inputs at the export batch, the precision, where to write, and the
metadata to embed in the file. Converters stay small because the naming of
graph inputs, batch axes, layouts and tensor records is done once here.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..core.manifest import TensorInfo
from .formats import ExportError, Format

EXPORT_BATCH_DYNAMIC = 2  # a dynamic batch is exported from batch 2: batch 1 can be baked silently into ViTs
IMAGE_INPUTS = ("image",)  # inputs whose axis order follows the format's layout (NCHW/NHWC)


class QuantizationHook(Protocol):
    """How a quantiser (INT8, a later issue) plugs into any converter without new converter arguments.

    ``before_convert`` may replace the torch module (e.g. a PT2E-quantised one for TFLite);
    ``after_convert`` may rewrite the float artifact in place (e.g. ORT ``quantize_static``,
    NNCF) and return the updated Artifact (with quantised I/O scales in its TensorInfos).
    """

    precision: str

    def before_convert(self, job: StageJob, module: nn.Module) -> nn.Module: ...

    def after_convert(self, job: StageJob, artifact: Artifact) -> Artifact: ...

    # optional: ``converter_options(job) -> dict`` of extra keyword arguments for the format's
    # converter call (litert-torch's ``quant_config`` for a PT2E-quantised module)


@dataclass
class StageJob:
    model_name: str
    stage: str
    module: nn.Module  # the zoo Stage: positional tensors in, tuple out
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    example: dict[str, torch.Tensor]  # at the export batch
    batch: int | None  # None: symbolic batch axis
    precision: str
    fmt: Format
    out_dir: Path  # the bundle being staged
    work_dir: Path  # scratch for intermediates (shared by the formats of one export)
    metadata: dict[str, str]
    cache: dict = field(default_factory=dict)  # intermediates shared across formats (the fp32 ONNX graph)
    options: dict[str, Any] = field(default_factory=dict)
    hook: QuantizationHook | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def file(self) -> Path:
        return self.out_dir / self.fmt.stage_files(self.stage)[0]

    @property
    def image_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in self.input_names if n in IMAGE_INPUTS and self.example[n].dim() == 4)

    def torch_module(self) -> nn.Module:
        module = self.module.eval()
        if self.hook is not None:
            module = self.hook.before_convert(self, module)
        return module

    def converter_options(self) -> dict[str, Any]:
        """Extra converter arguments the hook asks for (none without a hook)."""
        get = getattr(self.hook, "converter_options", None)
        return dict(get(self)) if get is not None else {}

    def finish(self, artifact: Artifact) -> Artifact:
        return self.hook.after_convert(self, artifact) if self.hook is not None else artifact

    def done(
        self, info: dict[str, Any], notes: list[str] | tuple[str, ...] = (), int64_as: str = "int64"
    ) -> Artifact:
        """The written stage as an Artifact (the format's files, the I/O records), through the hook:
        every converter's last step, so they all record a stage the same way."""
        ins, outs = self.tensor_infos(int64_as)
        return self.finish(
            Artifact(self.fmt.stage_files(self.stage), ins, outs, self.batch, list(notes), info=info)
        )

    def reference_outputs(self) -> dict[str, torch.Tensor]:
        key = ("outputs", self.model_name, self.stage, self.batch)
        if key not in self.cache:
            with torch.no_grad():
                out = self.module.eval()(*self.example.values())
            self.cache[key] = dict(zip(self.output_names, out))
        return self.cache[key]

    def tensor_infos(self, int64_as: str = "int64") -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
        """Manifest records of the graph I/O: batch symbolic or fixed, image inputs in the format layout."""
        batch_dim: int | str = "batch" if self.batch is None else self.batch

        def info(name: str, t: torch.Tensor, image: bool) -> TensorInfo:
            shape = [batch_dim, *t.shape[1:]]
            if image and self.fmt.layout == "NHWC":
                shape = [shape[0], *shape[2:], shape[1]]
            dtype = str(t.dtype).replace("torch.", "")
            if dtype == "int64":
                dtype = int64_as
            return TensorInfo(name, tuple(shape), dtype)

        ins = tuple(info(n, self.example[n], n in self.image_inputs) for n in self.input_names)
        outs = tuple(info(n, t, False) for n, t in self.reference_outputs().items())
        return ins, outs


@dataclass
class Artifact:
    """A converted stage: its files (relative to the bundle), I/O records and what to tell the user."""

    files: tuple[str, ...]
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    batch: int | None
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # converter facts for the manifest's extra


def named_module(
    stage: nn.Module,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    nhwc_inputs: tuple[str, ...] = (),
    dict_outputs: bool = False,
) -> nn.Module:
    """Wrap a positional Stage in a module whose ``forward`` has the stage's input names as parameters.

    Exporters name graph inputs after ``forward``'s parameters (litert-torch's signature,
    torch.export's dynamic shapes), so the names must be real parameters. ``nhwc_inputs``
    arrive channel-last and are permuted to the NCHW the model computes in (the transpose is
    then folded into the first convolution by the converter).
    """
    for n in (*input_names, *output_names):
        if not n.isidentifier() or keyword.iskeyword(n):
            raise ExportError(
                f"stage tensor name {n!r} is not a Python identifier; rename it in the zoo model"
            )
    args = ", ".join(input_names)
    body = [f"def forward(self, {args}):"]
    for n in nhwc_inputs:
        body.append(f"    {n} = {n}.permute(0, 3, 1, 2)")
    body.append(f"    out = self.stage({args})")
    body.append("    return dict(zip(self.output_names, out))" if dict_outputs else "    return tuple(out)")
    namespace: dict[str, Any] = {}
    exec("\n".join(body), namespace)  # noqa: S102 - generated from validated identifiers only
    cls = type(f"Named_{type(stage).__name__}", (nn.Module,), {"forward": namespace["forward"]})
    wrapper = cls()
    wrapper.stage = stage
    wrapper.output_names = tuple(output_names)
    return wrapper.eval()


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[Path | None]:
    """Silence converter chatter (progress bars, C++ logs on fd 1/2, warnings) while converting.

    The text is kept in a log file; on failure its tail is appended to the error so nothing
    useful is lost. ``EDGEPOSE_VERBOSE=1`` shows everything.
    """
    if not enabled or os.environ.get("EDGEPOSE_VERBOSE"):
        yield None
        return
    # <prefix><pid>-*: a killed run's log is removed by the next export (core.atomic.clean_temp_dirs)
    log = tempfile.NamedTemporaryFile(prefix=f"edgepose-export-{os.getpid()}-", suffix=".log", delete=False)
    saved = []
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for fd in (1, 2):
            saved.append(os.dup(fd))
            os.dup2(log.fileno(), fd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Path(log.name)
    except BaseException as e:
        sys.stdout.flush()
        sys.stderr.flush()
        _restore(saved)
        saved = []
        tail = _tail(Path(log.name))
        if tail and isinstance(e, Exception) and e.args and isinstance(e.args[0], str):
            e.args = (f"{e.args[0]}\n--- converter log (last lines) ---\n{tail}", *e.args[1:])
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _restore(saved)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


def _restore(saved: list[int]) -> None:
    for fd, dup in zip((1, 2), saved):
        os.dup2(dup, fd)
        os.close(dup)


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    keep = [ln for ln in text.splitlines() if ln.strip() and "Warning" not in ln][-lines:]
    return "\n".join(keep)


def file_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


# ----------------------------------------------------------------------------- shared weights

SHARED_MAGIC = b"EDGEPOSE-SHARED-WEIGHTS\n"  # a stray weight file still says what it is
SHARED_HEADER_BYTES = 4096  # the header (magic + JSON) is padded to this; tensors follow
SHARED_ALIGN = 64  # every tensor starts on a 64-byte boundary (SIMD loads from a mapped file)
SHARE_MIN_FRACTION = 0.25  # share only when stages hold this much of their weight bytes in common


@dataclass
class SharedWeights:
    """One weight file several stage graphs point into, each distinct tensor stored once.

    Tensors are matched by content: element type, shape and the sha256 of their bytes. Names
    cannot be trusted across graphs: an exporter names folded constants per graph (the same
    transposed ViT weight is ``val_18`` in one SHaRPose stage and ``val_89`` in the other) and
    reuses a name for different tensors (``val_59`` differs between the two).
    """

    blobs: dict[tuple, bytes] = field(default_factory=dict)  # key -> bytes, in first-seen order
    users: dict[tuple, set[str]] = field(default_factory=dict)  # key -> stages that hold it
    per_stage: dict[str, int] = field(default_factory=dict)  # stage -> its weight bytes (unshared)
    tensors: int = 0  # tensor references, all stages

    @staticmethod
    def key(dtype: str, shape, data: bytes) -> tuple:
        import hashlib

        return (str(dtype), tuple(int(d) for d in shape), hashlib.sha256(data).hexdigest())

    def add(self, stage: str, dtype: str, shape, data: bytes) -> tuple:
        k = self.key(dtype, shape, data)
        self.blobs.setdefault(k, bytes(data))
        self.users.setdefault(k, set()).add(stage)
        self.per_stage[stage] = self.per_stage.get(stage, 0) + len(data)
        self.tensors += 1
        return k

    @property
    def unshared_bytes(self) -> int:
        return sum(self.per_stage.values())

    @property
    def stored_bytes(self) -> int:
        return sum(len(b) for b in self.blobs.values())

    @property
    def saved_bytes(self) -> int:
        return self.unshared_bytes - self.stored_bytes

    @property
    def common_bytes(self) -> int:
        """Bytes of the tensors more than one stage holds."""
        return sum(len(b) for k, b in self.blobs.items() if len(self.users[k]) > 1)

    def worth_sharing(self) -> bool:
        """Only stages that hold a real model in common (SHaRPose's one ViT) share a file; stages that
        merely agree on a few LayerNorm vectors of ones keep their self-contained graphs."""
        return len(self.per_stage) > 1 and self.common_bytes >= SHARE_MIN_FRACTION * self.unshared_bytes

    def write(self, path: Path, header: dict[str, Any]) -> dict[tuple, tuple[int, int]]:
        """Write the file (header, then each distinct tensor aligned) -> {key: (offset, length)}."""
        import json

        head = SHARED_MAGIC + json.dumps(
            {
                **header,
                "tensors": len(self.blobs),
                "bytes": self.stored_bytes,
                "unshared_bytes": self.unshared_bytes,
                "matched_by": "element type, shape and sha256 of the bytes",
                "align": SHARED_ALIGN,
            },
            sort_keys=True,
        ).encode("utf-8")
        if len(head) > SHARED_HEADER_BYTES:
            raise ExportError(f"shared weight header is {len(head)} bytes, over {SHARED_HEADER_BYTES}")
        placed: dict[tuple, tuple[int, int]] = {}
        with open(path, "wb") as f:
            f.write(head.ljust(SHARED_HEADER_BYTES, b"\0"))
            for k, data in self.blobs.items():
                pad = -f.tell() % SHARED_ALIGN
                f.write(b"\0" * pad)
                placed[k] = (f.tell(), len(data))
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return placed

    def record(self, file: str, sha256: str, size: int) -> dict[str, Any]:
        """What the manifest's ``extra["shared_weights"]`` says about the file."""
        return {
            "file": file,
            "sha256": sha256,
            "size": size,
            "stages": sorted(self.per_stage),
            "tensors": len(self.blobs),
            "tensor_refs": self.tensors,
            "shared_tensors": sum(1 for u in self.users.values() if len(u) > 1),
            "unshared_bytes": self.unshared_bytes,
            "common_bytes": self.common_bytes,
            "saved_bytes": self.saved_bytes,
            "matched_by": "element type, shape and sha256 of the bytes",
        }


def read_shared_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON header of a shared weight file, or None if ``path`` is not one."""
    import json

    with open(path, "rb") as f:
        head = f.read(SHARED_HEADER_BYTES)
    if not head.startswith(SHARED_MAGIC):
        return None
    return json.loads(head[len(SHARED_MAGIC) :].rstrip(b"\0").decode("utf-8"))
