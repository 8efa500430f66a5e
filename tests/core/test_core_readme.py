"""The README's "library in ten lines" runs as written and says what its comments say."""

from __future__ import annotations

import contextlib
import io

from tests.support.docblocks import doc_block


def test_readme_core_example_runs_as_written() -> None:
    code = doc_block("README.md", "readme-core")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "SendPing(payload=b'1', seq=1) answer by 30.0"
    assert lines[1].startswith("(RttSample(seq=1, rtt=0.05")
    assert lines[2:] == [
        "PeerDead(seq=2, waited=10.0)",
        "SendClose(code=1011, reason='heartbeat-timeout')",
        "CloseTransport()",
    ]
