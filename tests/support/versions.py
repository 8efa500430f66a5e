"""What a test needs of the interpreter, said once.

websockets 17, our reference third-party peer, needs Python 3.11: the interop group
installs it there only (``python_version >= '3.11'``), and the tests that talk to it
are skipped on 3.10 with this reason.
"""

from __future__ import annotations

import sys

__all__ = ["HAS_WEBSOCKETS", "WEBSOCKETS_REASON"]

HAS_WEBSOCKETS = sys.version_info >= (3, 11)
WEBSOCKETS_REASON = "websockets>=17 (the reference peer) needs Python >= 3.11"
