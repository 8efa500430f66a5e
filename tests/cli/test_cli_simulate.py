"""``heartbeat simulate``: the verdict, the figures, the exit codes, one-line errors."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from heartbeat_cli.app import main
from heartbeat_cli.simulate import parse_duration, parse_fraction, run_survey

from heartbeat_core import HeartbeatConfig
from heartbeat_core.testing import Link, Scenario, Side, StallPlan, survey

from .harness import ROOT, SLACK, child_env


def run(capsys: pytest.CaptureFixture[str], line: str) -> tuple[int, str, str]:
    """``heartbeat simulate LINE`` in this process: (status, stdout, stderr)."""
    try:
        status = main(["simulate", *shlex.split(line)])
    except SystemExit as exc:  # argparse's way out
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_the_issues_question_is_answered_safe(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "--interval 20 --timeout 10 --rtt 80ms --rtt-jitter 40ms --loss 2% "
        "--proxy-idle 60 --stall 3s --hours 2 --runs 20 --workers 1",
    )
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "20 runs x 2 h (40 connection-hours simulated), seed 0"
    assert "RTT 80 ms ± 40 ms, loss 2 %, proxy idle limit 60 s" in lines[1]
    assert lines[2] == "false positives: 0 (0 per 1,000 connection-hours; 0 of 20 runs)"
    assert lines[3] == "proxy cuts: 0"
    assert lines[4].startswith("vanished client found dead in 20 of 20 runs: median ")
    assert "heartbeats" in lines[5] and "timer wake-ups" in lines[5]
    assert lines[-1] == "safe"


def test_unsafe_settings_exit_1_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "--interval 55 --timeout 10 --proxy-idle 60 --stall 8s --stall-side server "
        "--stall-every 5m --hours 1 --runs 5 --workers 1",
    )
    assert status == 1
    assert "UNSAFE" in out
    assert "suggestion: proxy cuts: keep --interval below 30 s" in out
    status, out, _ = run(
        capsys, "--timeout 2 --stall 5s --stall-every 2m --hours 1 --runs 3 --workers 1"
    )
    assert status == 1
    assert "suggestion: false positives: the peer can be silent for about 5 s" in out
    assert "use --timeout 6 or more" in out


def test_json_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "--interval 20 --timeout 10 --mode app --heartbeats both --hours 1 --runs 4 "
        "--workers 1 --json",
    )
    assert status == 0
    doc = json.loads(out)
    assert doc["safe"] is True and doc["runs"] == 4 and doc["false_positives"] == 0
    assert doc["vanished"] == "client" and doc["detected"] == 4
    assert doc["detection_s"]["max"] <= doc["detection_s"]["bound"]
    assert doc["config"]["style"] == "app" and doc["config"]["interval"] == 20
    assert doc["heartbeats_per_hour"] > 0 and doc["suggestions"] == []
    # --vanish server with the client alone sending heartbeats
    status, out, _ = run(capsys, "--heartbeats client --vanish none --hours 0.5 --runs 2 --json")
    doc = json.loads(out)
    assert status == 0 and doc["vanished"] is None and doc["detection_s"]["median"] is None


def test_the_same_seed_gives_the_same_answer_in_any_number_of_processes() -> None:
    sc = Scenario(client=None, server=HeartbeatConfig(), link=Link.symmetric(rtt=0.1))
    plan = StallPlan(side=Side.CLIENT, duration=3.0, every=600.0)
    one = survey(sc, runs=8, hours=2.0, stalls=plan, seed=5)
    split = run_survey(sc, runs=8, hours=2.0, stalls=plan, seed=5, workers=2)
    assert split.detections == one.detections
    assert (split.false_positives, split.heartbeats, split.wakeups) == (
        one.false_positives,
        one.heartbeats,
        one.wakeups,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--rtt fast", "argument --rtt: expected a duration such as 80ms"),
        ("--loss 120%", "argument --loss: expected a fraction such as 2% or 0.02"),
        ("--runs 0", "argument --runs: expected a number >= 1"),
        ("--hours -1", "argument --hours: expected a number of hours > 0"),
        ("--interval 0", "argument --interval: expected a duration > 0"),
        ("--jitter 0.9", "jitter must be a fraction of the interval in [0, 0.5]"),
        ("--bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    status, out, err = run(capsys, args)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and message in err
    assert err.startswith("heartbeat: simulate: ")


def test_bad_input_from_the_shell_has_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "heartbeat_cli", "simulate", "--stall", "3 parsecs"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=SLACK,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "heartbeat: simulate: argument --stall: expected a duration such as 80ms, 3s, 10m "
        "or 1h, got '3 parsecs' (see heartbeat simulate --help)"
    ]


def test_units() -> None:
    assert [parse_duration(x) for x in ("80ms", "3s", "10m", "1h", "2", "250us")] == [
        0.08,
        3.0,
        600.0,
        3600.0,
        2.0,
        pytest.approx(0.00025),
    ]
    assert parse_fraction("2%") == 0.02 and parse_fraction("0.5") == 0.5
