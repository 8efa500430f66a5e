"""apply_keepalive: TcpKeepalive's options set on a socket, those the platform lacks skipped."""

from __future__ import annotations

import logging
import socket

import pytest

from heartbeat_core.errors import ConfigError
from heartbeat_core.tcp import SupportsSetsockopt, TcpKeepalive, apply_keepalive, check_reuse_port


class Recorder:
    """A socket that records setsockopt calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self.calls.append((level, option, value))


def _resolved(options: list[tuple[str, str, int]]) -> list[tuple[int, int, int]]:
    return [
        (getattr(socket, level), getattr(socket, option), value)
        for level, option, value in options
        if hasattr(socket, level) and hasattr(socket, option)
    ]


@pytest.mark.parametrize("keepalive", [TcpKeepalive(), TcpKeepalive(user_timeout=2.5, count=7)])
def test_sets_every_option_the_platform_has(keepalive: TcpKeepalive) -> None:
    sock = Recorder()
    applied = apply_keepalive(sock, keepalive)
    options = keepalive.socket_options()
    assert sock.calls == _resolved(options)
    assert applied == [name for _, name, _ in options if hasattr(socket, name)]
    assert applied[0] == "SO_KEEPALIVE"


def test_skips_what_the_platform_lacks(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(socket, "TCP_KEEPIDLE", raising=False)
    monkeypatch.delattr(socket, "TCP_USER_TIMEOUT", raising=False)
    sock = Recorder()
    with caplog.at_level(logging.DEBUG, logger="heartbeat_core"):
        applied = apply_keepalive(sock, TcpKeepalive(user_timeout=1.0))
    assert "TCP_KEEPIDLE" not in applied
    assert "TCP_USER_TIMEOUT" not in applied
    assert len(sock.calls) == len(applied)
    skipped = [r.getMessage() for r in caplog.records if r.name == "heartbeat_core"]
    assert any("TCP_KEEPIDLE is not available" in m for m in skipped)
    assert any("TCP_USER_TIMEOUT is not available" in m for m in skipped)
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "heartbeat_core")


def test_skips_a_missing_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "IPPROTO_TCP")
    assert apply_keepalive(Recorder(), TcpKeepalive()) == ["SO_KEEPALIVE"]


def test_errors_of_setsockopt_propagate() -> None:
    class Closed:
        def setsockopt(self, level: int, option: int, value: int, /) -> None:
            raise OSError(9, "Bad file descriptor")

    with pytest.raises(OSError, match="Bad file descriptor"):
        apply_keepalive(Closed(), TcpKeepalive())


def test_a_real_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        typed: SupportsSetsockopt = sock  # a socket.socket fits the protocol
        applied = apply_keepalive(typed, TcpKeepalive(idle=7, interval=3, count=4))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if "TCP_KEEPIDLE" in applied:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
        if "TCP_KEEPCNT" in applied:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


class TestCheckReusePort:
    """The rule of ``serve(reuse_port=...)`` in both drivers."""

    def test_true_where_available_and_false_anywhere(self) -> None:
        assert check_reuse_port(True, available=True) is True
        assert check_reuse_port(False, available=True) is False
        assert check_reuse_port(False, available=False) is False

    def test_true_without_so_reuseport_says_so(self) -> None:
        with pytest.raises(ConfigError, match="SO_REUSEPORT"):
            check_reuse_port(True, available=False)

    @pytest.mark.parametrize("value", [1, "yes", None])
    def test_not_a_bool_is_refused(self, value: object) -> None:
        with pytest.raises(ConfigError, match="reuse_port must be True or False"):
            check_reuse_port(value, available=True)
