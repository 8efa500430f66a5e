// The dashboard page: a live table and RTT chart, fed by the server over /_dashboard.
// The feed itself is a HeartbeatClient (heartbeat-client.js): it pings every 2 s, shows
// its own round-trip time, finds a dead server and reconnects with backoff.
import { HeartbeatClient } from '/heartbeat-client.js';

const $ = (id) => document.getElementById(id);
const feed = $('feed');
const tbody = document.querySelector('#connections tbody');
const canvas = $('chart');

const view = {
  selfId: null,
  historyMs: 60000,
  rows: [],
  series: new Map(), // connection id -> [[local ms, rtt ms], ...]
  snapshots: 0,
  hellos: 0,
  server: null, // the server's heartbeat settings (from its hello)
};

const client = new HeartbeatClient('/_dashboard', {
  pingInterval: 2000,
  timeout: 5000,
  liveness: 'pong', // the feed talks all the time: ping anyway, to measure this page's RTT
  backoff: { initial: 250, maximum: 5000, resetAfter: 10000 },
});

function color(id) {
  return `hsl(${Math.round((id * 137.508) % 360)} 70% 45%)`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '\u2013';
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

function fmtAge(s) {
  if (s < 60) return `${s.toFixed(0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// [main text, detail line or '']
function stateText(row) {
  switch (row.state) {
    case 'idle': return ['open', ''];
    case 'awaiting': return ['awaiting pong', ''];
    case 'grace': return ['grace', 'we stalled'];
    case 'closing':
    case 'draining': return [row.dead ? 'dead' : 'closing', row.dead ? 'closing 1011' : ''];
    case 'closed': {
      const why = row.reason ? ` ${row.reason}` : '';
      return [row.dead ? 'dead' : 'closed', `${row.dead ? 'closed ' : ''}${row.code}${why}`];
    }
    default: return [row.state, ''];
  }
}

function cell(label, text, className, detail = '') {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.dataset.label = label; // shown before the value when rows become cards (phones)
  const value = document.createElement('span');
  value.textContent = text;
  if (detail) {
    const small = document.createElement('small');
    small.className = 'detail';
    small.textContent = detail;
    value.append(small);
  }
  td.append(value);
  return td;
}

const STYLES = { frames: 'ping frames', app: 'app messages' };
const PEER_STYLES = {
  frames: 'ping frames',
  app: 'app messages',
  both: 'ping frames and app messages',
};

// The peer's own heartbeats, as the server saw them (a peer that only answers ours: none).
function peerText(row) {
  if (row.peer_style === 'none') return 'peer: answers only';
  return `peer: ${PEER_STYLES[row.peer_style]}, peer pings: ${row.peer_pings}`;
}

// Why the chart is empty, when it is: RTT comes only from the server's own heartbeats.
function chartNote() {
  const s = view.server;
  if (!s) return 'Waiting for the server\u2019s first snapshot.';
  const idle = `The server measures RTT with its own heartbeats: it pings a connection idle for ${s.interval} s`;
  if (s.probe_interval) {
    return `No round trip measured yet. ${idle}, and every connection at least every ` +
      `${s.probe_interval} s (its probe), so each connection has a point here within ` +
      `${s.probe_interval} s of opening.`;
  }
  return `No round trip measured yet. ${idle}. A client that sends messages or pings of its ` +
    'own keeps its connection busy and is never pinged back, so it has no RTT here: start ' +
    'the server with --probe-interval (heartbeat serve) or set HeartbeatConfig.probe_interval.';
}

function renderTable() {
  const fragment = document.createDocumentFragment();
  for (const row of view.rows) {
    const tr = document.createElement('tr');
    tr.dataset.id = String(row.id);
    tr.dataset.peer = row.peer;
    tr.dataset.kind = row.kind;
    tr.dataset.state = row.state;
    tr.dataset.dead = String(row.dead);
    tr.dataset.self = String(row.id === view.selfId);
    tr.dataset.rtt = row.last_rtt_ms === null ? '' : String(row.last_rtt_ms);
    const peer = document.createElement('td');
    peer.className = 'peer';
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = color(row.id);
    const path = document.createElement('span');
    path.className = 'path';
    path.textContent = row.path;
    peer.append(swatch, row.peer, path);
    if (row.kind === 'dashboard') {
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = row.id === view.selfId ? 'this page' : 'dashboard';
      peer.append(tag);
    }
    tr.append(peer);
    tr.dataset.style = row.style;
    tr.dataset.peerStyle = row.peer_style;
    tr.append(cell('heartbeat', `ours: ${STYLES[row.style]}`, 'style', peerText(row)));
    tr.append(cell('last RTT', fmtMs(row.last_rtt_ms), 'num rtt'));
    tr.append(cell('smoothed', fmtMs(row.srtt_ms), 'num srtt'));
    const [state, detail] = stateText(row);
    tr.append(cell('state', state, 'state', detail));
    tr.append(cell('age', fmtAge(row.age_s), 'num age'));
    fragment.append(tr);
  }
  tbody.replaceChildren(fragment);
}

function drawChart() {
  const note = $('chart-note');
  const empty = ![...view.series.values()].some((points) => points.length);
  note.hidden = !empty;
  if (empty) note.textContent = chartNote();
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 800;
  const height = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const styles = getComputedStyle(document.documentElement);
  const muted = styles.getPropertyValue('--muted').trim() || '#888';
  const line = styles.getPropertyValue('--line').trim() || '#ddd';
  const now = performance.now();
  const left = 52;
  const right = 8;
  const top = 10;
  const bottom = 22;
  let max = 0;
  for (const points of view.series.values()) for (const [, rtt] of points) max = Math.max(max, rtt);
  const steps = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  const step = steps.find((s) => s * 4 >= max * 1.1) || steps[steps.length - 1];
  const yMax = step * 4;
  const x = (t) => left + (1 - (now - t) / view.historyMs) * (width - left - right);
  const y = (rtt) => top + (1 - Math.min(rtt, yMax) / yMax) * (height - top - bottom);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = muted;
  ctx.strokeStyle = line;
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i += 1) {
    const v = step * i;
    ctx.beginPath();
    ctx.moveTo(left, y(v) + 0.5);
    ctx.lineTo(width - right, y(v) + 0.5);
    ctx.stroke();
    ctx.textAlign = 'right';
    ctx.fillText(`${v} ms`, left - 6, y(v) + 4);
  }
  const span = view.historyMs / 1000;
  for (const ago of [span, span * 0.75, span / 2, span / 4, 0]) {
    ctx.textAlign = ago === 0 ? 'right' : ago === span ? 'left' : 'center';
    ctx.fillText(ago === 0 ? 'now' : `-${Math.round(ago)} s`, x(now - ago * 1000), height - 6);
  }
  for (const [id, points] of view.series) {
    if (!points.length) continue;
    ctx.strokeStyle = color(id);
    ctx.fillStyle = color(id);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach(([t, rtt], i) => (i ? ctx.lineTo(x(t), y(rtt)) : ctx.moveTo(x(t), y(rtt))));
    ctx.stroke();
    const [t, rtt] = points[points.length - 1];
    ctx.beginPath();
    ctx.arc(x(t), y(rtt), 2.5, 0, Math.PI * 2);
    ctx.fill();
  }
}

function onSnapshot(snap) {
  const received = performance.now();
  view.snapshots += 1;
  view.rows = snap.rows;
  for (const [ago, id, rtt] of snap.samples) {
    if (!view.series.has(id)) view.series.set(id, []);
    view.series.get(id).push([received + ago * 1000, rtt]);
  }
  const horizon = received - view.historyMs;
  for (const [id, points] of view.series) {
    while (points.length && points[0][0] < horizon) points.shift();
    if (!points.length) view.series.delete(id);
  }
  $('open-count').textContent = String(snap.open);
  $('awaiting-count').textContent = String(snap.awaiting);
  renderTable();
  drawChart();
}

function onHello(hello) {
  view.hellos += 1;
  view.selfId = hello.self;
  view.historyMs = hello.history * 1000;
  $('history').textContent = String(Math.round(hello.history));
  const s = hello.server;
  view.server = s;
  const style = s.style === 'protocol' ? 'ping frames' : 'app messages';
  const probe = s.probe_interval ? `, probe ${s.probe_interval} s` : '';
  $('server-config').textContent = `${style}, ${s.interval} s / ${s.timeout} s${probe}`;
}

client.on('message', ({ data }) => {
  let message;
  try {
    message = JSON.parse(data);
  } catch (_) {
    return;
  }
  if (message.type === 'snapshot') onSnapshot(message);
  else if (message.type === 'hello') onHello(message);
});
client.on('rtt', ({ rtt }) => {
  $('self-rtt').textContent = fmtMs(rtt);
});
client.on('statechange', ({ state }) => {
  if (client.isOpen) {
    feed.dataset.state = 'live';
    feed.textContent = 'live';
  } else if (state === 'waiting' || state === 'connecting') {
    feed.dataset.state = state;
    feed.textContent = state === 'connecting' ? 'connecting\u2026' : 'server unreachable: retrying';
  } else {
    feed.dataset.state = state;
    feed.textContent = state;
  }
});
client.on('retry', ({ delay, attempt }) => {
  feed.textContent = `server unreachable: retry ${attempt} in ${(delay / 1000).toFixed(1)} s`;
});
client.on('dead', () => {
  feed.textContent = 'server not answering';
});

window.addEventListener('resize', drawChart);
window.heartbeatDashboard = { client, view };
client.connect();
