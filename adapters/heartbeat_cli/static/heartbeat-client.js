/**
 * heartbeat-client.js: a browser WebSocket that keeps itself honest.
 *
 * Dependency-free. Load it as an ES module (`import { HeartbeatClient } from
 * '/heartbeat-client.js'`) or as a classic script (`<script
 * src="/heartbeat-client.global.js">`, which defines `window.HeartbeatClient`).
 * `heartbeat serve` serves both.
 *
 * Browsers cannot send protocol pings, so the heartbeat travels as messages:
 * `{"type":"ping"}`, answered by `{"type":"pong"}`, the usual JSON convention for
 * application-level heartbeats, which heartbeat-core's servers answer. The
 * timing rules are heartbeat-core's (heartbeat_core/state.py), with times in
 * milliseconds:
 *
 * - interval: the next ping is due `pingInterval` after the last sign of life
 *   (any inbound message; only a pong with `liveness: 'pong'`).
 * - one-outstanding: one ping at a time; a pong acknowledges every ping sent.
 * - dead-peer: nothing qualifying within `timeout` after a ping: the server is
 *   declared dead, the socket is dropped (close 4000 "heartbeat-timeout",
 *   without waiting for an answer) and a reconnect is scheduled.
 * - rtt: every acknowledged ping is an RTT sample (last, min, max, SRTT and
 *   RTTVAR as in RFC 6298).
 * - late-timer: a timer delivered more than `stallThreshold` after its
 *   deadline means *we* were throttled (a hidden tab, a busy main thread): we
 *   allow `stallGrace` to read what arrived meanwhile before declaring the
 *   server dead.
 * - early-timer: a timer that fires before its deadline changes nothing.
 * - the server's `{"type":"ping"}` messages are answered with `{"type":"pong"}`.
 *
 * Reconnects wait as heartbeat-core's Backoff says: a bound that starts at
 * `backoff.initial` and is multiplied by `backoff.multiplier` after every
 * failure (up to `backoff.maximum`), the delay drawn uniformly from [0, bound]
 * (full jitter); a connection that stayed up `backoff.resetAfter` starts over.
 *
 * Events (an EventTarget; `detail` carries the data; `client.on(type, fn)`
 * calls `fn(detail)`): open, message {data}, ping {seq}, rtt {seq, rtt},
 * stall {late}, dead {seq, waited}, close {code, reason, wasClean},
 * retry {delay, attempt}, statechange {state, previous}.
 */

const PING_TEXT = '{"type":"ping"}';
const PONG_TEXT = '{"type":"pong"}';
const OPEN_STATES = new Set(['idle', 'awaiting', 'grace']);

const DEFAULTS = Object.freeze({
  pingInterval: 20000,
  timeout: 10000,
  openTimeout: 10000,
  closeTimeout: 5000,
  stallThreshold: 250,
  stallGrace: 100,
  liveness: 'any',
  answerPings: true,
  reconnect: true,
  pingText: PING_TEXT,
  pongText: PONG_TEXT,
  protocols: undefined,
  binaryType: 'arraybuffer',
  backoff: undefined,
});

const BACKOFF_DEFAULTS = Object.freeze({
  initial: 500,
  multiplier: 2,
  maximum: 30000,
  resetAfter: 10000,
  fullJitter: true,
});

function checkMs(name, value, { positive = false } = {}) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    throw new TypeError(
      `heartbeat-client: ${name} must be a finite number of milliseconds ${positive ? '> 0' : '>= 0'}, got ${String(value)}`,
    );
  }
}

/**
 * 'ping' or 'pong' when `text` is a heartbeat message, else null. A heartbeat is
 * the exact ping/pong text, or a JSON object (at most 256 characters) whose
 * top-level "type" is "ping" or "pong" (as heartbeat-core's AppCodec).
 */
