"""heartbeat-client.js's timing rules, under a fake clock and a fake WebSocket, in Node.

The rules themselves are in node/client.test.mjs (``node --test``); this runs them as part
of the suite. Needs only ``node`` (no browser): a second or so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from .harness import NODE_DIR


def test_js_client_rules_under_a_fake_clock() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("the JavaScript client's unit tests need `node` on PATH")
    done = subprocess.run(
        [node, "--test", "client.test.mjs"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)", done.stdout, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) >= 15, done.stdout[-2000:]
