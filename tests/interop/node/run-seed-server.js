'use strict';
// Runs the seed's Node `ws` server (seed-server.js, a verbatim copy of the seed's code block)
// for heartbeat-core's interop tests. The seed code itself is not edited. This wrapper only:
//
//  1. substitutes two literals in its text: the port `8080` becomes $SEED_PORT (default 0 =
//     any free port, reported on stdout) and the sweep period `30000` becomes $SEED_SWEEP_MS;
//  2. hands it a `require('ws')` whose Server (a subclass of ws's) reports what happens as
//     JSON lines on stdout: listening (with the port), connection, ping (one per client per
//     sweep), pong, terminate (the sweep found a client not alive), close (code, reason).
const fs = require('fs');
const path = require('path');
const WebSocket = require('ws');

const port = process.env.SEED_PORT || '0';
const sweepMs = process.env.SEED_SWEEP_MS || '30000';

function emit(fields) {
  process.stdout.write(JSON.stringify({ t: performance.now() / 1000, ...fields }) + '\n');
}

function substituteOnce(text, literal, value) {
  const parts = text.split(literal);
  if (parts.length !== 2) {
    throw new Error(`expected the literal ${literal} exactly once in seed-server.js`);
  }
  return parts.join(value);
}

let seed = fs.readFileSync(path.join(__dirname, 'seed-server.js'), 'utf8');
seed = substituteOnce(seed, '8080', String(Number(port)));
seed = substituteOnce(seed, '30000', String(Number(sweepMs)));

let nextId = 0;

class ObservedSocket extends WebSocket {
  ping(...args) {
    emit({ event: 'ping', id: this.observedId });
    return super.ping(...args);
  }

  terminate() {
    emit({ event: 'terminate', id: this.observedId });
    return super.terminate();
  }
}

class ObservedServer extends WebSocket.Server {
  constructor(options, callback) {
    super({ ...options, WebSocket: ObservedSocket }, callback);
    this.on('listening', () => emit({ event: 'listening', port: this.address().port }));
    this.on('connection', (ws) => {
      ws.observedId = ++nextId;
      emit({ event: 'connection', id: ws.observedId });
      ws.on('pong', () => emit({ event: 'pong', id: ws.observedId }));
      ws.on('close', (code, reason) => {
        emit({ event: 'close', id: ws.observedId, code, reason: reason.toString() });
      });
    });
  }
}

const observedWs = class extends WebSocket {};
observedWs.Server = ObservedServer;
observedWs.WebSocketServer = ObservedServer;

function seedRequire(name) {
  return name === 'ws' ? observedWs : require(name);
}

process.on('SIGTERM', () => process.exit(0));
new Function('require', seed)(seedRequire);
