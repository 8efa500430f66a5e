// heartbeat-client.js's timing rules under a fake clock and a fake WebSocket (node --test).
// Each rule is the core's (heartbeat_core/state.py), in milliseconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.join(here, '../../../adapters/heartbeat_cli/static/heartbeat-client.js');
const { HeartbeatClient, Backoff, classifyHeartbeat } = await import(source);

class FakeClock {
  constructor({ early = 0 } = {}) {
    this.now = 0;
    this.early = early; // timers fire this much before they are due (the early-timer rule)
    this.timers = new Map();
    this.nextId = 1;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.now + (this.early ? Math.max(1, ms - this.early) : ms), fn });
      return id;
    };
    this.clearTimeout = (id) => this.timers.delete(id);
  }

  /** Let `ms` pass, running every timer that falls due, in order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.now = Math.max(this.now, next[1].at);
      next[1].fn();
    }
    this.now = end;
  }

  /** We stall: `ms` pass and no timer runs (a throttled tab, a blocked main thread). */
  stall(ms) {
    this.now += ms;
  }
}

function setup(options = {}) {
  const clock = new FakeClock(options.clockOptions);
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = null;
      sockets.push(this);
    }
    send(data) { this.sent.push(data); }
    close(code, reason) { this.closed = { code, reason }; }
    open() { this.onopen({}); }
    message(data) { this.onmessage({ data }); }
    serverClose(code = 1001, reason = '') {
      if (this.onclose) this.onclose({ code, reason, wasClean: true }); // null once dropped
    }
  }
  const { clockOptions, ...rest } = options;
  const client = new HeartbeatClient('ws://example.test/socket', {
    WebSocket: FakeSocket,
    now: () => clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    document: null,
    pingInterval: 1000,
    timeout: 500,
    ...rest,
  });
  const events = [];
  for (const type of ['open', 'message', 'ping', 'rtt', 'stall', 'dead', 'close', 'retry']) {
    client.on(type, (detail) => events.push({ type, at: clock.now, ...detail }));
  }
  const of = (type) => events.filter((e) => e.type === type);
  client.connect();
  return { clock, sockets, client, events, of, ws: () => sockets[sockets.length - 1] };
}

test('interval: a ping is due pingInterval after the last sign of life; rtt from its pong', () => {
  const { clock, client, ws, of } = setup();
  ws().open();
  clock.advance(999);
  assert.deepEqual(ws().sent, []);
  clock.advance(1);
  assert.deepEqual(ws().sent, ['{"type":"ping"}']);
  assert.equal(client.state, 'awaiting');
  clock.advance(30);
  ws().message('{"type":"pong"}');
  assert.deepEqual(of('rtt').map((e) => [e.seq, e.rtt]), [[1, 30]]);
  const s = client.stats;
  assert.equal(s.lastRtt, 30);
  assert.equal(s.srtt, 30);
  assert.equal(s.rttvar, 15);
  assert.equal(client.state, 'idle');
  assert.equal(client.deadline, 1030 + 1000);
  clock.advance(1000);
  ws().message('{"type":"pong","ts":1}'); // a JSON pong with more fields counts too
  assert.equal(of('rtt')[1].rtt, 0);
  assert.equal(client.stats.srtt, 0.875 * 30);
  assert.equal(client.stats.rttvar, 0.75 * 15 + 0.25 * 30);
  assert.equal(of('message').length, 0); // heartbeats are consumed
});

test('liveness any: any message postpones the ping; liveness pong: only pongs do', () => {
  const any = setup();
  any.ws().open();
  any.clock.advance(900);
  any.ws().message('hello');
  any.clock.advance(999);
  assert.deepEqual(any.ws().sent, []);
  any.clock.advance(1);
  assert.equal(any.ws().sent.length, 1);
  assert.deepEqual(any.of('message').map((e) => e.data), ['hello']);

  const pong = setup({ liveness: 'pong' });
  pong.ws().open();
  pong.clock.advance(900);
  pong.ws().message('hello');
  pong.clock.advance(100);
  assert.equal(pong.ws().sent.length, 1);
});

