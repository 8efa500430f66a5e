"""Application-level heartbeat messages: recognising and producing them cheaply."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from heartbeat_core.errors import ConfigError

__all__ = ["AppCodec", "AppKind", "JSON_CODEC"]


class AppKind(enum.Enum):
    """What a text message is, as far as heartbeats go."""

    PING = "ping"
    PONG = "pong"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCodec:
    """The application-level heartbeat format.

    By default ``{"type":"ping"}`` answered by ``{"type":"pong"}``: browser
    JavaScript can neither send nor see ping frames, so a page's heartbeat must
    be a message, and this small JSON object is the usual convention for one (it
    fits applications that already exchange JSON, and our browser client speaks
    it). A text message is a heartbeat when it is at most
    ``max_length`` characters and either equals ``ping_text``/``pong_text``
    exactly or is a JSON object whose top-level ``type_key`` is ``ping`` or
    ``pong`` (``{"type": "ping", "ts": 1}`` counts; a ping nested deeper does
    not). Longer messages are never parsed, so classifying costs a length
    check for ordinary traffic.
    """

    ping_text: str = '{"type":"ping"}'
    pong_text: str = '{"type":"pong"}'
    #: Recognise JSON objects by their top-level ``type`` field (else exact text only).
    json_type_key: str | None = "type"
    max_length: int = 256
    _exact: dict[str, AppKind] = field(init=False, repr=False, compare=False)
    _needle: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.ping_text or not self.pong_text or self.ping_text == self.pong_text:
            raise ConfigError("ping_text and pong_text must be two different non-empty strings")
        if max(len(self.ping_text), len(self.pong_text)) > self.max_length:
            raise ConfigError("max_length must be at least as long as ping_text and pong_text")
        object.__setattr__(
            self, "_exact", {self.ping_text: AppKind.PING, self.pong_text: AppKind.PONG}
        )
        object.__setattr__(
            self, "_needle", "" if self.json_type_key is None else json.dumps(self.json_type_key)
        )

    def classify(self, text: str) -> AppKind | None:
        """``AppKind.PING`` / ``AppKind.PONG`` for a heartbeat message, else ``None``."""
        if len(text) > self.max_length:
            return None
        kind = self._exact.get(text)
        if kind is not None or not self._needle or self._needle not in text:
            return kind
        if '"ping"' not in text and '"pong"' not in text and "\\" not in text:
            # No JSON string in it can be "ping" or "pong" (without an escape, the value
            # is written as it is): ordinary JSON traffic costs no parse.
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        tag = value.get(self.json_type_key)
        if tag == "ping":
            return AppKind.PING
        if tag == "pong":
            return AppKind.PONG
        return None


#: The default format: ``{"type":"ping"}`` / ``{"type":"pong"}``, and any small JSON
#: object whose top-level ``type`` is ``ping`` or ``pong``.
JSON_CODEC = AppCodec()
