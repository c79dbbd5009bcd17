"""Torch backend: a TorchScript file, a ``torch.export`` program (.pt2), or one stage of a zoo checkpoint.

It is the reference the other backends are verified against, and a way to run
a model on a CUDA machine without exporting. torch is imported only when a
session opens, so the device side stays torch-free. Which kind a file is comes
from its zip members (TorchScript has ``code/``, a .pt2 archive ``models/*.json``,
a checkpoint neither); checkpoints are read with ``weights_only=True``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.manifest import StageEntry, TensorInfo
from .base import BaseSession, SessionInputError, bad_file, check_exists, dims
from .devices import Resolution, Target
from .registry import require

TARGETS: dict[str, tuple[Target, ...]] = {
    "cpu": (Target("cpu"),),
    "gpu": (
        Target("cuda", "a CUDA build of torch and an NVIDIA driver"),
        Target("mps", "macOS on Apple silicon"),
    ),
    "npu": (),
}


def probe() -> tuple[set[str], str]:
    torch = require("torch")
    present = {"cpu"}
    if torch.cuda.is_available():
        present.add("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        present.add("mps")
    return present, ""


def base_name(name: str) -> str:
    return name.split(":")[0]  # 'cuda:1' is listed as 'cuda'


def pinned_name(requested: str, match: str) -> str:
    return requested  # keep the index: 'cuda:1'


KINDS = ("torchscript", "exported_program", "checkpoint")


def file_kind(path: str | os.PathLike) -> str:
    """'torchscript', 'exported_program' or 'checkpoint', from the archive's member names (no torch needed)."""
    p = check_exists(path, min_bytes=22)  # 22 bytes: an empty zip's end-of-central-directory record
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise bad_file(p, f"is not a torch archive (zip): {e}") from None
    if any("/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/archive_format") or ("/models/" in n and n.endswith(".json")) for n in names):
        return "exported_program"
    if any(n.endswith("data.pkl") for n in names):
        return "checkpoint"
    raise bad_file(p, "is a zip but neither TorchScript, a torch.export program nor a torch.save checkpoint")


def check_file(path: str | os.PathLike) -> None:
    file_kind(path)


def _np_dtype(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _to_numpy(t) -> np.ndarray:
    import torch  # lazy: torch

    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.cpu().numpy()


class TorchSession(BaseSession):
    backend = "torch"

    def __init__(
        self,
        path: Path,
        choice: Resolution,
        allow_fallback: bool = False,
        stage: str | None = None,
        model: str | None = None,
        inputs: Sequence[TensorInfo] | None = None,
        outputs: Sequence[TensorInfo] | None = None,
        entry: StageEntry | None = None,
        threads: int | None = None,
    ):
        torch = require("torch")
        self._torch = torch
        self.path = Path(path)
        self.kind = file_kind(self.path)
        self.device = choice.name
        self.reason = choice.reason
        self._dev = torch.device(choice.name)
        if threads:
            torch.set_num_threads(int(threads))
        if entry is not None:
            inputs, outputs = entry.inputs, entry.outputs
        in_hint, out_hint = tuple(inputs or ()), tuple(outputs or ())
        loader = {
            "torchscript": self._load_script,
            "exported_program": self._load_program,
            "checkpoint": self._load_checkpoint,
        }[self.kind]
        ins, outs = loader(stage=stage, model=model)
        self._hinted = bool(in_hint)
        self.inputs = in_hint or ins
        self.outputs = out_hint or outs
        self.stage = stage

    # ---- loaders: each sets self._fn (positional tensors -> tensor | tuple | dict) and returns (inputs, outputs)
    def _load_script(self, stage, model):
        torch = self._torch
        try:
            mod = torch.jit.load(str(self.path), map_location=self._dev)
        except Exception as e:
            raise bad_file(
                self.path, f"could not be loaded as TorchScript ({type(e).__name__}: {e})"
            ) from None
        mod.eval()
        names = [a.name for a in mod.forward.schema.arguments][1:]  # drop self
        self._fn = mod
        return tuple(TensorInfo(n, None) for n in names), ()

    def _load_program(self, stage, model):
        torch = self._torch
        try:
            ep = torch.export.load(str(self.path))
        except Exception as e:
            raise bad_file(
                self.path, f"could not be loaded by torch.export.load ({type(e).__name__}: {e})"
            ) from None
        user = list(ep.graph_signature.user_inputs)
        vals = {n.name: n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"}
        ins = []
        for name in user:
            v = vals.get(name)
            if v is None or not hasattr(v, "shape"):
                ins.append(TensorInfo(name, None))
                continue
            shape = [int(s) if isinstance(s, int) or str(s).isdigit() else None for s in v.shape]
            ins.append(TensorInfo(name, dims(shape), _np_dtype(v)))
        self._fn = ep.module().to(self._dev)
        return tuple(ins), ()

    def _load_checkpoint(self, stage, model):
        from ..zoo.checkpoints import load_weights, read_checkpoint  # lazy: torch
        from ..zoo.registry import create_model  # lazy: torch

        obj = read_checkpoint(self.path)
        name = model or obj.get("model")
        if not name:
            raise ValueError(
                f"{self.path.name} does not name its model (an official or bare checkpoint): pass model=... "
                "(one of `edgepose models`)"
            )
        config = obj.get("config") or {}
        net = create_model(name, **config) if obj.get("model") == name else create_model(name)
        load_weights(net, obj)
        net.eval().to(self._dev)
        stages = list(net.stage_names)
        if stage is None:
            if len(stages) != 1:
                raise ValueError(f"{name} has stages {stages}: pass stage=... to open one")
            stage = stages[0]
        mod = net.stage(stage)
        in_names, out_names = mod.input_names, mod.output_names
        example = net.example_inputs(stage, batch=1)
        with self._torch.no_grad():
            res = mod(*[example[n].to(self._dev) for n in in_names])
        self._fn = mod
        self._out_names = list(out_names)

        def info(n, t):
            return TensorInfo(n, ("batch", *t.shape[1:]), _np_dtype(t))

        return (
            tuple(info(n, example[n]) for n in in_names),
            tuple(info(n, t) for n, t in zip(out_names, res)),
        )

    # ---- running
    def prepare(self, feeds):
        if self._hinted or self.kind == "checkpoint":
            return super().prepare(feeds)
        names = self.input_names
        if sorted(feeds) != sorted(names):
            raise SessionInputError(f"{self.path.name}: inputs {names} expected, got {sorted(feeds)}")
        return {n: np.ascontiguousarray(feeds[n]) for n in names}

    def _run(self, feeds):
        torch = self._torch
        args = [torch.from_numpy(feeds[t.name]).to(self._dev) for t in self.inputs]
        with torch.no_grad():
            res = self._fn(*args)
        if isinstance(res, dict):
            return {k: _to_numpy(v) for k, v in res.items()}
        if isinstance(res, torch.Tensor):
            res = (res,)
        names = [t.name for t in self.outputs] or getattr(self, "_out_names", None) or []
        if len(names) != len(res):
            names = [f"output_{i}" for i in range(len(res))]
        return {n: _to_numpy(v) for n, v in zip(names, res)}

    def close(self) -> None:
        self._fn = None


def open_session(
    path: str | os.PathLike, choice: Resolution, allow_fallback: bool = False, **options
) -> TorchSession:
    return TorchSession(Path(path), choice, allow_fallback, **options)
