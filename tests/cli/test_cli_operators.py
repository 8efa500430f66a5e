"""``heartbeat serve`` for operators (``/metrics``, private logs, probes) and ``heartbeat
ping`` as handy as ping(8): the real commands in subprocesses on 127.0.0.1, bounded waits."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import time
import urllib.request
from typing import Any

import pytest
import trustme
from heartbeat_cli.ping import PingStats, describe_ping_error, flood_warning, parse_headers
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.harness import SLACK, Command, start_server
from tests.support.waiting import wait_until

SECRET = "s3cr3t-t0ken-4b1d"


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics``, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SLACK) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode("utf-8")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(port: int, name: str, **labels: str) -> float:
    return scrape(port).get((name, tuple(sorted({"role": "server", **labels}.items()))), 0.0)


# --------------------------------------------------------------------------- /metrics


def test_metrics_follow_connections_that_open_beat_die_and_close() -> None:
    server, port = start_server(
        "--interval", "0.3", "--timeout", "1", "--close-timeout", "0.5", "--probe-interval", "0.4"
    )
    pingers: list[Command] = []
    try:
        assert value(port, "heartbeat_connections_open") == 0
        url = f"ws://127.0.0.1:{port}"
        # Two clients that ping us every 0.2 s: busy, so only probes measure their RTT.
        frozen = Command("ping", f"{url}/a", "-i", "0.2", "-W", "5")
        closer = Command("ping", f"{url}/b", "-i", "0.2", "-c", "8")
        pingers += [frozen, closer]
        wait_until(lambda: value(port, "heartbeat_connections_opened_total") == 2, SLACK)
        assert value(port, "heartbeat_connections_open") == 2
        # Heartbeats: probes go out and are answered; the histogram fills.
        wait_until(lambda: value(port, "heartbeat_rtt_seconds_count") >= 2, SLACK)
        rtt_count = value(port, "heartbeat_rtt_seconds_count")
        assert value(port, "heartbeat_rtt_seconds_bucket", le="+Inf") == rtt_count
        assert value(port, "heartbeat_rtt_seconds_sum") > 0
        assert value(port, "heartbeat_probes_sent_total") >= 2
        assert value(port, "heartbeat_pongs_received_total") == rtt_count
        assert value(port, "heartbeat_peer_pings_received_total") >= 2
        # The client that asked for 8 answers closes with 1000.
        assert closer.finish() == 0
        wait_until(
            lambda: value(port, "heartbeat_closes_total", code="1000", by="remote") == 1, SLACK
        )
        # The other one freezes (SIGSTOP): declared dead, closed 1011 by us.
        frozen.signal(signal.SIGSTOP)
        wait_until(lambda: value(port, "heartbeat_dead_peers_total") == 1, SLACK)
        wait_until(
            lambda: value(port, "heartbeat_closes_total", code="1011", by="local") == 1, SLACK
        )
        frozen.signal(signal.SIGCONT)
        # A client that pings every 10 ms is closed for flooding (1008).
        flooder = Command("ping", f"{url}/c", "-i", "0.01")
        pingers.append(flooder)
        wait_until(lambda: value(port, "heartbeat_flood_closes_total", kind="ping") == 1, SLACK)
        assert flooder.finish() == 1
        final = scrape(port)
        assert final[("heartbeat_connections_open", (("role", "server"),))] == 0
        assert final[("heartbeat_connections_opened_total", (("role", "server"),))] == 3
        assert final[("heartbeat_heartbeats_sent_total", (("role", "server"),))] >= rtt_count
        assert value(port, "heartbeat_rtt_seconds_count") >= rtt_count  # never goes back
        # No label names a peer or a path.
        assert not any("127.0.0.1" in str(k) or "/a" in str(k) for k in final)
    finally:
        for proc in pingers:
            proc.kill()
        server.kill()


def test_no_metrics_leaves_the_path_out() -> None:
    server, port = start_server("--no-metrics", "--no-dashboard")
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SLACK)
        assert refused.value.code == 426
        assert not server.events("metrics")
    finally:
        server.kill()


def test_no_line_per_heartbeat_by_default_and_rtt_log_adds_it() -> None:
    quiet, quiet_port = start_server("--interval", "0.1", "--timeout", "1")
    loud, loud_port = start_server("--rtt-log", "--interval", "0.1", "--timeout", "1")
    try:
        # An idle client on each: the server's own heartbeats (every 0.1 s) are answered.
        for port, path in ((quiet_port, "/quiet"), (loud_port, "/loud")):
            pinger = Command("ping", f"ws://127.0.0.1:{port}{path}", "-i", "0.5", "-c", "2")
            answered = lambda port=port: value(port, "heartbeat_rtt_seconds_count") >= 3  # noqa: E731
            wait_until(answered, SLACK)
            assert pinger.finish() == 0
        peers = {}
        for server, path in ((quiet, "/quiet"), (loud, "/loud")):
            (opened,) = server.wait_for("open")
            (closed,) = server.wait_for("close")
            assert opened["path"] == path and closed["code"] == 1000
            peers[path] = opened["peer"]
        assert not quiet.events("rtt")  # measured (above), not logged
        # The listening line says which: a reader of the log knows not to wait for rtt lines.
        assert quiet.events("listening")[0]["rtt_log"] is False
        assert loud.events("listening")[0]["rtt_log"] is True
        lines = loud.events("rtt")
        assert len(lines) >= 3 and all(line["peer"] == peers["/loud"] for line in lines)
        assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)
    finally:
        quiet.kill()
        loud.kill()


@pytest.mark.parametrize("rtt_log", [False, True])
def test_serve_alone_logs_opens_and_closes_and_rtt_lines_when_asked(rtt_log: bool) -> None:
    # With no dashboard and no metrics, serve hands its own on_event to the library.
    extra = ("--rtt-log",) if rtt_log else ()
    server, port = start_server(
        *extra, "--no-dashboard", "--no-metrics", "--interval", "0.1", "--timeout", "1"
    )
    try:
        pinger = Command("ping", f"ws://127.0.0.1:{port}/alone", "-i", "0.3", "-c", "2")
        assert pinger.finish() == 0
        (opened,) = server.wait_for("open")
        (closed,) = server.wait_for("close")
        assert opened["path"] == "/alone" and closed["code"] == 1000
        lines = server.events("rtt")
        assert bool(lines) is rtt_log, lines
        assert all(0 < line["rtt_ms"] < 1000 * SLACK for line in lines)
    finally:
        server.kill()


# --------------------------------------------------------------------------- privacy


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_log_line_or_event_shows_a_query_string(log_format: str) -> None:
    server = Command("-vv", "serve", "--port", "0", "--log-format", log_format)
    try:
        line = server.wait_text("listening")
        found = re.search(r'(?:127\.0\.0\.1:|"port":)(\d+)', line)
        assert found is not None, line
        port = int(found.group(1))
        pinger = Command("ping", f"ws://127.0.0.1:{port}/chat?token={SECRET}", "-c", "1")
        assert pinger.finish() == 0
        server.wait_text("close")
        server.signal(signal.SIGTERM)
        assert server.finish() == 0
        logged = "\n".join(server.lines) + server.stderr
        assert "/chat" in logged and "open:" in server.stderr  # the library's log line too
        assert SECRET not in logged and "token=" not in logged, logged
    finally:
        server.kill()


def test_log_query_keeps_them_when_asked() -> None:
    server, port = start_server("--log-query")
    try:
        pinger = Command("ping", f"ws://127.0.0.1:{port}/chat?token={SECRET}", "-c", "1")
        assert pinger.finish() == 0
        (opened,) = server.wait_for("open")
        assert opened["path"] == f"/chat?token={SECRET}"
    finally:
        server.kill()


# --------------------------------------------------------------------------- ping


def test_ping_count_1_returns_within_about_one_round_trip() -> None:
    server, port = start_server()
    try:
        started = time.monotonic()
        pinger = Command("ping", f"ws://127.0.0.1:{port}/", "-c", "1", "-i", "10", "--json")
        assert pinger.finish() == 0
        took = time.monotonic() - started
        # The first heartbeat goes out at open: no 10 s wait (the interpreter's start-up
        # is most of what remains).
        assert took < 5.0, took
        (pong,) = pinger.events("pong")
        assert pong["seq"] == 1
        (summary,) = pinger.events("summary")
        assert summary["sent"] == summary["received"] == 1 and summary["in_flight"] == 0
        # The command's own clock: connecting, one round trip, closing; well under the
        # 10 s interval (it was a whole interval before the first heartbeat).
        text = Command("ping", f"ws://127.0.0.1:{port}/", "-c", "1", "-i", "10")
        assert text.finish() == 0
        counts = next(line for line in text.lines if " sent, " in line)
        found = re.search(r"time (\d+)ms", counts)
        assert found is not None and int(found.group(1)) < 2000, counts
    finally:
        server.kill()


def test_headers_and_subprotocol_reach_the_server() -> None:
    import heartbeat_threading

    seen: list[tuple[dict[str, str], str | None]] = []

    def handler(conn: Any) -> None:
        seen.append(({k.decode().lower(): v.decode() for k, v in conn.headers}, conn.subprotocol))
        for _ in conn:
            pass

    server = heartbeat_threading.serve(
        handler, "127.0.0.1", 0, select_subprotocol=lambda offered: offered[-1]
    )
    try:
        pinger = Command(
            "ping", f"ws://127.0.0.1:{server.port}/", "-c", "1",
            "-H", "Authorization: Bearer abc", "--header", "X-Trace:  7 ",
            "--subprotocol", "v1.chat", "--subprotocol", "v2.chat",
        )  # fmt: skip
        assert pinger.finish() == 0, pinger.stderr
        wait_until(lambda: seen, SLACK)
        headers, subprotocol = seen[0]
        assert headers["authorization"] == "Bearer abc" and headers["x-trace"] == "7"
        assert subprotocol == "v2.chat"
    finally:
        server.close(timeout=2)


@pytest.mark.parametrize("bad", ["NoColon", ": empty", "Bad Name: x"])
def test_a_bad_header_is_a_usage_error(bad: str) -> None:
    pinger = Command("ping", "ws://127.0.0.1:9/", "-H", bad)
    assert pinger.finish() == 2
    assert "bad header" in pinger.stderr and "-H 'Name: value'" in pinger.stderr
    with pytest.raises(ValueError, match="bad header"):
        parse_headers([bad])


def test_an_interval_below_the_flood_limit_is_warned_about() -> None:
    assert flood_warning(0.05) is None
    warning = flood_warning(0.01)
    assert warning is not None and "1008" in warning and "0.05 s" in warning
    server, port = start_server()
    try:
        pinger = Command("ping", f"ws://127.0.0.1:{port}/", "-c", "2", "-i", "0.01")
        assert pinger.finish() == 0
        assert "warning: --interval 0.01 s is below 0.05 s" in pinger.stderr
    finally:
        server.kill()


def test_counts_are_honest_about_the_heartbeat_in_flight() -> None:
    stats = PingStats(rtts=[0.001, 0.003], lost=0, in_flight=1)
    assert stats.sent == 3 and stats.received == 2 and stats.loss == 0.0
    (_, counts, _) = stats.text_lines("ws://x/", 2.5)
    assert counts.startswith("3 sent, 2 received, 1 in flight, 0% loss"), counts
    assert stats.as_json()["sent"] == 3 and stats.as_json()["in_flight"] == 1
    lost = PingStats(rtts=[0.001], lost=1, in_flight=0)
    assert lost.sent == 2 and lost.loss == 0.5


def test_tls_on_one_side_only_is_explained_in_plain_words() -> None:
    import heartbeat_asyncio

    async def main() -> tuple[str, str]:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)

        async def handler(conn: Any) -> None:
            await conn.wait_closed()

        tls = await heartbeat_asyncio.serve(handler, "127.0.0.1", 0, ssl=context)
        plain = await heartbeat_asyncio.serve(handler, "127.0.0.1", 0)
        try:
            url = f"ws://127.0.0.1:{tls.port}/"
            with pytest.raises(Exception) as to_tls:
                await heartbeat_asyncio.connect(url)
            secure = f"wss://127.0.0.1:{plain.port}/"
            with pytest.raises(ssl.SSLError) as to_plain:
                await heartbeat_asyncio.connect(secure)
            return describe_ping_error(url, to_tls.value), describe_ping_error(
                secure, to_plain.value
            )
        finally:
            await tls.close(timeout=1)
            await plain.close(timeout=1)

    plain_to_tls, tls_to_plain = asyncio.run(main())
    assert "try wss:// instead of ws://" in plain_to_tls, plain_to_tls
    assert "does not speak TLS" in tls_to_plain and "try ws://" in tls_to_plain, tls_to_plain


def test_the_dashboard_feed_says_the_probe_interval() -> None:
    server, port = start_server("--probe-interval", "2")
    try:
        (listening,) = server.wait_for("listening")
        assert listening["probe_interval"] == 2.0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=SLACK) as page:
            assert b'id="chart-note"' in page.read()
    finally:
        server.kill()


def test_probe_interval_zero_turns_probes_off() -> None:
    server, _ = start_server("--probe-interval", "0")
    try:
        (listening,) = server.wait_for("listening")
        assert listening["probe_interval"] is None
        assert "probe" not in json.dumps(server.events("warning"))
    finally:
        server.kill()
