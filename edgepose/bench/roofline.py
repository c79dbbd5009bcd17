"""The roofline of this CPU: how many GFLOP/s the runtimes reach, and how close each real stage gets.

Issue 19 asks for every conv/matmul-heavy stage at >= 50% of what its runtime reaches on a plain
net of the same shapes. Nothing in the zoo says what that ceiling is, so it is measured here:

* **Ceilings**: three plain nets built in torch and exported to ONNX (opset 17) - a dense 3x3 conv
  stack at DSTA's 64x48 feature size, a MobileNet-V2 inverted-residual stack at the zoo's
  256x192 backbone shapes, and pre-norm transformer blocks at ViT-S's 192 tokens - run through
  ONNX Runtime and OpenVINO, fp32 and int8 (ORT static QDQ; OpenVINO reads that same QDQ graph),
  at each thread count.
* **Stages**: every stage graph of the zoo models' cached bundles and the ``.assets`` detectors,
  fp32, same runtimes and threads, each against the ceiling of its kind (``kind_of``).

FLOPs are MACs (the project's unit, ``edgepose.zoo.costs``), counted on the ONNX graph itself
(``onnx_macs``: Conv, ConvTranspose, MatMul, Gemm, GridSample) so that external detectors count
the same way as our own stages; the test checks it against the torch counter of ``costs``.
Timing: warm-up, then interleaved rounds over every session in random order, each round the
median of ``reps`` calls, the result the median over rounds. The machine is shared and its load
changes within a round, so each stage's ceiling runs right after it and the % of ceiling is the
median of those back-to-back ratios (``time_interleaved``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .report import Table, new_figure, save_figure

RUNTIMES = ("ort", "ov")
RUNTIME_NAMES = {"ort": "ONNX Runtime", "ov": "OpenVINO"}
KINDS = ("dense", "mbv2", "vit")
KIND_NAMES = {"dense": "dense 3x3 conv", "mbv2": "MobileNet-V2 blocks", "vit": "transformer blocks"}
ZOO_MODELS = ("dsta_mnv2", "dsta_mnv2_coco", "distilpose_s", "tar_vitpose_s", "sharpose_s")
DETECTORS = (("nanodet", (416, 416)), ("centernet", (512, 512)), ("movenet-multipose", (384, 512)))


@dataclass
class Settings:
    threads: tuple[int, ...] = (1, 2)
    runtimes: tuple[str, ...] = RUNTIMES
    precisions: tuple[str, ...] = ("fp32", "int8")  # of the ceilings; stages run fp32 (their bundles)
    models: tuple[str, ...] = ZOO_MODELS
    detectors: tuple[str, ...] = tuple(d for d, _ in DETECTORS)
    rounds: int = 5
    reps: int = 3  # calls per session per round (median)
    warmup: int = 2
    scale: float = 1.0  # <1 shrinks the plain nets (tests)
    rounds_run: int = 0  # filled in by the timing (the budget may stop it early)
    budget_s: float = 480.0  # stop adding rounds (>= 2) once the timing has run this long
    calib: int = 8  # random calibration samples for the int8 ceilings
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def to_dict(self) -> dict:
        return {
            k: v for k, v in vars(self).items() if k not in ("progress",) and not (k == "scale" and v == 1.0)
        }


def quick(**kw) -> Settings:
    """A minute or two: small plain nets, DSTA-MNv2 and NanoDet only, two rounds."""
    base = dict(models=("dsta_mnv2",), detectors=("nanodet",), rounds=2, reps=2, warmup=1, scale=0.5)
    return Settings(**{**base, **kw})


# -- the plain nets -------------------------------------------------------------------------------
def plain_net(kind: str, scale: float = 1.0):
    """(torch module, example input) of one ceiling kind; ``scale`` < 1 shrinks it for tests."""
    import torch
    from torch import nn

    def c(n: int) -> int:  # channels, kept divisible by 8
        return max(8, int(round(n * scale / 8)) * 8)

    def hw(h: int, w: int) -> tuple[int, int]:
        return max(4, int(h * scale)), max(3, int(w * scale))

    if kind == "dense":  # DSTA's 64x48 feature map, 96-128 channels, 3x3 convs
        ch = c(128)
        layers: list = [nn.Conv2d(c(96), ch, 3, padding=1), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()]
        net, x = nn.Sequential(*layers), torch.randn(1, c(96), *hw(64, 48))
    elif kind == "mbv2":  # MobileNet-V2 at 256x192: 24ch@64x48, 32ch@32x24, 64ch@16x12, 96ch@16x12
        blocks, cin = [], c(24)
        for cout, n, stride in ((c(24), 1, 1), (c(32), 3, 2), (c(64), 4, 2), (c(96), 3, 1)):
            for i in range(n):
                blocks.append(_InvertedResidual(cin, cout, stride if i == 0 else 1))
                cin = cout
        net, x = nn.Sequential(*blocks), torch.randn(1, c(24), *hw(64, 48))
    elif kind == "vit":  # ViT-S/16 at 256x192: 192 tokens, dim 384, 6 heads, MLP x4
        dim = c(384)
        net = nn.Sequential(*(_Block(dim, heads=max(1, dim // 64)) for _ in range(2)))
        x = torch.randn(1, max(8, int(192 * scale)), dim)
    else:
        raise ValueError(f"unknown plain net {kind!r}; kinds: {KINDS}")
    return net.eval(), x


def _modules():
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int = 6):
            super().__init__()
            hid = cin * expand
            self.res = stride == 1 and cin == cout
            self.body = nn.Sequential(
                nn.Conv2d(cin, hid, 1, bias=False),
                nn.BatchNorm2d(hid),
                nn.ReLU6(),
                nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False),
                nn.BatchNorm2d(hid),
                nn.ReLU6(),
                nn.Conv2d(hid, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    class Block(nn.Module):
        """Pre-norm attention + MLP with the attention as explicit matmuls (what the ViT exports hold)."""

        def __init__(self, dim: int, heads: int):
            super().__init__()
            self.heads = heads
            self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x):
            b, n, d = x.shape
            qkv = self.qkv(self.n1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            att = ((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(b, n, d))
            return x + self.mlp(self.n2(x))

    return InvertedResidual, Block


def _InvertedResidual(*a, **k):
    return _modules()[0](*a, **k)


def _Block(*a, **k):
    return _modules()[1](*a, **k)


def export_onnx(net, x, path: Path) -> Path:
    import torch

    with torch.no_grad():
        torch.onnx.export(net, (x,), str(path), opset_version=17, input_names=["x"], dynamo=False)
    return path


def torch_macs(net, x) -> int:
    """MACs by the project's torch counter (``costs.stage_cost``), for checking ``onnx_macs``."""
    from ..zoo.costs import stage_cost

    class AsModel:  # the two methods stage_cost asks a zoo model for
        def stage(self, name):
            return net

        def example_inputs(self, stage, batch=1):
            return {"x": x}

    return round(stage_cost(AsModel(), "net").gflops * 1e9)


