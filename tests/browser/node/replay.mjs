// Replays scenarios (JSON on stdin) through heartbeat-client.js under a fake clock and
// prints what the client did (JSON on stdout), for test_client_vs_core.py to compare with
// heartbeat-core's HeartbeatState fed the same scenarios. Times in milliseconds.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const { HeartbeatClient } = await import(
  path.join(here, '../../../adapters/heartbeat_cli/static/heartbeat-client.js')
);

function replay({ options, steps }) {
  let now = 0;
  const timers = new Map();
  let nextId = 1;
  const setTimer = (fn, ms) => {
    timers.set(nextId, { at: now + ms, fn });
    return nextId++;
  };
  const runDue = (end) => {
    for (;;) {
      let next = null;
      for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
      if (!next) break;
      timers.delete(next[0]);
      now = Math.max(now, next[1].at);
      next[1].fn();
    }
    now = Math.max(now, end);
  };
  let socket = null;
  class FakeSocket {
    constructor() { socket = this; }
    send(data) { if (data === '{"type":"pong"}') trace.push(['pong-sent', now]); }
    close() {}
  }
  const trace = [];
  const client = new HeartbeatClient('ws://replay.test/', {
    ...options,
    WebSocket: FakeSocket,
    now: () => now,
    setTimeout: setTimer,
    clearTimeout: (id) => timers.delete(id),
    document: null,
    reconnect: false,
  });
  client.on('ping', () => trace.push(['ping', now]));
  client.on('rtt', ({ rtt }) => trace.push(['rtt', now, rtt]));
  client.on('stall', () => trace.push(['stall', now]));
  client.on('dead', ({ waited }) => trace.push(['dead', now, waited]));
  client.connect();
  socket.onopen({});
  const texts = { pong: '{"type":"pong"}', ping: '{"type":"ping"}', other: '{"type":"chat"}' };
  for (const [kind, value] of steps) {
    if (client.state === 'stopped') break;
    if (kind === 'advance') runDue(now + value);
    else if (kind === 'stall') {
      now += value; // no timer ran meanwhile
      runDue(now);
    } else if (socket.onmessage) socket.onmessage({ data: texts[value] });
  }
  return trace;
}

const scenarios = JSON.parse(readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(scenarios.map(replay)));
