"""PT2E plumbing shared by TFLite PTQ, Core ML W8A8 and QAT (torchao's ``prepare_pt2e`` family).

* ``export_for_quantization``: ``torch.export`` of a stage with named inputs, optionally a
  symbolic batch (exported from batch >= 2: from batch 1 a ViT's reshapes can bake 1 in).
* ``ScopedQuantizer``: any PT2E quantizer, minus the model's float scopes. The backend
  quantizers' own module filters either cannot skip a module (litert-torch's refuses a None
  config) or rebuild module names from mangled keys (``head_coord`` -> ``head.coord``), so
  this wrapper lets the inner quantizer annotate everything and then removes the
  annotations of nodes whose ``nn_module_stack`` lies in a float scope, together with any
  annotation that shared its parameters with a removed one.
"""

from __future__ import annotations

import pydoc
import warnings
from collections.abc import Iterable

import torch

from .scopes import Scope, fx_node_path, match

ANNOTATION = "quantization_annotation"


def export_for_quantization(
    module: torch.nn.Module, example: dict[str, torch.Tensor], dynamic_batch: bool, positional: bool = False
):
    """``torch.export`` ``module`` (forward with named tensor parameters) -> a GraphModule for PT2E.

    ``positional``: traced with positional arguments (in ``example``'s order), so the result is
    called like the zoo's Stage; otherwise with keyword arguments (litert-torch's convention).
    """
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=4096)
        dynamic = {n: {0: batch} for n in example}
    args, kwargs = (tuple(example.values()), {}) if positional else ((), dict(example))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(module, args, kwargs, dynamic_shapes=dynamic, strict=False)
    return ep.module()


def _refs(spec) -> list:
    from torchao.quantization.pt2e.quantizer import (  # lazy: torchao
        DerivedQuantizationSpec,
        SharedQuantizationSpec,
    )

    if isinstance(spec, SharedQuantizationSpec):
        return [spec.edge_or_node]
    if isinstance(spec, DerivedQuantizationSpec):
        return list(spec.derived_from)
    return []


def _integer(node, model: torch.fx.GraphModule) -> bool:
    """A node producing an integer tensor (SHaRPose's patch index, index constants the export
    lifted into ``get_attr`` nodes): observers cannot histogram it."""
    if not isinstance(node, torch.fx.Node):
        return False
    val = node.meta.get("val")
    if val is None and node.op == "get_attr":
        val = getattr(model, str(node.target), None)
    return isinstance(val, torch.Tensor) and not val.dtype.is_floating_point


def strip_annotations(model: torch.fx.GraphModule, scopes: tuple[Scope, ...]) -> list[str]:
    """Remove quantisation annotations inside ``scopes``, on integer tensors, and those depending on
    them; return the node names."""
    removed: set = set()
    for node in model.graph.nodes:
        ann = node.meta.get(ANNOTATION)
        if ann is None:
            continue
        if (
            match(fx_node_path(node), scopes)
            or _integer(node, model)
            or any(_integer(a, model) for a in ann.input_qspec_map)
        ):
            removed.add(node)
    changed = True
    while changed:  # drop annotations that share or derive their qparams from a removed one
        changed = False
        for node in model.graph.nodes:
            ann = node.meta.get(ANNOTATION)
            if ann is None or node in removed:
                continue
            specs = [*ann.input_qspec_map.values(), ann.output_qspec]
            for ref in (r for s in specs if s is not None for r in _refs(s)):
                owner = ref[1] if isinstance(ref, tuple) else ref
                if owner in removed:
                    removed.add(node)
                    changed = True
                    break
    for node in removed:
        node.meta.pop(ANNOTATION, None)
    return sorted(n.name for n in removed)


def split_repeated_calls(model: torch.fx.GraphModule) -> int:
    """Give each call of a module called more than once its own source partition.

    Quantizers find a Conv2d's nodes by the module they came from; SHaRPose's fine stage runs
    ``patch_embed`` twice (fine patches and the coarse embedding), and X86InductorQuantizer
    then sees one conv "partition" with two outputs and refuses it. Each call is one aten
    node, so labelling them apart is exact.
    """

    groups: dict[object, list] = {}
    for n in model.graph.nodes:
        if n.op != "call_function":
            continue
        stack = n.meta.get("source_fn_stack")
        if stack:
            groups.setdefault(("fn", stack[-1][0]), []).append(n)
        elif n.meta.get("nn_module_stack"):  # non-strict export: partitions come from the module stack
            groups.setdefault(("mod", list(n.meta["nn_module_stack"].values())[-1][0]), []).append(n)
    split = 0
    for (kind, key), nodes in groups.items():
        if len(nodes) < 2 or len({n.target for n in nodes}) != 1:  # only k calls of a one-node module
            continue
        for i, n in enumerate(nodes):
            if kind == "fn":
                stack = list(n.meta["source_fn_stack"])
                stack[-1] = (f"{stack[-1][0]}__call{i}", stack[-1][1])
            else:
                cls = list(n.meta["nn_module_stack"].values())[-1][1]
                cls = pydoc.locate(cls) if isinstance(cls, str) else cls
                if cls is None:
                    continue
                stack = [(f"{key}__call{i}", cls)]
            n.meta["source_fn_stack"] = stack
        split += 1
    return split


