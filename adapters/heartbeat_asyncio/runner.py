"""The core's actions carried out on an asyncio loop, for frameworks that own the frames.

:class:`LoopRunner` is :class:`~heartbeat_core.ActionRunner` with the drivers' clock and
the loop's shared timer (:mod:`heartbeat_asyncio.loop`: one ``call_later`` handle for all
the connections of a loop). The framework integrations (``heartbeat_websockets``,
``heartbeat_aiohttp``, ``heartbeat_asgi``) subclass it and add the sends; so can an
integration of your own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from heartbeat_asyncio.loop import LoopShare, clock, share_for
from heartbeat_core import JSON_CODEC, ActionRunner, AppCodec, EventCallback, HeartbeatConfig
from heartbeat_core.randomness import RandomSource

__all__ = ["LoopRunner"]


class LoopRunner(ActionRunner):
    """An :class:`~heartbeat_core.ActionRunner` whose ``now()`` is the drivers' monotonic clock and
    whose timer is the loop's shared one. Subclasses override the sends
    (``send_ping``, ``send_pong``, ``send_text``, ``send_close``, ``close_transport``,
    ``abort``); call :meth:`lost` when the transport is gone (it unfiles the timer)."""

    __slots__ = ("_share", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: HeartbeatConfig | None = None,
        *,
        codec: AppCodec = JSON_CODEC,
        on_event: EventCallback | None = None,
        owner: object = None,
        random: RandomSource | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            config, codec=codec, on_event=on_event, owner=owner, random=random, logger=logger
        )
        #: The event loop this connection runs on.
        self.loop: asyncio.AbstractEventLoop = loop
        self._share: LoopShare = share_for(loop)

    def now(self) -> float:
        return clock()

    def file_timer(self, when: float | None) -> None:
        # The loop's wheel is typed for the drivers' connections; a runner is a TimerItem
        # with a _timer_due() as well, which is all the wheel and the share use.
        me: Any = self
        if when is None:
            self._share.unfile(me)
        elif self._share.wheel.file(me, when):
            self._share.rearm()

    def _timer_due(self) -> None:
        """Called by the loop's shared timer (early is harmless)."""
        self.timer_due()
