"""tsray: the Python side of tsray (wire protocol; later the vLLM bridge).

The protocol messages are generated from the same .proto as the TypeScript ``@tsray/protocol``
package; see :mod:`tsray.protocol`.
"""

from .protocol import PROTOCOL_VERSION

__version__ = "0.1.0"

__all__ = ["PROTOCOL_VERSION", "__version__"]