export function classifyHeartbeat(text, pingText = PING_TEXT, pongText = PONG_TEXT) {
  if (typeof text !== 'string' || text.length > 256) return null;
  if (text === pingText) return 'ping';
  if (text === pongText) return 'pong';
  if (text.indexOf('"type"') < 0) return null;
  let value;
  try {
    value = JSON.parse(text);
  } catch (_) {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  return value.type === 'ping' || value.type === 'pong' ? value.type : null;
}

/** Reconnect delays in milliseconds: exponential, capped, full jitter (heartbeat-core's Backoff). */
export class Backoff {
  constructor(policy = {}, random = Math.random) {
    const p = { ...BACKOFF_DEFAULTS, ...(policy || {}) };
    checkMs('backoff.initial', p.initial, { positive: true });
    checkMs('backoff.maximum', p.maximum, { positive: true });
    checkMs('backoff.resetAfter', p.resetAfter);
    if (typeof p.multiplier !== 'number' || !(p.multiplier >= 1)) {
      throw new TypeError(`heartbeat-client: backoff.multiplier must be >= 1, got ${String(p.multiplier)}`);
    }
    if (p.maximum < p.initial) {
      throw new TypeError('heartbeat-client: backoff.maximum must be at least backoff.initial');
    }
    this.policy = Object.freeze(p);
    this._random = random;
    this._attempt = 0;
    this._connectedAt = null;
  }

  /** Failures since the last reset. */
  get attempt() {
    return this._attempt;
  }

  /** A connection opened at `now` (ms). */
  connected(now) {
    this._connectedAt = now;
  }

  /** An attempt failed, or a connection ended, at `now`: the wait (ms) before retrying. */
  nextDelay(now) {
    const p = this.policy;
    if (this._connectedAt !== null) {
      if (now - this._connectedAt >= p.resetAfter) this._attempt = 0;
      this._connectedAt = null;
    }
    const bound = Math.min(p.maximum, p.initial * p.multiplier ** Math.min(this._attempt, 64));
    this._attempt += 1;
    return p.fullJitter ? bound * this._random() : bound;
  }
}

function resolveUrl(url) {
  if (typeof url !== 'string' || url === '') {
    throw new TypeError('heartbeat-client: url must be a ws://, wss:// or /relative URL string');
  }
  const loc = globalThis.location;
  if (url.startsWith('/') && loc && loc.host) {
    return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${url}`;
  }
  return url;
}

/** A WebSocket with heartbeats, dead-server detection and reconnects. Call connect() to start. */
export class HeartbeatClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    const o = { ...DEFAULTS, ...(options || {}) };
    checkMs('pingInterval', o.pingInterval, { positive: true });
    checkMs('timeout', o.timeout, { positive: true });
    checkMs('openTimeout', o.openTimeout, { positive: true });
    checkMs('closeTimeout', o.closeTimeout);
    checkMs('stallThreshold', o.stallThreshold);
    checkMs('stallGrace', o.stallGrace);
    if (o.liveness !== 'any' && o.liveness !== 'pong') {
      throw new TypeError(`heartbeat-client: liveness must be 'any' or 'pong', got ${String(o.liveness)}`);
    }
    this.url = resolveUrl(url);
    this.options = Object.freeze(o);
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('heartbeat-client: no WebSocket here; pass options.WebSocket');
    }
    this._clock = o.now || (() => globalThis.performance.now());
    this._setTimer = o.setTimeout || ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimer = o.clearTimeout || ((handle) => globalThis.clearTimeout(handle));
    this._document = o.document !== undefined ? o.document : globalThis.document;
    this._backoff = new Backoff(o.backoff, o.random || Math.random);
    this._ws = null;
    this._state = 'new';
    this._timer = null;
    this._fire = () => {
      this._timer = null;
      this._onTimer();
    };
    this._onVisibility = () => {
      // Back in view: run the timer now (early changes nothing; late gets the grace).
      if (this._document && !this._document.hidden) this._onTimer();
    };
    this._deadlineAt = null;
    this._seq = 0;
    this._acked = 0;
    this._lastAlive = 0;
    this._lastPingAt = 0;
    this._lastNow = -Infinity;
    this._stopped = false;
    this._stats = {
      connects: 0,
      reconnects: 0,
      pingsSent: 0,
      pongsReceived: 0,
      misses: 0,
      stalls: 0,
      peerPings: 0,
      lastRtt: null,
      minRtt: null,
      maxRtt: null,
      srtt: null,
      rttvar: null,
    };
  }

  // ---------------------------------------------------------------- views

  /** new | connecting | idle | awaiting | grace | closing | waiting | stopped */
  get state() {
    return this._state;
  }

  /** True while messages can be sent. */
  get isOpen() {
    return OPEN_STATES.has(this._state);
  }

  /** A copy of the figures (RTTs in milliseconds, null before the first pong). */
  get stats() {
    return { ...this._stats, attempt: this._backoff.attempt };
  }

  /** The current WebSocket (null between connections). */
  get socket() {
    return this._ws;
  }

  /** When the one timer is due next (ms on the client's clock), or null. */
  get deadline() {
    switch (this._state) {
      case 'idle':
        return this._lastAlive + this.options.pingInterval;
      case 'awaiting':
        return this._lastPingAt + this.options.timeout;
      default:
        return this._deadlineAt;
    }
  }

  // ---------------------------------------------------------------- control

  /** Start connecting (and keep reconnecting until close()). Returns this. */
  connect() {
    if (this._state !== 'new' && this._state !== 'stopped') return this;
    this._stopped = false;
    if (this._document && typeof this._document.addEventListener === 'function') {
      this._document.addEventListener('visibilitychange', this._onVisibility);
    }
    this._open();
    return this;
  }

  /** Send a message. Throws when not connected: wait for the 'open' event. */
  send(data) {
    if (!this.isOpen) {
      throw new Error(`heartbeat-client: cannot send while ${this._state}; wait for the 'open' event`);
    }
    this._ws.send(data);
  }

  /** Close for good (no reconnect): a normal closing handshake bounded by closeTimeout. */
  close(code = 1000, reason = '') {
    this._stopped = true;
    if (this._document && typeof this._document.removeEventListener === 'function') {
      this._document.removeEventListener('visibilitychange', this._onVisibility);
    }
    if (this.isOpen) {
      const now = this._now();
      this._ws.close(code, reason);
      this._setState('closing');
      this._deadlineAt = now + this.options.closeTimeout;
      this._arm();
    } else if (this._state === 'connecting') {
      this._drop(1000, 'closed while connecting');
      this._ended({ code: 1006, reason: 'closed while connecting', wasClean: false });
    } else if (this._state !== 'closing') {
      this._cancelTimer();
      this._deadlineAt = null;
      this._setState('stopped');
    }
  }

  /** Listen for `type`; `fn` receives the event's detail. Returns this. */
  on(type, fn) {
    this.addEventListener(type, (event) => fn(event.detail, event));
    return this;
  }

  // ---------------------------------------------------------------- internal

  _now() {
    // Never let time run backwards (the core refuses it; a clock may be coarse).
    const now = Math.max(this._clock(), this._lastNow);
    this._lastNow = now;
    return now;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state) {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this._emit('statechange', { state, previous });
  }

  _cancelTimer() {
    if (this._timer !== null) {
      this._clearTimer(this._timer);
      this._timer = null;
    }
  }

  _arm() {
    this._cancelTimer();
    const deadline = this.deadline;
    if (deadline === null) return;
    this._timer = this._setTimer(this._fire, Math.max(0, deadline - this._now()));
  }

  _open() {
    const now = this._now();
    let ws;
    try {
      ws = this.options.protocols === undefined
        ? new this._WebSocket(this.url)
        : new this._WebSocket(this.url, this.options.protocols);
    } catch (error) {
      // A malformed URL is not worth retrying: it will never work.
      this._setState('stopped');
      throw error;
    }
    ws.binaryType = this.options.binaryType;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (event) => this._onMessage(ws, event);
    ws.onclose = (event) => this._onClose(ws, event);
    ws.onerror = () => {}; // a close event always follows; it carries what we need
    this._ws = ws;
    this._setState('connecting');
    this._deadlineAt = now + this.options.openTimeout;
    this._arm();
  }

  _onOpen(ws) {
    if (ws !== this._ws) return;
    const now = this._now();
    this._lastAlive = now;
    this._lastPingAt = now;
    this._deadlineAt = null;
    this._backoff.connected(now);
    this._stats.connects += 1;
    if (this._stats.connects > 1) this._stats.reconnects += 1;
    this._setState('idle');
    this._arm();
    this._emit('open', { url: this.url });
  }

  _alive(now) {
    this._lastAlive = now;
    if (this._state === 'awaiting' || this._state === 'grace') this._setState('idle');
  }

  _onMessage(ws, event) {
    if (ws !== this._ws || !this.isOpen) return;
    const now = this._now();
    const data = event.data;
    const anyInbound = this.options.liveness === 'any';
    const kind = typeof data === 'string'
      ? classifyHeartbeat(data, this.options.pingText, this.options.pongText)
      : null;
    if (anyInbound) this._alive(now);
    if (kind === 'pong') {
      this._acknowledge(now);
    } else if (kind === 'ping') {
      this._stats.peerPings += 1;
      if (this.options.answerPings) ws.send(this.options.pongText);
    }
    this._arm();
    if (kind === null) this._emit('message', { data });
  }

  _acknowledge(now) {
    if (!(this._acked < this._seq)) return; // unsolicited or repeated: ignored
    this._acked = this._seq;
    this._alive(now);
    const rtt = now - this._lastPingAt;
    const s = this._stats;
    s.pongsReceived += 1;
    s.lastRtt = rtt;
    if (s.srtt === null) {
      s.srtt = rtt;
      s.rttvar = rtt / 2;
      s.minRtt = rtt;
      s.maxRtt = rtt;
    } else {
      s.rttvar = 0.75 * s.rttvar + 0.25 * Math.abs(s.srtt - rtt);
      s.srtt = 0.875 * s.srtt + 0.125 * rtt;
      s.minRtt = Math.min(s.minRtt, rtt);
      s.maxRtt = Math.max(s.maxRtt, rtt);
    }
    this._emit('rtt', { seq: this._seq, rtt });
  }

  _onTimer() {
    const deadline = this.deadline;
    const now = this._now();
    if (deadline === null) return;
    if (now < deadline) {
      this._arm(); // early-timer: nothing changes
      return;
    }
    switch (this._state) {
      case 'idle': {
        this._seq += 1;
        this._lastPingAt = now;
        this._stats.pingsSent += 1;
        this._setState('awaiting');
        this._arm(); // armed before anything else runs, so a stall shows as a late timer
        this._ws.send(this.options.pingText);
        this._emit('ping', { seq: this._seq });
        return;
      }
      case 'awaiting':
      case 'grace': {
        const late = now - deadline;
        if (late > this.options.stallThreshold) {
          // We were throttled or blocked: read what arrived meanwhile first.
          this._stats.stalls += 1;
          this._deadlineAt = now + this.options.stallGrace;
          this._setState('grace');
          this._arm();
          this._emit('stall', { late });
          return;
        }
        this._stats.misses += 1;
        this._emit('dead', { seq: this._seq, waited: now - this._lastPingAt });
        this._drop(4000, 'heartbeat-timeout');
        this._ended({ code: 4000, reason: 'heartbeat-timeout', wasClean: false });
        return;
      }
      case 'connecting':
        this._drop(1000, 'open timeout');
        this._ended({ code: 1006, reason: 'open timeout', wasClean: false });
        return;
      case 'closing':
        // The closing handshake took too long: give up on it.
        this._drop(1000, '');
        this._ended({ code: 1006, reason: 'close timeout', wasClean: false });
        return;
      case 'waiting':
        this._deadlineAt = null;
        this._open();
        return;
      default:
        return;
    }
  }

  _drop(code, reason) {
    // Forget the socket at once (a dead server would never finish a handshake).
    const ws = this._ws;
    this._ws = null;
    if (ws === null) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch (_) {
      // already closing or closed
    }
  }

  _onClose(ws, event) {
    if (ws !== this._ws) return;
    this._ws = null;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this._ended({ code: event.code, reason: event.reason, wasClean: event.wasClean });
  }

  _ended(detail) {
    this._cancelTimer();
    this._deadlineAt = null;
    this._emit('close', detail);
    if (this._stopped || !this.options.reconnect) {
      this._stopped = true;
      this._setState('stopped');
      return;
    }
    const now = this._now();
    const delay = this._backoff.nextDelay(now);
    this._deadlineAt = now + delay;
    this._setState('waiting');
    this._arm();
    this._emit('retry', { delay, attempt: this._backoff.attempt });
  }
}

HeartbeatClient.Backoff = Backoff;
HeartbeatClient.classifyHeartbeat = classifyHeartbeat;

export default HeartbeatClient;
