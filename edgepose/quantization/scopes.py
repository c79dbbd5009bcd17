"""Which parts of each model stay in float under INT8, and how graph nodes are matched to them.

Every quantiser in this package quantises only the heavy linear operators (Conv,
ConvTranspose, MatMul/Gemm/Linear) and whatever its runtime fuses around them;
LayerNorm, Softmax, GELU and the decoding arithmetic (sigmoid, softplus, top-k, the
TAR mask threshold) are never quantised by these op choices. On top of that, each
model family keeps some *modules* in float: the ones int8 hurts, found by measuring
(``benchmarks/int8_report.py --measure-scopes`` quantises every candidate on its own
with the others in float, and records the keypoint error and metric drop; each family's
``ScopeChoice`` (``float_scopes`` on its object in ``edgepose.families``) takes ``chosen`` and
``measured`` from that run, ``benchmarks/results/int8_report.md``).

A scope is a module path relative to the model (``head_coord``, ``blocks.*.attn``;
``fnmatch`` patterns, ``*`` crossing dots) and covers that module's whole subtree, or
with ``direct=True`` only the operators the module runs itself (an attention module's
``q @ k^T`` and ``attn @ v``, not its ``qkv``/``proj`` Linears).

Nodes are matched by the module path their exporter recorded: the dynamo ONNX exporter's
``pkg.torch.onnx.name_scopes`` metadata (node names survive ``quant_pre_process`` and
become OpenVINO's friendly names, so NNCF's ignored scope is the same node list), the
TorchScript exporter's ``/stage/model/...`` node names, and the ``nn_module_stack`` of
torch.export (PT2E) nodes.
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass, field

from ..families import families, get_family


@dataclass(frozen=True)
class Scope:
    pattern: str
    direct: bool = False  # only the module's own operators, not its submodules'
    why: str = ""
    stages: tuple[str, ...] = ()  # only in these stages (a module both stages run, e.g. TAR's decoder)

    def applies_to(self, stage: str) -> bool:
        return not self.stages or stage in self.stages

    def matches(self, path: str) -> bool:
        """``path``: the module (relative to the model) that owns an operator."""
        if self.direct:
            return fnmatch.fnmatchcase(path, self.pattern)
        return fnmatch.fnmatchcase(path, self.pattern) or fnmatch.fnmatchcase(path, self.pattern + ".*")

    def __str__(self) -> str:
        return (
            self.pattern
            + (" (own ops)" if self.direct else "")
            + (f" [{'/'.join(self.stages)}]" if self.stages else "")
        )


@dataclass(frozen=True)
class ScopeChoice:
    """A family's candidate float scopes, the ones chosen, and the measurement that chose them."""

    candidates: dict[str, tuple[Scope, ...]]  # name -> scopes (a candidate can span modules)
    chosen: tuple[str, ...]
    measured: str = "benchmarks/results/int8_report.md, section 'Float scopes: the measurement'"
    notes: str = ""
    # quantiser knobs measured for this family (``calibration_method``, NNCF ``preset``, ...):
    # the defaults of a run, under whatever ``options`` the caller passes
    options: dict = field(default_factory=dict)

    def scopes(self, names: tuple[str, ...] | None = None) -> tuple[Scope, ...]:
        names = self.chosen if names is None else names
        unknown = [n for n in names if n not in self.candidates]
        if unknown:
            raise KeyError(f"unknown float scope(s) {unknown}; candidates: {list(self.candidates)}")
        return tuple(s for n in names for s in self.candidates[n])


def for_stage(scopes: tuple[Scope, ...], stage: str) -> tuple[Scope, ...]:
    return tuple(s for s in scopes if s.applies_to(stage))


# Each family's candidates live on its family object (``edgepose.families.<family>``, field
# ``float_scopes``). ``chosen`` and ``measured`` are filled from benchmarks/results/int8_report.md
# (ONNX Runtime PTQ of the trained synthetic-benchmark models; "drop" is the format metric's
# fp32 - int8 with only that candidate quantised).
NO_SCOPES = ScopeChoice(candidates={}, chosen=())


