'use strict';
// Runs the seed's JavaScript HeartbeatWebSocket client (seed-client.js, a verbatim copy of the
// class from the seed's code block; the block's two "Usage" lines, which dial example.com, are
// left out) in Node for heartbeat-core's interop tests. The seed code itself is not edited.
// This wrapper only:
//
//  1. provides `WebSocket` from the `ws` package (what a browser would provide);
//  2. connects to $SEED_URL with {pingInterval: $SEED_PING_INTERVAL_MS, pingTimeout:
//     $SEED_PING_TIMEOUT_MS} through the seed's own constructor options;
//  3. reports what happens as JSON lines on stdout: open, send (what the seed sent), message
//     (what it received), ping/pong (protocol frames from the server; ws answers pings
//     itself), close (code, reason) and error.
const fs = require('fs');
const path = require('path');
const WebSocket = require('ws');

function emit(fields) {
  process.stdout.write(JSON.stringify({ t: performance.now() / 1000, ...fields }) + '\n');
}

const seed = fs.readFileSync(path.join(__dirname, 'seed-client.js'), 'utf8');
const HeartbeatWebSocket = new Function('WebSocket', `${seed}\nreturn HeartbeatWebSocket;`)(
  WebSocket,
);

const url = process.env.SEED_URL;
if (!url) {
  throw new Error('set SEED_URL to the ws:// URL to connect to');
}
const options = {
  pingInterval: Number(process.env.SEED_PING_INTERVAL_MS || '30000'),
  pingTimeout: Number(process.env.SEED_PING_TIMEOUT_MS || '5000'),
};

const client = new HeartbeatWebSocket(url, options);
client.connect();

const socket = client.socket;
const send = socket.send.bind(socket);
socket.send = (data, ...rest) => {
  emit({ event: 'send', data: String(data) });
  return send(data, ...rest);
};
socket.addEventListener('open', () => emit({ event: 'open' }));
socket.addEventListener('message', (event) => emit({ event: 'message', data: String(event.data) }));
socket.addEventListener('close', (event) => {
  emit({ event: 'close', code: event.code, reason: event.reason });
});
socket.addEventListener('error', (event) => emit({ event: 'error', message: event.message }));
socket.on('ping', () => emit({ event: 'ping' }));
socket.on('pong', () => emit({ event: 'pong' }));

process.on('SIGTERM', () => process.exit(0));