test('one-outstanding: an unsolicited or repeated pong is ignored', () => {
  const { clock, client, ws, of } = setup();
  ws().open();
  ws().message('{"type":"pong"}');
  clock.advance(1000);
  clock.advance(10);
  ws().message('{"type":"pong"}');
  ws().message('{"type":"pong"}');
  assert.equal(of('rtt').length, 1);
  assert.equal(client.stats.pongsReceived, 1);
});

test('dead-peer: no answer within timeout: dead, socket dropped, retry with full jitter', () => {
  const { clock, client, ws, sockets, of } = setup();
  ws().open();
  clock.advance(1000 + 499);
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead').map((e) => [e.seq, e.waited]), [[1, 500]]);
  assert.deepEqual(sockets[0].closed, { code: 4000, reason: 'heartbeat-timeout' });
  assert.deepEqual(of('close').map((e) => e.code), [4000]);
  assert.equal(client.state, 'waiting');
  assert.deepEqual(of('retry').map((e) => [e.delay, e.attempt]), [[250, 1]]); // 500 * random 0.5
  assert.equal(client.stats.misses, 1);
  sockets[0].serverClose(); // a late close event of the dropped socket changes nothing
  assert.equal(of('close').length, 1);
  clock.advance(249);
  assert.equal(sockets.length, 1);
  clock.advance(1);
  assert.equal(sockets.length, 2);
  assert.equal(client.state, 'connecting');
  ws().open();
  assert.equal(client.stats.reconnects, 1);
  assert.equal(client.state, 'idle');
});

test('late-timer: a timer far past its deadline gives a grace to read pending input', () => {
  const { clock, client, ws, of } = setup();
  ws().open();
  clock.advance(1000); // ping 1 sent; the pong is due by 1500
  clock.stall(2000); // we were throttled: now 3000, the timer has not run
  clock.advance(0);
  assert.equal(client.state, 'grace');
  assert.deepEqual(of('stall').map((e) => e.late), [1500]);
  assert.equal(of('dead').length, 0);
  ws().message('{"type":"pong"}'); // it had arrived meanwhile
  assert.equal(client.state, 'idle');
  assert.deepEqual(of('rtt').map((e) => e.rtt), [2000]);
  assert.equal(client.deadline, 3000 + 1000); // the next ping is due as usual
});

test('late-timer: nothing arrives within the grace: dead', () => {
  const { clock, client, ws, of } = setup({ stallGrace: 100 });
  ws().open();
  clock.advance(1000);
  clock.stall(2000);
  clock.advance(99);
  assert.equal(client.state, 'grace');
  clock.advance(1);
  assert.deepEqual(of('dead').map((e) => e.waited), [2100]);
});

test('late-timer: late by no more than stallThreshold is no stall', () => {
  const { clock, ws, of } = setup({ stallThreshold: 250 });
  ws().open();
  clock.advance(1000);
  clock.stall(500 + 250);
  clock.advance(0);
  assert.equal(of('stall').length, 0);
  assert.deepEqual(of('dead').map((e) => e.waited), [750]);
});

test('early-timer: a timer that fires before its deadline changes nothing', () => {
  const { clock, ws, of } = setup({ clockOptions: { early: 300 } });
  ws().open();
  clock.advance(999);
  assert.equal(of('ping').length, 0);
  clock.advance(1);
  assert.deepEqual(of('ping').map((e) => e.at), [1000]);
  clock.advance(499);
  assert.equal(of('dead').length, 0);
  clock.advance(1);
  assert.deepEqual(of('dead').map((e) => e.at), [1500]);
});

test("the server's pings are answered and consumed; other messages are delivered", () => {
  const { clock, client, ws, of } = setup();
  ws().open();
  clock.advance(10);
  ws().message('{"type":"ping"}');
  ws().message('{"type": "ping", "n": 3}');
  ws().message('{"type":"other"}');
  ws().message('["ping"]');
  assert.deepEqual(ws().sent, ['{"type":"pong"}', '{"type":"pong"}']);
  assert.deepEqual(of('message').map((e) => e.data), ['{"type":"other"}', '["ping"]']);
  assert.equal(client.stats.peerPings, 2);
  client.send('hi');
  assert.equal(ws().sent[2], 'hi');
});