def choice_for(family: str) -> ScopeChoice:
    """The family's float-scope choice (an unknown family raises; one without scopes gets none)."""
    return get_family(family).float_scopes or NO_SCOPES


def options_for(family: str, options: dict | None = None) -> dict:
    """A run's quantiser knobs: the family's measured ones (``ScopeChoice.options``), the caller's on top."""
    return {**choice_for(family).options, **(options or {})}


def settings_digest(family: str) -> str:
    """A short hash of the family's default int8 settings (chosen scopes and knobs): part of a cached
    int8 build's key, so a re-measured default re-quantises instead of reusing a stale build."""
    import hashlib

    choice = choice_for(family)
    scopes = [(s.pattern, s.stages, s.direct) for s in choice.scopes()]
    text = repr((scopes, sorted(choice.options.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def __getattr__(name: str):
    if name == "FLOAT_SCOPES":  # the old per-family table, now derived from the family objects
        return {n: f.float_scopes for n, f in families().items() if f.float_scopes is not None}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class FloatScopes:
    """The scopes in force for one quantisation run, plus what they were (for the report)."""

    scopes: tuple[Scope, ...] = ()
    names: tuple[str, ...] = ()
    source: str = ""
    stage_overrides: dict = field(default_factory=dict)  # stage -> extra scopes for that stage only

    def for_stage(self, stage: str) -> tuple[Scope, ...]:
        return for_stage(self.scopes + tuple(self.stage_overrides.get(stage, ())), stage)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "scopes": [str(s) for s in self.scopes], "source": self.source}


def resolve(family: str, names: tuple[str, ...] | list[str] | None = None) -> FloatScopes:
    """The family's chosen scopes, or the named candidates (``()``: quantise everything the quantiser can)."""
    choice = choice_for(family)
    if names is None:
        if not choice.candidates:
            return FloatScopes((), (), f"{family} keeps nothing in float")
        return FloatScopes(
            choice.scopes(), choice.chosen, f"chosen for {family} by measurement: {choice.measured}"
        )
    names = tuple(names)
    return FloatScopes(choice.scopes(names), names, "given")


# ----------------------------------------------------------------------------- module paths of graph nodes

_PREFIXES = ("L['self'].", "stage.", "model.")


def model_path(path: str) -> str:
    """A module path as an exporter recorded it -> relative to the PoseModel (``stage.model.x`` -> ``x``)."""
    for p in _PREFIXES:
        if path.startswith(p):
            path = path[len(p) :]
        elif path == p[:-1]:
            path = ""
    return path


def onnx_node_path(node) -> str | None:
    """The module path (relative to the model) that produced an ONNX node, or None if unknown."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            mods = [s for s in scopes if s == "stage" or s.startswith("stage.")]
            return model_path(mods[-1]) if mods else ""
    name = node.name or ""
    if name.startswith("/"):  # TorchScript exporter: /stage/model/head_coord/head_coord.1/MatMul
        parts: list[str] = []
        for seg in name.split("/")[1:-1]:
            if parts and seg.startswith(
                parts[-1] + "."
            ):  # a Sequential child: "head_coord" -> "head_coord.1"
                parts[-1] = seg
            else:
                parts.append(seg)
        return model_path(".".join(parts))
    return None


def fx_node_path(node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return model_path(path)


def match(path: str | None, scopes: tuple[Scope, ...]) -> Scope | None:
    if path is None:
        return None
    for s in scopes:
        if s.matches(path):
            return s
    return None


def onnx_nodes_in(graph, scopes: tuple[Scope, ...]) -> list[str]:
    """Names of the ONNX graph's nodes that lie in ``scopes``."""
    return [n.name for n in graph.node if n.name and match(onnx_node_path(n), scopes)]
