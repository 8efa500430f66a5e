"""Sphinx extension: the figures and tables that the docs draw from the code, at build time.

Nothing here is drawn by hand. On ``builder-inited`` it writes into ``docs/_generated/``:

``states.svg`` / ``transitions.rst.inc``
    the state diagram and its table, from :data:`heartbeat_core.state.TRANSITIONS`;
``timeline.svg`` / ``timeline.rst.inc``
    ping, pong, timeout, close and abort, from a real :class:`HeartbeatState` run
    on a synthetic clock;
``rules.rst.inc``
    the timing rules, by name, from the :mod:`heartbeat_core.state` docstring;
``config.rst.inc``
    the configuration tables, from the dataclass fields and their ``#:`` comments;
``cli.rst.inc``
    the ``heartbeat`` command's help, from its argparse parser.

No network, no system binary: SVG is written as text.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import html
import itertools
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heartbeat_core import (
    ConnectionClosed,
    ConnectionOpened,
    HeartbeatConfig,
    HeartbeatState,
    PongReceived,
    TimerFired,
)
from heartbeat_core import state as state_module
from heartbeat_core.actions import (
    Abort,
    Action,
    CloseTransport,
    PeerDead,
    RttSample,
    SendClose,
    SendPing,
)
from heartbeat_core.config import BackoffPolicy
from heartbeat_core.state import TRANSITIONS, HeartbeatPhase, Transition

__all__ = [
    "TimelineStep",
    "rule_names",
    "timeline_table",
    "cli_help",
    "config_table",
    "generate",
    "rules_list",
    "run_timeline",
    "setup",
    "state_svg",
    "timeline_svg",
    "transitions_table",
]

# One colour per rule name (readable on light and dark backgrounds).
_PALETTE = ("#2f7ed8", "#d9534f", "#5cb85c", "#f0ad4e", "#9b59b6", "#17a2b8", "#e83e8c")


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _rule_colours(transitions: Sequence[Transition]) -> dict[str, str]:
    rules: list[str] = []
    for t in transitions:
        if t.rule not in rules:
            rules.append(t.rule)
    return {rule: _PALETTE[i % len(_PALETTE)] for i, rule in enumerate(rules)}


# ----------------------------------------------------------------- state diagram


def _ranks(transitions: Sequence[Transition]) -> dict[HeartbeatPhase, int]:
    """Rows: the longest path from NEW, ignoring edges that close a cycle."""
    edges: dict[HeartbeatPhase, list[HeartbeatPhase]] = {}
    for t in transitions:
        edges.setdefault(t.source, []).append(t.target)
    order: list[HeartbeatPhase] = []
    seen: set[HeartbeatPhase] = set()
    on_path: set[HeartbeatPhase] = set()
    back: set[tuple[HeartbeatPhase, HeartbeatPhase]] = set()

    def visit(node: HeartbeatPhase) -> None:
        seen.add(node)
        on_path.add(node)
        for nxt in edges.get(node, []):
            if nxt in on_path:
                back.add((node, nxt))
            elif nxt not in seen:
                visit(nxt)
        on_path.discard(node)
        order.append(node)

    for phase in HeartbeatPhase:
        if phase not in seen:
            visit(phase)
    rank = dict.fromkeys(HeartbeatPhase, 0)
    for node in reversed(order):  # topological order of the acyclic part
        for nxt in edges.get(node, []):
            if (node, nxt) not in back:
                rank[nxt] = max(rank[nxt], rank[node] + 1)
    return rank


@dataclass
class _Edge:
    """One drawn edge: several transitions with the same trigger and target share a bus."""

    numbers: list[int]
    sources: list[HeartbeatPhase]
    target: HeartbeatPhase
    rule: str
    trigger: str


def _numbers_text(numbers: Sequence[int]) -> str:
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}\u2013{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)


def state_svg(transitions: Sequence[Transition] = TRANSITIONS) -> str:
    """The state diagram: phases top to bottom, numbered edges coloured by rule.

    Edges to the next row go straight down; longer forward edges run in lanes on
    the right (transitions with the same trigger and target share one lane, a
    bus); edges going back up run on the left.
    """
    rank = _ranks(transitions)
    colours = _rule_colours(transitions)
    box_w, box_h, row_h, cx, top = 150, 34, 78, 330, 30
    lane_w = 30

    def y_of(phase: HeartbeatPhase) -> float:
        return top + rank[phase] * row_h + box_h / 2

    grouped: dict[tuple[str, HeartbeatPhase, str], _Edge] = {}
    left: list[_Edge] = []
    for number, t in enumerate(transitions, 1):
        if rank[t.target] > rank[t.source]:
            edge = grouped.setdefault(
                (t.trigger, t.target, t.rule), _Edge([], [], t.target, t.rule, t.trigger)
            )
            edge.numbers.append(number)
            edge.sources.append(t.source)
        else:
            left.append(_Edge([number], [t.source], t.target, t.rule, t.trigger))
    straight: list[_Edge] = []
    right: list[_Edge] = []
    pairs: set[tuple[HeartbeatPhase, HeartbeatPhase]] = set()
    for edge in grouped.values():
        source = edge.sources[0]
        if (
            len(edge.sources) == 1
            and rank[edge.target] - rank[source] == 1
            and (source, edge.target) not in pairs
        ):
            pairs.add((source, edge.target))
            straight.append(edge)
        else:
            right.append(edge)

    def extent(edge: _Edge) -> tuple[int, int]:
        ranks = [rank[p] for p in edge.sources] + [rank[edge.target]]
        return min(ranks), max(ranks)

    def pack(edges: list[_Edge]) -> list[tuple[_Edge, int]]:
        lanes: list[list[tuple[int, int]]] = []
        result: list[tuple[_Edge, int]] = []
        for edge in sorted(edges, key=lambda e: extent(e)[1] - extent(e)[0]):
            lo, hi = extent(edge)
            for index, used in enumerate(lanes):
                if all(hi <= a or b <= lo for a, b in used):
                    used.append((lo, hi))
                    result.append((edge, index))
                    break
            else:
                lanes.append([(lo, hi)])
                result.append((edge, len(lanes) - 1))
        return result

    placed = [("r", 1, edge, lane) for edge, lane in pack(right)]
    placed += [("l", -1, edge, lane) for edge, lane in pack(left)]
    n_right = 1 + max((lane for side, _, _, lane in placed if side == "r"), default=-1)
    n_left = 1 + max((lane for side, _, _, lane in placed if side == "l"), default=-1)
    # Where edges meet a box side: spread the meeting points along the side.
    ports: dict[tuple[HeartbeatPhase, str], list[tuple[int, int]]] = {}
    for index, (side, _, edge, lane) in enumerate(placed):
        for phase in [*edge.sources, edge.target]:
            ports.setdefault((phase, side), []).append((lane, index))

    def port_y(phase: HeartbeatPhase, side: str, index: int) -> float:
        entries = sorted(ports[(phase, side)])
        i = [n for _, n in entries].index(index)
        span = box_h - 10
        return y_of(phase) - span / 2 + span * (i + 0.5) / len(entries)

    width = cx + box_w / 2 + 30 + n_right * lane_w + 24
    shift = max(0.0, 30 + n_left * lane_w + 24 - (cx - box_w / 2))
    height = top + (max(rank.values()) + 1) * row_h
    legend_h = 22 * ((len(colours) + 2) // 3) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width + shift:.0f} '
        f'{height + legend_h:.0f}" font-family="sans-serif" font-size="12" role="img" '
        'aria-label="heartbeat state diagram">',
        "<defs>",
    ]
    for rule, colour in colours.items():
        out.append(
            f'<marker id="arrow-{rule}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append(f'<g transform="translate({shift:.0f},0)">')

    def label(x: float, y: float, edge: _Edge) -> None:
        text = _numbers_text(edge.numbers)
        w = 9 + 6.2 * len(text)
        colour = colours[edge.rule]
        out.append(
            f'<rect x="{x - w / 2:.1f}" y="{y - 8:.1f}" width="{w:.1f}" height="16" rx="8" '
            f'fill="white" stroke="{colour}"/>'
            f'<text x="{x:.1f}" y="{y + 3.5:.1f}" text-anchor="middle" font-size="10" '
            f'fill="#222">{text}</text>'
        )

    def title(edge: _Edge) -> str:
        return f"<title>{_numbers_text(edge.numbers)}. {_esc(edge.trigger)} ({edge.rule})</title>"

    for edge in straight:
        colour = colours[edge.rule]
        y0, y1 = y_of(edge.sources[0]) + box_h / 2, y_of(edge.target) - box_h / 2
        out.append(
            f'<path d="M{cx},{y0:.1f} V{y1 - 1:.1f}" stroke="{colour}" stroke-width="1.6" '
            f'fill="none" marker-end="url(#arrow-{edge.rule})">{title(edge)}</path>'
        )
        label(cx + 20, (y0 + y1) / 2, edge)
    for index, (side, sign, edge, lane) in enumerate(placed):
        colour = colours[edge.rule]
        x_side = cx + sign * box_w / 2
        x_lane = x_side + sign * (30 + lane * lane_w)
        ys = [port_y(p, side, index) for p in edge.sources]
        yt = port_y(edge.target, side, index)
        stubs = " ".join(f"M{x_side:.1f},{y:.1f} H{x_lane:.1f}" for y in ys)
        far = min(ys) if yt > max(ys) else max(ys)
        trunk = f"M{x_lane:.1f},{far:.1f} V{yt:.1f} H{x_side + sign * 1.5:.1f}"
        out.append(
            f'<path d="{stubs}" stroke="{colour}" stroke-width="1.6" fill="none"/>'
            f'<path d="{trunk}" stroke="{colour}" stroke-width="1.6" fill="none" '
            f'marker-end="url(#arrow-{edge.rule})">{title(edge)}</path>'
        )
        near = max(ys) if yt > max(ys) else min(ys)
        label(x_lane, (near + yt) / 2, edge)
    for phase in HeartbeatPhase:
        y = y_of(phase) - box_h / 2
        terminal = not any(t.source is phase for t in transitions)
        out.append(
            f'<rect x="{cx - box_w / 2}" y="{y}" width="{box_w}" height="{box_h}" rx="8" '
            f'fill="#f4f6fa" stroke="#333" stroke-width="{2.5 if terminal else 1.2}"/>'
            f'<text x="{cx}" y="{y + box_h / 2 + 4.5}" text-anchor="middle" font-size="14" '
            f'font-weight="bold" fill="#222">{phase.name}</text>'
        )
    out.append("</g>")
    for i, (rule, colour) in enumerate(colours.items()):
        x = 20 + (i % 3) * 190
        y = height + 14 + (i // 3) * 22
        out.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 26}" y2="{y}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{x + 32}" y="{y + 4}" fill="#222">{_esc(rule)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def transitions_table(transitions: Sequence[Transition] = TRANSITIONS) -> str:
    """The numbered edges of the diagram, as an RST table."""
    lines = [
        ".. list-table:: Every transition (``heartbeat_core.state.TRANSITIONS``)",
        "   :header-rows: 1",
        "   :widths: 4 14 44 14 16",
        "",
        "   * - #",
        "     - From",
        "     - Trigger",
        "     - To",
        "     - Rule",
    ]
    for number, t in enumerate(transitions, 1):
        lines += [
            f"   * - {number}",
            f"     - ``{t.source.name}``",
            f"     - {t.trigger}",
            f"     - ``{t.target.name}``",
            f"     - :ref:`{t.rule} <rule-{t.rule}>`",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class TimelineStep:
    """One event of the timeline run: when, what happened, what the core answered."""

    now: float
    event: str
    actions: tuple[Action, ...]
    phase: HeartbeatPhase
    deadline: float | None


TIMELINE_CONFIG = HeartbeatConfig(interval=1.0, timeout=0.5, close_timeout=0.5)
#: One-way delay of the simulated network, seconds.
TIMELINE_DELAY = 0.04


def run_timeline(config: HeartbeatConfig = TIMELINE_CONFIG) -> list[TimelineStep]:
    """Drive a real :class:`HeartbeatState` on a synthetic clock.

    The peer answers the first heartbeat after one round trip, then freezes: it
    never answers again, and the close frame never drains (its window is full),
    so the transport is aborted at ``close_timeout``.
    """
    state = HeartbeatState(config)
    steps: list[TimelineStep] = []

    def record(now: float, event: Any) -> tuple[Action, ...]:
        actions = state.handle(event)
        steps.append(TimelineStep(now, type(event).__name__, actions, state.phase, state.deadline))
        return actions

    record(0.0, ConnectionOpened(now=0.0))
    answered = False
    while state.phase is not HeartbeatPhase.CLOSED:
        deadline = state.deadline
        if deadline is None:  # transport released: the driver reports it
            record(steps[-1].now, ConnectionClosed(now=steps[-1].now))
            break
        actions = record(deadline, TimerFired(now=deadline))
        for action in actions:
            if isinstance(action, SendPing) and not answered:
                answered = True
                at = deadline + 2 * TIMELINE_DELAY
                record(at, PongReceived(now=at, payload=action.payload))
            if isinstance(action, Abort):
                record(deadline, ConnectionClosed(now=deadline))
    return steps


def timeline_svg(steps: Sequence[TimelineStep], config: HeartbeatConfig = TIMELINE_CONFIG) -> str:
    """Two lifelines (us, the peer); time runs down; phases shaded on our side."""
    scale, top, us, peer = 150.0, 50.0, 190.0, 520.0
    end = steps[-1].now
    height = top + end * scale + 60

    def y(t: float) -> float:
        return top + t * scale

    phase_colour = {
        HeartbeatPhase.IDLE: "#dff0d8",
        HeartbeatPhase.AWAITING: "#fcf8e3",
        HeartbeatPhase.GRACE: "#fde2c5",
        HeartbeatPhase.CLOSING: "#f2dede",
        HeartbeatPhase.DRAINING: "#f2dede",
    }
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 720 {height:.0f}" '
        'font-family="sans-serif" font-size="12" role="img" aria-label="heartbeat timeline">',
        '<defs><marker id="tl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker>'
        "</defs>",
        f'<text x="{us}" y="20" text-anchor="middle" font-weight="bold" fill="#222">us '
        "(HeartbeatState)</text>",
        f'<text x="{peer}" y="20" text-anchor="middle" font-weight="bold" fill="#222">peer</text>',
    ]
    # Phase bands on our lifeline, from the recorded phases.
    for step, nxt in itertools.pairwise(steps):
        colour = phase_colour.get(step.phase)
        if colour and nxt.now > step.now:
            out.append(
                f'<rect x="{us - 9}" y="{y(step.now):.1f}" width="18" '
                f'height="{(nxt.now - step.now) * scale:.1f}" fill="{colour}" stroke="#999" '
                'stroke-width="0.5"/>'
                f'<text x="{us - 16}" y="{(y(step.now) + y(nxt.now)) / 2 + 4:.1f}" '
                f'text-anchor="end" font-size="10" fill="#555">{step.phase.name}</text>'
            )
    out.append(
        f'<line x1="{us}" y1="30" x2="{us}" y2="{y(end) + 20:.1f}" stroke="#333" '
        'stroke-dasharray="2,2"/>'
        f'<line x1="{peer}" y1="30" x2="{peer}" y2="{y(end) + 20:.1f}" stroke="#333" '
        'stroke-dasharray="2,2"/>'
    )

    def arrow(
        x0: float,
        t0: float,
        x1: float,
        t1: float,
        text: str,
        *,
        colour: str = "#333",
        below: bool = False,
        at_start: bool = False,
    ) -> None:
        if at_start:  # label just above the arrow's start
            tx, ty, anchor = x0 + 30, y(t0) - 6, "start"
        else:
            tx, ty, anchor = (x0 + x1) / 2, (y(t0) + y(t1)) / 2 + (14 if below else -5), "middle"
        out.append(
            f'<line x1="{x0}" y1="{y(t0):.1f}" x2="{x1}" y2="{y(t1):.1f}" stroke="{colour}" '
            'stroke-width="1.4" marker-end="url(#tl-arrow)"/>'
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" fill="{colour}">'
            f"{_esc(text)}</text>"
        )

    def note(t: float, text: str, colour: str = "#222", x: float | None = None) -> None:
        out.append(
            f'<text x="{x if x is not None else peer + 16}" y="{y(t) + 4:.1f}" '
            f'fill="{colour}">{_esc(text)}</text>'
        )

    answered = {a.seq for s in steps for a in s.actions if isinstance(a, RttSample)}
    unanswered = [
        s.now for s in steps for a in s.actions if isinstance(a, SendPing) and a.seq not in answered
    ]
    frozen_from = unanswered[0] + TIMELINE_DELAY if unanswered else None
    for step in steps:
        for action in step.actions:
            if isinstance(action, SendPing):
                arrive = step.now + TIMELINE_DELAY
                arrow(us, step.now, peer, arrive, f"ping #{action.seq}")
                note(step.now, f"t={step.now:g} s", "#555", x=20)
            elif isinstance(action, RttSample):
                sent = step.now - TIMELINE_DELAY
                arrow(peer, sent, us, step.now, f"pong #{action.seq}", below=True)
                note(step.now + 0.1, f"RttSample: {action.rtt * 1000:.0f} ms", "#2f7ed8", x=us + 16)
            elif isinstance(action, PeerDead):
                out.append(
                    f'<path d="M{us + 14},{y(step.now - action.waited):.1f} h8 '
                    f'V{y(step.now):.1f} h-8" stroke="#d9534f" fill="none"/>'
                    f'<text x="{us + 28}" y="{y(step.now - action.waited / 2) + 4:.1f}" '
                    f'fill="#d9534f">timeout {action.waited:g} s: peer dead</text>'
                )
                note(step.now, f"t={step.now:g} s", "#555", x=20)
            elif isinstance(action, SendClose):
                arrow(
                    us,
                    step.now,
                    peer - 140,
                    step.now + 0.1,
                    f"close {action.code} {action.reason}",
                    colour="#d9534f",
                    at_start=True,
                )
                out.append(
                    f'<text x="{peer - 134}" y="{y(step.now + 0.1) + 4:.1f}" fill="#d9534f">'
                    "(never drains)</text>"
                )
            elif isinstance(action, CloseTransport):
                note(step.now + 0.25, "CloseTransport: release once flushed", "#555", x=us + 16)
            elif isinstance(action, Abort):
                out.append(
                    f'<line x1="{us - 14}" y1="{y(step.now):.1f}" x2="{us + 14}" '
                    f'y2="{y(step.now):.1f}" stroke="#d9534f" stroke-width="3"/>'
                )
                note(
                    step.now,
                    f"Abort after close_timeout {config.close_timeout:g} s",
                    "#d9534f",
                    x=us + 16,
                )
                note(step.now, f"t={step.now:g} s", "#555", x=20)
    if frozen_from is not None:
        out.append(
            f'<rect x="{peer - 5}" y="{y(frozen_from):.1f}" width="10" '
            f'height="{y(end) - y(frozen_from):.1f}" fill="#bbb"/>'
        )
        note(frozen_from + 0.15, "frozen: reads nothing,", "#555")
        note(frozen_from + 0.25, "answers nothing", "#555")
    interval_end = next(s.now for s in steps if any(isinstance(a, SendPing) for a in s.actions))
    out.append(
        f'<path d="M{us - 70},{y(0):.1f} h-6 V{y(interval_end):.1f} h6" stroke="#5cb85c" '
        'fill="none"/>'
        f'<text x="{us - 80}" y="{y(interval_end / 2) + 4:.1f}" text-anchor="end" '
        f'fill="#5cb85c">interval {config.interval:g} s</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def timeline_table(steps: Sequence[TimelineStep]) -> str:
    """The same run as a table: every event, the actions, the phase and deadline after it."""
    lines = [
        ".. list-table:: The run behind the figure",
        "   :header-rows: 1",
        "   :widths: 10 22 40 14 14",
        "",
        "   * - now (s)",
        "     - Event",
        "     - Actions returned",
        "     - Phase after",
        "     - Next deadline",
    ]
    for step in steps:
        actions = ", ".join(f"``{_action_text(a)}``" for a in step.actions) or "(none)"
        deadline = "none" if step.deadline is None else f"{step.deadline:g}"
        lines += [
            f"   * - {step.now:g}",
            f"     - ``{step.event}``",
            f"     - {actions}",
            f"     - ``{step.phase.name}``",
            f"     - {deadline}",
        ]
    return "\n".join(lines) + "\n"


def _action_text(action: Action) -> str:
    fields = []
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        fields.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value!r}")
    return f"{type(action).__name__}({', '.join(fields)})"


# ------------------------------------------------------------------ rules, config


def rules_list() -> str:
    """The rules' definition list, verbatim from the ``heartbeat_core.state`` docstring."""
    doc = state_module.__doc__ or ""
    start = doc.index("The rules, by name")
    body = doc[start:].split("\n", 1)[1]
    return textwrap.dedent(body).strip() + "\n"


