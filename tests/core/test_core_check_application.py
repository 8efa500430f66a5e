"""``check_application``: serve()'s choice between ``handler`` and ``on_message``, checked
once for both adapters (exactly one, and callable), with a message that says what to pass."""

from __future__ import annotations

from typing import Any

import pytest

from heartbeat_core import ConfigError
from heartbeat_core.policy import check_application

WORDS: dict[str, str] = {"handler_runs": "A", "on_message_runs": "B", "kind": "async def"}


def app(conn: object, message: object = None) -> None:
    pass


@pytest.mark.parametrize(("handler", "on_message"), [(app, None), (None, app)])
def test_exactly_one_callable_passes(handler: Any, on_message: Any) -> None:
    assert check_application(handler, on_message, **WORDS) is None


@pytest.mark.parametrize(("handler", "on_message"), [(None, None), (app, app)])
def test_neither_or_both_is_an_error_saying_what_to_pass(handler: Any, on_message: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        check_application(handler, on_message, **WORDS)
    assert str(caught.value) == (
        "serve() takes a handler(conn) or on_message=(conn, message), exactly one: "
        "pass handler for A, on_message for B"
    )


def test_a_handler_that_is_not_callable_is_an_error() -> None:
    with pytest.raises(
        ConfigError, match=r"^handler must be a callable \(async def handler\(conn\)\), got 42$"
    ):
        check_application(42, None, **WORDS)


def test_an_on_message_that_is_not_callable_is_an_error() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^on_message must be a callable \(async def on_message\(conn, message\)\), got 'x'$",
    ):
        check_application(None, "x", **WORDS)
