"""Convert one TF.js graph model to ONNX with tf2onnx. Runs inside the conversion venv (TensorFlow +
tf2onnx), never inside edgepose's own environment, so it imports nothing from edgepose.

    python tfjs_to_onnx.py MODEL.json OUT.onnx [--opset 17]

TF.js graph JSON written by older converters lacks attributes that today's TensorFlow op registry
requires (``TArgs`` of the fused convolutions, ``index_type`` of ``TopKV2``); TensorFlow itself fills
them with their defaults when it imports a GraphDef, so the copy given to tf2onnx gets the same
defaults from the same registry. The weights are not touched.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy

# tf2onnx 1.17's TF.js weight reader still calls numpy.product, removed in numpy 2.
if not hasattr(numpy, "product"):
    numpy.product = numpy.prod

_TYPE_FIELDS = {"type": "type", "int": "i", "float": "f", "bool": "b", "string": "s", "shape": "shape"}


def _default_attr(attr_def):
    """An attr's default value in the TF.js JSON spelling, or None where the registry has none."""
    from google.protobuf import json_format

    if not attr_def.HasField("default_value"):
        return None
    return json_format.MessageToDict(attr_def.default_value)


def fill_missing_attrs(model: dict) -> int:
    """Add every attribute the op registry requires and the node lacks; returns how many were added."""
    from tensorflow.python.framework import op_def_registry

    added = 0
    for node in model["modelTopology"]["node"]:
        op_def = op_def_registry.get(node["op"])
        if op_def is None:
            continue
        attrs = node.setdefault("attr", {})
        for a in op_def.attr:
            if a.name in attrs:
                continue
            if a.name == "TArgs":  # the fused ops' extra-argument types: one T per extra argument
                count = int(attrs.get("num_args", {}).get("i", 0))
                dtype = attrs.get("T", {}).get("type", "DT_FLOAT")
                attrs["TArgs"] = {"list": {"type": [dtype] * count}}
                added += 1
                continue
            value = _default_attr(a)
            if value is not None:
                attrs[a.name] = value
                added += 1
    return added


def main(argv):
    args = list(argv)
    opset = 17
    if "--opset" in args:
        i = args.index("--opset")
        opset = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 2:
        print("usage: tfjs_to_onnx.py MODEL.json OUT.onnx [--opset N]", file=sys.stderr)
        return 2
    src, out = args
    with open(src, encoding="utf-8") as f:
        model = json.load(f)
    added = fill_missing_attrs(model)
    work = tempfile.mkdtemp(prefix="edgepose-tfjs-")
    try:
        for group in model["weightsManifest"]:
            for p in group["paths"]:
                shutil.copy(os.path.join(os.path.dirname(src), p), os.path.join(work, p))
        fixed = os.path.join(work, os.path.basename(src))
        with open(fixed, "w", encoding="utf-8") as f:
            json.dump(model, f)
        from tf2onnx import convert

        sys.argv = ["tf2onnx.convert", "--tfjs", fixed, "--output", out, "--opset", str(opset)]
        convert.main()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"filled {added} default attributes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
