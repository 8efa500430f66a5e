"""ServerPolicy's ``process_request`` hook: a request refused by answering it, before
anything else is decided (issue 18: the dashboard's Origin and Host checks)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from heartbeat_core import Accepted, CloseTransport, ConfigError, HttpRequest, Request, ServerPolicy

from .test_core_driver import GET, UPGRADE, answer, log


def test_an_answer_refuses_an_upgrade_and_none_lets_it_through() -> None:
    seen: list[Request | HttpRequest] = []

    def only_from_h(request: Request | HttpRequest) -> Any:
        seen.append(request)
        headers = dict(request.extra_headers if isinstance(request, Request) else [])
        if headers.get(b"origin") == b"http://evil.example":
            return 403, [("X-Why", "origin")], b"Forbidden origin\n"
        return None

    policy = ServerPolicy(process_request=only_from_h, select_subprotocol=lambda o: o[0])
    events, wire = answer(policy, UPGRADE)
    assert events == [Accepted(subprotocol="chat", extra_headers=[])] and len(seen) == 1
    evil = UPGRADE.replace(b"\r\n\r\n", b"\r\nOrigin: http://evil.example\r\n\r\n")
    events, wire = answer(policy, evil)
    assert events == [CloseTransport()]
    assert wire.startswith(b"HTTP/1.1 403 ") and b"x-why: origin" in wire.lower()
    assert wire.endswith(b"Forbidden origin\n")


def test_plain_http_is_checked_first_too() -> None:
    policy = ServerPolicy(
        process_request=lambda request: (421, [], b"Misdirected\n"),
        http_handler=lambda target: (200, [], b"page"),
    )
    events, wire = answer(policy, GET)
    assert events == [CloseTransport()] and wire.startswith(b"HTTP/1.1 421 ")
    passing = ServerPolicy(
        process_request=lambda request: None, http_handler=lambda target: (200, [], b"page")
    )
    _, wire = answer(passing, GET)
    assert wire.startswith(b"HTTP/1.1 200 ") and wire.endswith(b"page")


@pytest.mark.parametrize(
    ("hook", "head"),
    [
        (lambda request: 1 / 0, UPGRADE),  # raises
        (lambda request: (200, [], b""), UPGRADE),  # an upgrade is refused with 4xx or 5xx
        (lambda request: (404, [], "text"), GET),  # not bytes
    ],
)
def test_a_broken_hook_answers_500_and_logs_no_query(
    hook: Any, head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    head = head.replace(b"GET / ", b"GET /x?token=secret ")
    with caplog.at_level(logging.ERROR, logger="tests.driver"):
        events, wire = answer(ServerPolicy(process_request=hook, logger=log), head)
    assert events == [CloseTransport()] and wire.startswith(b"HTTP/1.1 500 ")
    (record,) = caplog.records
    assert "process_request failed" in record.getMessage()
    assert "secret" not in record.getMessage()


def test_the_hook_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="process_request"):
        ServerPolicy(process_request="nope")  # type: ignore[arg-type]
