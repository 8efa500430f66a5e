"""The command's pure parts: statistics, argument parsing, error descriptions."""

from __future__ import annotations

import argparse
import gc
import io
import math
import socket
import ssl

import pytest
from heartbeat_cli.app import build_parser, main, parse_size
from heartbeat_cli.output import Output, describe_connect_error, use_color
from heartbeat_cli.ping import PingStats
from heartbeat_cli.serve import GC_YOUNG_THRESHOLD, tune_gc

from heartbeat_core.errors import HandshakeError


def test_ping_stats_match_ping8_formulas() -> None:
    stats = PingStats()
    for rtt in (0.001, 0.002, 0.003, 0.006):
        stats.add(rtt)
    stats.lost = 1
    assert (stats.sent, stats.received) == (5, 4)
    assert stats.loss == pytest.approx(0.2)
    assert stats.min == pytest.approx(0.001)
    assert stats.max == pytest.approx(0.006)
    assert stats.avg == pytest.approx(0.003)
    # ping(8): mdev = sqrt(mean(x^2) - mean(x)^2)
    mean_sq = (1 + 4 + 9 + 36) / 4 * 1e-6
    assert stats.mdev == pytest.approx(math.sqrt(mean_sq - 0.003**2))
    record = stats.as_json()
    assert record["event"] == "summary"
    assert record["sent"] == 5 and record["received"] == 4
    assert record["loss"] == pytest.approx(0.2)
    assert record["min_ms"] == pytest.approx(1.0)
    assert record["avg_ms"] == pytest.approx(3.0)
    assert record["max_ms"] == pytest.approx(6.0)
    lines = stats.text_lines("ws://x/", 1.5)
    assert lines[1].startswith("5 sent, 4 received, 20% loss")
    assert lines[2].startswith("rtt min/avg/max/mdev = 1.000/3.000/6.000/")


def test_ping_stats_empty_and_in_flight() -> None:
    stats = PingStats(in_flight=1)
    # Sent counts the heartbeat in flight; the loss counts only settled ones.
    assert (stats.sent, stats.received, stats.loss) == (1, 0, 0.0)
    assert stats.min is None and stats.avg is None and stats.max is None and stats.mdev is None
    record = stats.as_json()
    assert record["min_ms"] is None and record["mdev_ms"] is None
    assert record["in_flight"] == 1
    lines = stats.text_lines("ws://x/", 0.1)
    assert len(lines) == 2  # no rtt line without answers
    assert "1 in flight" in lines[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1 << 20), ("64KiB", 65536), ("1MiB", 1 << 20), ("2MB", 2_000_000), ("1k", 1000)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-5", "1XB", "lots", "nan", "0.1"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a size"):
        parse_size(text)


def test_parser_defaults() -> None:
    parser = build_parser()
    serve = parser.parse_args(["serve"])
    assert (serve.host, serve.port, serve.mode, serve.log_format) == (
        "127.0.0.1",
        8765,
        "both",
        "text",
    )
    assert serve.max_size == 1 << 20
    ping = parser.parse_args(["ping", "ws://h/"])
    assert (ping.interval, ping.timeout, ping.count, ping.mode, ping.json) == (
        1.0,
        5.0,
        None,
        "protocol",
        False,
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["ping"],
        ["ping", "ws://h/", "--count", "0"],
        ["ping", "ws://h/", "--interval", "0"],
        ["ping", "ws://h/", "--timeout", "-1"],
        ["ping", "ws://h/", "--mode", "both"],
        ["serve", "--port", "70000"],
        ["serve", "--mode", "fast"],
        ["serve", "--max-size", "huge"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["ping", "--help"], ["serve", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "heartbeat ping ws://127.0.0.1:8765/" in out
    assert "exit codes" in out


def test_bad_url_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    for url in ("http://127.0.0.1/", "ws://", "ws://h:99999/", "127.0.0.1:8765"):
        assert main(["ping", url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "bad URL" in err, err


def test_connect_errors_are_described() -> None:
    assert "HTTP status 404" in describe_connect_error(HandshakeError("x", status=404))
    assert "refused" in describe_connect_error(ConnectionRefusedError(111, "Connection refused"))
    assert "resolve" in describe_connect_error(socket.gaierror(-2, "Name or service not known"))
    assert describe_connect_error(
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    ).startswith("TLS failure")
    assert "timed out" in describe_connect_error(TimeoutError("slow"))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_color(_Tty())
    assert not use_color(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(_Tty())
    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count (no-color.org)
    assert use_color(_Tty())
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color(_Tty())


def test_output_paints_only_with_colour_and_survives_a_closed_pipe() -> None:
    plain = Output(io.StringIO())
    assert plain.paint("x", "red") == "x"
    coloured = Output(io.StringIO(), color=True)
    assert coloured.paint("x", "red", "bold") == "\x1b[31;1mx\x1b[0m"

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    out = Output(Broken())
    out.line("a")  # no exception: the reader went away
    out.json(event="x")


@pytest.mark.parametrize("young", [700, 10 * GC_YOUNG_THRESHOLD])
def test_a_serving_process_freezes_its_startup_objects_and_collects_less_often(
    young: int,
) -> None:
    threshold = gc.get_threshold()  # (what this process had: mypy's API raises it)
    try:
        gc.set_threshold(young, 11, 12)
        made_at_startup = object.__new__(Output)  # (tracked: it has a __dict__)
        assert gc.is_tracked(made_at_startup)
        tune_gc()
        assert gc.get_freeze_count() > 0
        # Frozen: no collection of any generation looks at it any more.
        assert not any(made_at_startup is o for o in gc.get_objects())
        # The youngest generation is collected less often, never more often.
        assert gc.get_threshold() == (max(young, GC_YOUNG_THRESHOLD), 11, 12)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
