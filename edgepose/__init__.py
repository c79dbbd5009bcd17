"""edgepose: video pose models for edge devices.

The top level stays light (no torch import) so device-side code can
``import edgepose`` with numpy, opencv and one runtime installed.
"""

__version__ = "0.1.0"