# -- counting MACs on an ONNX graph ---------------------------------------------------------------
def _fixed_inputs(model, shapes: dict[str, Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes: the given ones, else the graph's with every symbolic dim set to 1."""
    init = {t.name for t in model.graph.initializer}
    out = {}
    for i in model.graph.input:
        if i.name in init:
            continue
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
        out[i.name] = tuple((shapes or {}).get(i.name, dims))
    return out


def _shapes(model, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape by onnx shape inference; tensors it leaves open, by running the graph once."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i in m.graph.input:
        if i.name in inputs:
            i.type.tensor_type.ClearField("shape")
            for d in inputs[i.name]:
                i.type.tensor_type.shape.dim.add().dim_value = int(d)
    m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    shapes = {}
    for v in (*m.graph.value_info, *m.graph.input, *m.graph.output):
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    for t in m.graph.initializer:
        shapes[t.name] = tuple(t.dims)
    need = {n for node in m.graph.node if node.op_type in _COUNTED for n in (*node.input, *node.output) if n}
    missing = sorted(need - shapes.keys())
    if missing:  # data-dependent shapes (Resize by a computed size): run once and read them
        import onnxruntime as ort

        have = {o.name for o in m.graph.output}
        for name in missing:
            if name not in have:
                m.graph.output.add().name = name
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: _random_input(i.type, inputs[i.name]) for i in sess.get_inputs() if i.name in inputs}
        for o, val in zip(sess.get_outputs(), sess.run(None, feeds)):
            if o.name in missing:
                shapes[o.name] = tuple(np.asarray(val).shape)
    return shapes


def _random_input(ort_type: str, shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    for name, dtype in (("uint8", np.uint8), ("int64", np.int64), ("int32", np.int32)):
        if name in ort_type:
            return rng.integers(0, 3 if dtype is np.int64 else 255, shape).astype(dtype)
    return rng.standard_normal(shape).astype(np.float32)


def _conv(node, s, attrs) -> int:
    w, y = s[node.input[1]], s[node.output[0]]
    return int(np.prod(y)) * int(np.prod(w[1:]))  # out elements x (Cin/groups) x kernel


def _conv_t(node, s, attrs) -> int:
    x, w = s[node.input[0]], s[node.input[1]]
    return int(np.prod(x)) * w[1] * int(np.prod(w[2:]))  # in elements x Cout/g x kernel


def _matmul(node, s, attrs) -> int:
    a, b = s[node.input[0]], s[node.input[1]]
    if len(a) == 1:
        a = (1, *a)
    if len(b) == 1:
        b = (*b, 1)
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    return int(np.prod(batch)) * a[-2] * a[-1] * b[-1]


def _gemm(node, s, attrs) -> int:
    a, b = s[node.input[0]], s[node.input[1]]
    m, k = (a[1], a[0]) if attrs.get("transA", 0) else a
    n = b[0] if attrs.get("transB", 0) else b[1]
    return m * k * n


def _grid_sample(node, s, attrs) -> int:
    return 4 * int(np.prod(s[node.output[0]]))  # bilinear: four taps (as costs counts it)


_COUNTED = {
    "Conv": _conv,
    "ConvTranspose": _conv_t,
    "MatMul": _matmul,
    "Gemm": _gemm,
    "GridSample": _grid_sample,
}


@dataclass
class GraphMacs:
    total: int
    by_op: dict[str, int]
    depthwise: int  # MACs of depthwise convs (the memory-bound part of a MobileNet)

    @property
    def gmacs(self) -> float:
        return self.total / 1e9


def onnx_macs(path_or_model, shapes: dict[str, Sequence[int]] | None = None) -> GraphMacs:
    """MACs of one inference (no bias adds) from the graph's Conv/ConvTranspose/MatMul/Gemm/GridSample."""
    import onnx
    from onnx import helper

    model = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))
    s = _shapes(model, _fixed_inputs(model, shapes))
    by_op: dict[str, int] = {}
    dw = 0
    for node in model.graph.node:
        count = _COUNTED.get(node.op_type)
        if count is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        macs = count(node, s, attrs)
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
        if node.op_type == "Conv" and attrs.get("group", 1) > 1 and s[node.input[1]][1] == 1:
            dw += macs
    return GraphMacs(sum(by_op.values()), by_op, dw)


def kind_of(m: GraphMacs) -> str:
    """Which ceiling a graph is held against: ``vit`` when matmuls carry most MACs, ``mbv2`` when
    depthwise convs are present (>= 1% of MACs: they set the pace), else ``dense``."""
    mm = m.by_op.get("MatMul", 0) + m.by_op.get("Gemm", 0)
    if mm > m.total / 2:
        return "vit"
    return "mbv2" if m.depthwise >= 0.01 * m.total else "dense"


# -- int8 -----------------------------------------------------------------------------------------
def quantize_qdq(src: Path, dst: Path, samples: int = 8) -> Path:
    """ORT static int8 (QDQ, per-channel weights) calibrated on random inputs: speed does not care."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    inputs = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape]) for i in sess.get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = samples

        def get_next(self):
            if self.left == 0:
                return None
            self.left -= 1
            rng = np.random.default_rng(self.left)
            return {n: rng.standard_normal(shape).astype(np.float32) for n, shape in inputs}

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    return dst


# -- sessions and timing --------------------------------------------------------------------------
def make_runner(
    path: Path, runtime: str, threads: int, inputs: dict[str, tuple[int, ...]]
) -> Callable[[], None]:
    """A no-argument call running the graph once on fixed random inputs, with ``threads`` threads."""
    if runtime == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feeds = {i.name: _random_input(i.type, inputs[i.name]) for i in sess.get_inputs()}
        return lambda: sess.run(None, feeds)
    if runtime == "ov":
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))

        def onnx_name(port) -> str:  # a tensor can carry several names; the graph input's is ours
            return next((n for n in port.get_names() if n in inputs), port.get_any_name())

        model.reshape({onnx_name(i): ov.PartialShape(list(inputs[onnx_name(i)])) for i in model.inputs})
        compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",  # fp32 math unless the graph itself is int8 (QDQ)
            },
        )
        req = compiled.create_infer_request()
        feeds = {}
        for i in compiled.inputs:
            et = i.get_element_type().get_type_name()
            feeds[onnx_name(i)] = _random_input(
                {"u8": "uint8", "i64": "int64", "i32": "int32"}.get(et, "float"), inputs[onnx_name(i)]
            )
        return lambda: req.infer(feeds)
    raise ValueError(f"unknown runtime {runtime!r}; runtimes: {RUNTIMES}")


def time_interleaved(runners: dict, settings: Settings, partner: dict | None = None) -> tuple[dict, dict]:
    """Median ms per call of each runner, and per-round ratios of each runner to its ``partner``.

    Warm-up, then ``rounds`` rounds over all runners in a fresh random order; a runner with a
    partner (its ceiling) runs right after it, so their ratio sees one machine load even when
    other work comes and goes (this machine is shared). A round's value is the median of ``reps``
    calls; the results are medians over rounds (a partner's over all its runs).
    """
    partner = partner or {}
    keys = list(runners)
    for k in keys:
        for _ in range(settings.warmup):
            runners[k]()

    def once(k) -> float:
        ms = []
        for _ in range(settings.reps):
            t0 = time.perf_counter()
            runners[k]()
            ms.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(ms))

    runs: dict = {k: [] for k in keys}
    ratios: dict = {k: [] for k in partner}
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for r in range(settings.rounds):
        if r >= 2 and time.perf_counter() - t0 > settings.budget_s:
            settings.say(f"stopping after {r} rounds: over the {settings.budget_s:.0f} s budget")
            break
        settings.say(f"round {r + 1}/{settings.rounds}")
        for idx in rng.permutation(len(keys)):
            k = keys[idx]
            runs[k].append(once(k))
            if k in partner:
                runs[partner[k]].append(once(partner[k]))
                ratios[k].append(runs[k][-1] / runs[partner[k]][-1])
    settings.rounds_run = min(r + 1, settings.rounds) if keys else 0
    return {k: float(np.median(v)) for k, v in runs.items() if v}, {k: v for k, v in ratios.items() if v}


# -- what is measured -----------------------------------------------------------------------------
@dataclass
class Graph:
    label: str
    group: str  # "ceiling", "stage" or "detector"
    path: Path
    inputs: dict[str, tuple[int, ...]]
    macs: GraphMacs
    kind: str
    precision: str = "fp32"


def ceiling_graphs(settings: Settings, workdir: Path) -> list[Graph]:
    out = []
    for kind in KINDS:
        net, x = plain_net(kind, settings.scale)
        fp32 = export_onnx(net, x, workdir / f"{kind}.onnx")
        macs = onnx_macs(fp32)
        out.append(Graph(KIND_NAMES[kind], "ceiling", fp32, {"x": tuple(x.shape)}, macs, kind, "fp32"))
        if "int8" in settings.precisions:
            q = quantize_qdq(fp32, workdir / f"{kind}.int8.onnx", settings.calib)
            out.append(Graph(KIND_NAMES[kind], "ceiling", q, {"x": tuple(x.shape)}, macs, kind, "int8"))
    return out


def stage_graphs(settings: Settings) -> tuple[list[Graph], list[str]]:
    """Every stage of each zoo model's cached fp32 ONNX bundle (random init, full size), batch 1."""
    from ..core.manifest import read_manifest
    from .bundles import cached_bundle

    out, notes = [], []
    for name in settings.models:
        try:
            root = cached_bundle(name, format="onnx", progress=settings.say)
        except Exception as e:  # noqa: BLE001 - a model that does not export is a note, not a crash
            notes.append(f"{name}: no bundle ({type(e).__name__}: {str(e)[:120]})")
            continue
        man = read_manifest(root)
        for st in man.stages:
            onnx_files = [f for f in st.files if f.endswith(".onnx")]
            if not onnx_files:
                continue
            path = root / onnx_files[0]
            inputs = {i["name"] if isinstance(i, dict) else i.name: _batch1(i) for i in st.inputs}
            macs = onnx_macs(path, inputs)
            out.append(Graph(f"{name}/{st.name}", "stage", path, inputs, macs, kind_of(macs)))
    return out, notes


def _batch1(spec) -> tuple[int, ...]:
    shape = spec["shape"] if isinstance(spec, dict) else spec.shape
    return tuple(d if isinstance(d, int) else 1 for d in shape)


def detector_graphs(settings: Settings) -> tuple[list[Graph], list[str]]:
    import onnx

    from ..core.assets import asset_path

    sizes = dict(DETECTORS)
    out, notes = [], []
    for name in settings.detectors:
        path = asset_path(f"{name}.onnx")
        if path is None:
            notes.append(f"{name}: .onnx asset missing")
            continue
        model = onnx.load(str(path))
        inp = model.graph.input[0]
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        h, w = sizes.get(name, (dims[1], dims[2]))
        shape = (1, 3, h, w) if dims[1] == 3 else (1, h, w, 3)  # NCHW (NanoDet) or NHWC (TF converts)
        inputs = {inp.name: shape}
        macs = onnx_macs(model, inputs)
        out.append(Graph(f"{name} {h}x{w}", "detector", Path(path), inputs, macs, kind_of(macs)))
    return out, notes


def run(settings: Settings | None = None) -> Table:
    settings = settings or Settings()
    t0 = time.time()
    load_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="roofline-") as tmp:
        settings.say("building the plain nets")
        graphs = ceiling_graphs(settings, Path(tmp))
        stages, notes = stage_graphs(settings)
        dets, dnotes = detector_graphs(settings)
        graphs += stages + dets
        notes += dnotes
        runners, failed = {}, {}
        for i, g in enumerate(graphs):
            for rt in settings.runtimes:
                for th in settings.threads:
                    try:
                        runners[(i, rt, th)] = make_runner(g.path, rt, th, g.inputs)
                    except Exception as e:  # noqa: BLE001 - one runtime failing a graph is a cell
                        failed[(g.label, rt)] = _why(e)
        ceiling_of = {(g.kind, g.precision): i for i, g in enumerate(graphs) if g.group == "ceiling"}
        partner = {
            (i, rt, th): (ceiling_of[(g.kind, "fp32")], rt, th)
            for (i, rt, th) in runners
            if (g := graphs[i]).group != "ceiling" and (ceiling_of.get((g.kind, "fp32")), rt, th) in runners
        }
        settings.say(f"timing {len(runners)} sessions, each stage next to its ceiling")
        ms, ratios = time_interleaved(runners, settings, partner)
        runners.clear()
    for (label, rt), why in failed.items():
        notes.append(f"{label} on {RUNTIME_NAMES[rt]}: {why}")
    table = build_table(graphs, ms, ratios, settings, notes, time.time() - t0)
    table.settings["load_avg_1m"] = f"{load_start} at start, {os.getloadavg()[0]:.2f} at end"
    return table


def _why(e: Exception) -> str:
    """The telling line of a runtime's error (OpenVINO's first lines are only its source location)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    tell = next((ln for ln in lines if "failed for" in ln or "Unsupported" in ln), lines[0] if lines else "")
    return f"{type(e).__name__}: {tell[:140]}"


def _col(rt: str, prec: str, th: int) -> str:
    return f"{rt.upper()} {prec} {th}t"


def build_table(
    graphs: list[Graph], ms: dict, ratios: dict, settings: Settings, notes: list[str], seconds: float
) -> Table:
    """Rows of GFLOP/s; a stage's % is the median over rounds of ceiling ms / stage ms x MACs ratio."""
    combos = [(rt, th) for rt in settings.runtimes for th in settings.threads]
    val_cols = [
        _col(rt, p, th) for rt in settings.runtimes for p in settings.precisions for th in settings.threads
    ]
    frac_cols = [f"% {rt.upper()} {th}t" for rt, th in combos]
    table = Table(
        "roofline",
        "Roofline on this CPU: achieved GFLOP/s (GMAC/s) of plain nets (ceilings) and of every stage",
        ["graph", "kind", "GMACs", *val_cols, *frac_cols],
        settings=settings.to_dict(),
        plot=plot,
        seconds=seconds,
    )
    gflops: dict = {}  # (label, rt, prec, th) -> GFLOP/s
    for i, g in enumerate(graphs):
        for rt, th in combos:
            t = ms.get((i, rt, th))
            if t:
                gflops[(g.label, rt, g.precision, th)] = g.macs.gmacs / (t / 1e3)
    index = {g.label: i for i, g in enumerate(graphs) if g.group != "ceiling"}
    top_of = {g.kind: g for g in graphs if g.group == "ceiling" and g.precision == "fp32"}
    raw = []
    seen = set()
    for g in graphs:
        if g.label in seen:
            continue
        seen.add(g.label)
        vals = [
            gflops.get((g.label, rt, p, th))
            for rt in settings.runtimes
            for p in settings.precisions
            for th in settings.threads
        ]
        fracs, paired = [], {}
        for rt, th in combos:
            r = ratios.get((index[g.label], rt, th)) if g.group != "ceiling" else None
            top = top_of.get(g.kind)
            # stage GFLOP/s / ceiling GFLOP/s in one round = (stage MACs / ceiling MACs) / (stage ms / ceiling ms)
            per_round = [100.0 * g.macs.total / top.macs.total / q for q in r] if r and top else []
            fracs.append(float(np.median(per_round)) if per_round else None)
            if per_round:
                paired[f"{rt} {th}t"] = [round(v, 1) for v in per_round]
        name = f"ceiling: {g.label}" if g.group == "ceiling" else g.label
        table.add(name, g.kind, g.macs.gmacs, *vals, *fracs)
        raw.append(
            {
                "graph": g.label,
                "group": g.group,
                "kind": g.kind,
                "macs": g.macs.total,
                "macs_by_op": g.macs.by_op,
                "depthwise_macs": g.macs.depthwise,
                "inputs": {k: list(v) for k, v in g.inputs.items()},
                "percent_of_ceiling_per_round": paired,
                "ms": {
                    f"{rt} {p} {th}t": ms.get((i, rt, th))
                    for i, h in enumerate(graphs)
                    if h.label == g.label
                    for p in [h.precision]
                    for rt, th in combos
                },
            }
        )
    table.extra = {"text_columns": ["graph", "kind"], "graphs": raw, "threads": list(settings.threads)}
    table.notes = [
        "GFLOP/s = GMACs (Conv/ConvTranspose/MatMul/Gemm/GridSample on the ONNX graph, batch 1) / median "
        f"latency; median of {settings.rounds_run} interleaved rounds x {settings.reps} calls after "
        f"{settings.warmup} warm-up; raw onnxruntime / openvino sessions (ORT_ENABLE_ALL; OpenVINO LATENCY, "
        "1 stream, f32 precision hint)",
        "ceilings: dense = 4 3x3 convs 96-128ch at 64x48; mbv2 = 11 inverted-residual blocks 24-96ch from 64x48 "
        "(expand 6); vit = 2 pre-norm blocks dim 384, 6 heads, 192 tokens; int8 = ORT static QDQ (per-channel "
        "weights), OpenVINO reading the same QDQ graph",
        "% = the stage's fp32 GFLOP/s over the fp32 ceiling of its kind (vit: matmuls > half the MACs; mbv2: "
        "depthwise convs >= 1% of MACs; else dense), same runtime and threads; each round the ceiling runs right "
        "after the stage and the % is the median of those paired ratios (so it can differ from the ratio of "
        "the GFLOP/s columns, which are medians over all runs)",
        "zoo stages: cached fp32 ONNX bundles at full size with random init (speed does not depend on the weights)",
        *notes,
    ]
    return table


def plot(table: Table, path: Path) -> None:
    """Bars: each stage's fp32 GFLOP/s; lines: the ceilings (dashed fp32, dotted int8); one panel per
    runtime and thread count (on a loaded machine the 1-thread panels are the steadier)."""
    threads = table.extra.get("threads") or [1]
    runtimes = [rt for rt in RUNTIMES if any(_col(rt, "fp32", th) in table.columns for th in threads)]
    fig, _ = new_figure(5.5 * len(runtimes), 3.6 * len(threads) + 1.0)
    fig.clf()
    colors = {"dense": "tab:blue", "mbv2": "tab:green", "vit": "tab:red"}
    rows = [r for r in table.rows if not str(r[0]).startswith("ceiling")]
    ceilings = [r for r in table.rows if str(r[0]).startswith("ceiling")]
    for a, th in enumerate(threads):
        for b, rt in enumerate(runtimes):
            ax = fig.add_subplot(len(threads), len(runtimes), a * len(runtimes) + b + 1)
            col = table.columns.index(_col(rt, "fp32", th))
            i8 = table.columns.index(_col(rt, "int8", th)) if _col(rt, "int8", th) in table.columns else None
            ax.bar(
                range(len(rows)),
                [r[col] or 0.0 for r in rows],
                color=[colors.get(r[1], "grey") for r in rows],
            )
            for r in ceilings:
                if r[col]:
                    ax.axhline(r[col], color=colors[r[1]], ls="--", lw=1.2, label=f"{r[1]} fp32 {r[col]:.1f}")
                if i8 is not None and r[i8]:
                    ax.axhline(r[i8], color=colors[r[1]], ls=":", lw=1.0, label=f"{r[1]} int8 {r[i8]:.1f}")
            last = a == len(threads) - 1
            ax.set_xticks(
                range(len(rows)), [str(r[0]) for r in rows] if last else [], rotation=60, ha="right"
            )
            ax.tick_params(axis="x", labelsize=7)
            ax.set_ylabel("GFLOP/s (GMAC/s)")
            ax.set_title(
                f"{RUNTIME_NAMES[rt]}, {th} thread(s): stages (bars) vs ceilings (lines)", fontsize=9
            )
            ax.legend(fontsize=6, ncol=2)
    save_figure(fig, path)
