"""LeetGaming: the composition root.

Settings, the ASGI app, the CLI and the flows that cross domains live here. This package may
import every domain package; no domain package may import it (see tests/test_layering.py).
"""

__version__ = "0.1.0"
