"""Benchmarks of the on-device loop, shared by ``edgepose bench`` (quick) and ``benchmarks/`` (full).

One module per table, each a function ``run(settings) -> Table``:

* ``ring``: ring buffer vs recomputing the window (frame-stage calls and time per frame);
* ``persons``: latency against persons per frame, laid out as PAVE-Net's Table 2;
* ``backends``: runtimes x precisions on this machine;
* ``blazepose``: MediaPipe's BlazePose landmark model as a peer on the same crops.

``bundles.cached_bundle`` exports zoo models once into a cache directory (also used by
``edgepose run --model``). ``report.Table`` prints with rich and writes markdown, JSON and plots.
Ratios are measured within one run with the variants interleaved, because absolute times drift
on a shared machine.
"""