test('classifyHeartbeat recognises what heartbeat-core recognises', () => {
  assert.equal(classifyHeartbeat('{"type":"ping"}'), 'ping');
  assert.equal(classifyHeartbeat('{"type":"pong"}'), 'pong');
  assert.equal(classifyHeartbeat('{ "type" : "pong", "ts": 5 }'), 'pong');
  assert.equal(classifyHeartbeat('{"data":{"type":"ping"}}'), null); // nested: not a heartbeat
  assert.equal(classifyHeartbeat('ping'), null);
  assert.equal(classifyHeartbeat('{"type":"ping"'), null);
  assert.equal(classifyHeartbeat(`{"type":"ping","pad":"${'x'.repeat(300)}"}`), null);
  assert.equal(classifyHeartbeat(new ArrayBuffer(4)), null);
});

test('Backoff: exponential bounds, capped, full jitter, reset after a stable connection', () => {
  const fixed = new Backoff({ initial: 500, multiplier: 2, maximum: 3000, fullJitter: false });
  assert.deepEqual([0, 1, 2, 3, 4].map(() => fixed.nextDelay(0)), [500, 1000, 2000, 3000, 3000]);
  fixed.connected(100);
  assert.equal(fixed.nextDelay(100 + 9999), 3000); // up for less than resetAfter: no reset
  fixed.connected(20000);
  assert.equal(fixed.nextDelay(30000), 500); // up for resetAfter (10 s): the sequence restarts
  const jitter = new Backoff({ initial: 400 }, () => 0.25);
  assert.deepEqual([jitter.nextDelay(0), jitter.nextDelay(0)], [100, 200]);
  assert.throws(() => new Backoff({ multiplier: 0.5 }), /multiplier must be >= 1/);
  assert.throws(() => new Backoff({ initial: 100, maximum: 50 }), /maximum/);
});

test('close() ends for good: no reconnect; a close that never completes is given up', () => {
  const a = setup();
  a.ws().open();
  a.client.close(1000, 'bye');
  assert.deepEqual(a.ws().closed, { code: 1000, reason: 'bye' });
  assert.equal(a.client.state, 'closing');
  a.ws().serverClose(1000, 'bye');
  assert.equal(a.client.state, 'stopped');
  assert.equal(a.of('retry').length, 0);

  const b = setup({ closeTimeout: 200 });
  b.ws().open();
  b.client.close();
  b.clock.advance(200);
  assert.equal(b.client.state, 'stopped');
  assert.deepEqual(b.of('close').map((e) => e.reason), ['close timeout']);
  assert.equal(b.of('retry').length, 0);
  assert.throws(() => b.client.send('x'), /cannot send while stopped/);
});

test('a server that closes or never opens: retries with growing bounds', () => {
  const { clock, client, ws, sockets, of } = setup({ openTimeout: 1000 });
  clock.advance(1000); // never opened
  assert.deepEqual(of('close').map((e) => e.reason), ['open timeout']);
  assert.deepEqual(sockets[0].closed, { code: 1000, reason: 'open timeout' });
  clock.advance(250);
  ws().serverClose(1006); // refused
  clock.advance(500);
  ws().open();
  ws().serverClose(1001, 'going away'); // a restart
  assert.deepEqual(of('retry').map((e) => e.delay), [250, 500, 1000]);
  assert.equal(client.stats.connects, 1);
});

test('hidden tab: coming back into view runs an overdue timer through the late-timer rule', () => {
  const listeners = {};
  const document = {
    hidden: true,
    addEventListener: (type, fn) => { listeners[type] = fn; },
    removeEventListener: (type) => { delete listeners[type]; },
  };
  const { clock, client, ws, of } = setup({ document });
  ws().open();
  clock.advance(1000); // ping 1
  clock.stall(60000); // hidden: the browser ran no timer for a minute
  document.hidden = false;
  listeners.visibilitychange();
  assert.equal(client.state, 'grace');
  assert.equal(of('dead').length, 0);
  ws().message('{"type":"pong"}');
  assert.equal(client.state, 'idle');
  client.close();
  assert.equal(listeners.visibilitychange, undefined);
});

test('options are validated with readable messages', () => {
  assert.throws(() => setup({ pingInterval: 0 }), /pingInterval must be a finite number/);
  assert.throws(() => setup({ liveness: 'bytes' }), /liveness must be 'any' or 'pong'/);
  assert.throws(() => new HeartbeatClient('', {}), /url must be/);
});