def close_fused_outputs(model: torch.fx.GraphModule) -> int:
    """Quantise the output of every quantised conv/linear that a fused pattern left in float.

    X86InductorQuantizer annotates conv+add as one fused pattern (Inductor has an int8
    conv-add kernel): the conv's output is not quantised, only the add's other input. Exported
    to ONNX that is ``DequantizeLinear -> Conv -> Add``, which ONNX Runtime cannot turn into
    QLinearConv, so those convolutions ran in float between layout transposes (measured on
    DSTA's frame stage: 10 of 53 convolutions). With the conv output quantised (the input's
    activation spec) it becomes ``QLinearConv`` + ``QLinearAdd``.
    """
    ops = torch.ops.aten
    targets = (ops.conv2d.default, ops.linear.default, ops.batch_norm.default)  # QAT: conv -> BN -> add
    adds = (ops.add.Tensor, ops.add_.Tensor)
    closed = 0
    for node in model.graph.nodes:
        ann = node.meta.get(ANNOTATION)
        if node.target not in targets or ann is None or ann.output_qspec is not None or not node.args:
            continue
        source = node.args[0] if node.target == ops.batch_norm.default else node
        source_ann = source.meta.get(ANNOTATION) if hasattr(source, "meta") else None
        act = (
            source_ann.input_qspec_map.get(source.args[0]) if source_ann is not None and source.args else None
        )
        if act is None:
            continue
        users = list(node.users)
        if users and all(u.target in adds and ANNOTATION in u.meta for u in users):
            ann.output_qspec = act
            closed += 1
    return closed


def scoped_quantizer(inner, scopes: tuple[Scope, ...], close_outputs: bool = False):
    """``inner`` (a torchao PT2E Quantizer) that leaves ``scopes`` in float; ``.float_nodes`` lists them.

    ``close_outputs``: also ``close_fused_outputs`` (for graphs exported to ONNX Runtime)."""
    from torchao.quantization.pt2e.quantizer import Quantizer  # lazy: torchao

    class ScopedQuantizer(Quantizer):
        def __init__(self):
            super().__init__()
            self.inner, self.scopes, self.float_nodes = inner, tuple(scopes), []

        def transform_for_annotation(self, model):
            model = self.inner.transform_for_annotation(model)
            split_repeated_calls(model)
            return model

        def annotate(self, model):
            model = self.inner.annotate(model)
            if close_outputs:
                close_fused_outputs(model)
            self.float_nodes = strip_annotations(model, self.scopes)
            return model

        def validate(self, model):
            self.inner.validate(model)

        def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq):
            return self.inner.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)

        def __getattr__(self, name):  # global_config etc. for converters that inspect the quantizer
            if name == "inner":
                raise AttributeError(name)
            return getattr(self.inner, name)

    return ScopedQuantizer()


@torch.no_grad()
def calibrate(prepared: torch.fx.GraphModule, batches: Iterable[dict[str, torch.Tensor]]) -> int:
    """Feed calibration batches through a ``prepare_pt2e`` model (observers record ranges)."""
    n = 0
    for feeds in batches:
        prepared(**feeds)
        n += 1
    if n == 0:
        raise ValueError("no calibration batches: the calibration set is smaller than one batch")
    return n


def quantize_module(module, example, quantizer, batches, dynamic_batch: bool = False, fold: bool = False):
    """export -> prepare_pt2e -> calibrate -> convert_pt2e: a PTQ'd GraphModule with q/dq ops."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # lazy: torchao

    gm = export_for_quantization(module, example, dynamic_batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(gm, quantizer)
        calibrate(prepared, batches)
        return convert_pt2e(prepared, fold_quantize=fold)


def count_qdq(gm: torch.fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and "quantize_per" in str(n.target))