def rule_names() -> list[str]:
    """The rules' names, in the order the core's docstring gives them."""
    return [
        line.strip().strip("`")
        for line in rules_list().splitlines()
        if line.startswith("``") and line.strip().endswith("``")
    ]


def _default_text(value: object) -> str:
    if isinstance(value, enum.Enum):
        return f"``{type(value).__name__}.{value.name}``"
    return f"``{value!r}``"


def config_table(cls: type, title: str) -> str:
    """A table of ``cls``'s fields: name, type, default and the field's ``#:`` comment."""
    from sphinx.pycode import ModuleAnalyzer

    docs = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    lines = [
        f".. list-table:: {title}",
        "   :header-rows: 1",
        "   :widths: 22 18 16 44",
        "",
        "   * - Field",
        "     - Type",
        "     - Default",
        "     - Meaning",
    ]
    for f in dataclasses.fields(cls):
        meaning = " ".join(line.strip() for line in docs.get((cls.__name__, f.name), [])).strip()
        lines += [
            f"   * - ``{f.name}``",
            f"     - ``{f.type}``",
            f"     - {_default_text(f.default)}",
            f"     - {meaning or '(undocumented)'}",
        ]
    return "\n".join(lines) + "\n"


def cli_help() -> str:
    """``heartbeat --help`` and each subcommand's help, as RST sections."""
    from heartbeat_cli.app import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"
    try:
        parser = build_parser()
        parts = [("heartbeat", parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    parts.append((f"heartbeat {name}", sub.format_help()))
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    out = []
    for title, text in parts:
        out += [
            f".. _cli-{title.replace(' ', '-')}:",
            "",
            f"``{title}``",
            "-" * (len(title) + 4),
            "",
            ".. code-block:: text",
            "",
            textwrap.indent(text.rstrip(), "   "),
            "",
        ]
    return "\n".join(out)


# -------------------------------------------------------------------- sphinx glue


def _write(path: Path, text: str) -> None:
    """Write only when the content changed, so Sphinx does not rebuild for nothing."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate(srcdir: Path) -> None:
    """Write every generated file under ``srcdir/_generated``."""
    out = srcdir / "_generated"
    out.mkdir(exist_ok=True)
    steps = run_timeline()
    _write(out / "states.svg", state_svg())
    _write(out / "transitions.rst.inc", transitions_table())
    _write(out / "timeline.svg", timeline_svg(steps))
    _write(out / "timeline.rst.inc", timeline_table(steps))
    _write(out / "rules.rst.inc", rules_list())
    _write(
        out / "config.rst.inc",
        config_table(HeartbeatConfig, "``HeartbeatConfig`` (``heartbeat_core.config``)")
        + "\n"
        + config_table(BackoffPolicy, "``BackoffPolicy`` (reconnecting clients)"),
    )
    _write(out / "cli.rst.inc", cli_help())
    results = srcdir / "benchmarks-results.md"
    if not results.exists():
        _write(results, "Not yet measured: run the benchmarks to fill this page.\n")


def _on_builder_inited(app: Any) -> None:
    generate(Path(app.srcdir))


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
