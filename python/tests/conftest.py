"""Test setup: make sure tsray/_proto is generated from the current .proto before importing tsray."""

from __future__ import annotations

import sys
from pathlib import Path

_TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(_TOOLS))
try:
    import gen_proto
finally:
    sys.path.remove(str(_TOOLS))

# A no-op when current; regenerates when the proto changed since tools/setup-python.sh ran.
gen_proto.generate()
