'use strict';
/**
 * `npm run bench`: fan-out benchmark of our app against a naive raw-ws broadcast server (issue 6).
 *
 * Starts, in one run, each server as a child process — our app on the in-memory layer, our app as
 * two processes on Redis (and on a Redis Cluster) with the clients split over both, the Nest
 * Socket.IO gateway users pick instead (bench/socketio-server/main.mjs; alone, and as two
 * processes on @socket.io/redis-adapter), and bench/baseline-server.js — and drives the same
 * workloads at each from load-generator worker processes (bench/loadgen.js).
 * Prints, per workload and server: delivered messages/s, server CPU-seconds per 1000 deliveries,
 * latency p50/p99 over every receiver, server RSS per connection, connections/s, the harness's own
 * CPU, losses/duplicates/order violations; then our figures as ratios to the baseline's.
 * Exits non-zero if any message was lost, duplicated or reordered.
 *
 * Flags:
 *   --quick            CI smoke: 100 clients × 1 sender for a few seconds per server + idle sample,
 *                      on app-memory, app-redis and baseline only (no cluster, no Socket.IO)
 *   --only=a,b         workloads whose name contains one of these
 *   --servers=a,b      subset of (default: all; --quick: app-memory, app-redis, baseline):
 *                        app-memory      our app, CHANNEL_LAYER=memory, one process
 *                        app-redis       our app, 2 processes on a private redis-server
 *                        app-cluster     our app, 2 processes on a private 3-primary Redis Cluster
 *                                        (redis-server --cluster-enabled, redis-cli --cluster
 *                                        create), REDIS_URL=redis+cluster://…
 *                        socketio        bench/socketio-server/main.mjs: a Nest gateway on
 *                                        @nestjs/platform-socket.io, one process
 *                        socketio-redis  the same, 2 processes on @socket.io/redis-adapter (ioredis)
 *                                        on the private redis-server of app-redis
 *                        baseline        bench/baseline-server.js, the raw-ws broadcast loop
 *                      The Socket.IO servers are driven by socket.io-client, websocket transport
 *                      only, with the same text, checks and timings as the raw-ws clients
 *   --workers=N        load-generator processes (default: max(2, nproc))
 *   --duration=S       measured seconds per messaging workload (default 5; quick 3)
 *   --repeat=N         N rounds per workload (default 1), each server once per round in an order
 *                      rotated by round; the table shows medians over the rounds (loss/dup/order
 *                      summed) and the ratios are medians of per-round app/baseline pairs
 *   --profile          also run app-memory and baseline under `node --cpu-prof` on one fan-out
 *                      workload and summarize the profiles (bench/profile-summary.js)
 *   --profile-workload=NAME  profile this workload of the full set instead (e.g. 100c×10s)
 *   --redis-url=URL    use this Redis instead of a private redis-server started for the run
 *                      (app-redis, socketio-redis; app-cluster always starts its own cluster)
 *   --app=PATH         the app's main.js (default dist/main.js of this checkout)
 *   --app-env=K=V,...  extra environment for the app processes
 *   --warmup=N         handshakes each server takes before a row is measured (default 3000)
 *   --handshakes[=N]   instead of the workloads: N bursts (default 8) of 1000 handshakes on each
 *                      fresh server (app-memory and baseline unless --servers; any of the
 *                      servers above may be named), opened then
 *                      closed, with the server's CPU per handshake and conn/s of each burst: how
 *                      far from steady state a warm-up of K handshakes leaves a server
 * Output: the table on stdout; JSON (every round's row) and Markdown copies under bench/out/.
 */
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { WebSocket } = require('ws');
const { io } = require('socket.io-client');
const { Histogram } = require('./lib/histogram');
const {
  machineBusySeconds,
  sumCpu,
  sumRss,
  freePort,
  spawnWithFdLimit,
  sleep,
  sumCpuNanos,
} = require('./lib/proc');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(__dirname, 'out');
const WS_PATH = '/ws/socket-server/';

// ---------------------------------------------------------------------------------------------
// Options and workloads

const argv = process.argv.slice(2);
const flag = (/** @type {string} */ name) => argv.includes(`--${name}`);
const opt = (/** @type {string} */ name) =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

const QUICK = flag('quick');
const PROFILE = flag('profile') || opt('profile-workload') !== undefined;
const WORKERS = Number(opt('workers') ?? Math.max(2, os.cpus().length));
const DURATION_S = Number(opt('duration') ?? (QUICK ? 3 : 5));
const WARMUP_S = QUICK ? 1 : 2;
const REPEAT = Number(opt('repeat') ?? 1);
if (!Number.isInteger(REPEAT) || REPEAT < 1)
  throw new Error('--repeat=N: N must be an integer ≥ 1');
const ONLY = opt('only')?.split(',');
/** The app's entry point: this checkout's build unless --app names another. */
const APP_MAIN = path.resolve(opt('app') ?? path.join(ROOT, 'dist', 'main.js'));
/** Extra environment for the app, e.g. to lift a rate limit: --app-env=K=V,K2=V2 */
const APP_ENV = Object.fromEntries(
  (opt('app-env')?.split(',') ?? []).map((kv) => [
    kv.slice(0, kv.indexOf('=')),
    kv.slice(kv.indexOf('=') + 1),
  ]),
);
const HANDSHAKE_BURSTS = flag('handshakes') ? 8 : Number(opt('handshakes') ?? 0);
if (
  !Number.isInteger(HANDSHAKE_BURSTS) ||
  (opt('handshakes') !== undefined && HANDSHAKE_BURSTS < 1)
)
  throw new Error('--handshakes=N: N must be an integer ≥ 1');
const ALL_SERVERS = [
  'app-memory',
  'app-redis',
  'app-cluster',
  'socketio',
  'socketio-redis',
  'baseline',
];
const SERVERS =
  opt('servers')?.split(',') ??
  (HANDSHAKE_BURSTS
    ? ['app-memory', 'baseline']
    : QUICK
      ? ['app-memory', 'app-redis', 'baseline']
      : ALL_SERVERS);
for (const s of SERVERS)
  if (!ALL_SERVERS.includes(s))
    throw new Error(`--servers: unknown server ${s}; one of ${ALL_SERVERS.join(', ')}`);
/** Servers whose processes share a Redis (they need it to start, and their store's CPU counts). */
const ON_REDIS = new Set(['app-redis', 'socketio-redis']);
/** Servers of several processes, clients split over them (a message must cross processes). */
const MULTI_PROCESS = new Set(['app-redis', 'app-cluster', 'socketio-redis']);
/** Servers driven by socket.io-client instead of raw ws. */
const SOCKET_IO = new Set(['socketio', 'socketio-redis']);
/**
 * Handshakes (connected, then closed, in batches of at most the row's clients and 1000) each
 * server takes before anything is measured: a fresh process runs its first ones cold (JIT, lazily
 * built paths), so conn/s and KiB/conn would measure its start-up, not its steady state. Both
 * servers' CPU per handshake still falls by half over their first 3000 (TurboFan compiles on the
 * handshake path until then): 200, the earlier figure, measured mostly compilation. The first
 * batch's rate is kept as `cold conn/s`.
 */
const WARMUP_HANDSHAKES = Number(opt('warmup') ?? 3000);
if (!Number.isInteger(WARMUP_HANDSHAKES) || WARMUP_HANDSHAKES < 0)
  throw new Error('--warmup=N: N must be an integer ≥ 0');
const WARMUP_BATCH = 1000;
/** How long receivers may take to get every message after the senders stop. */
const DRAIN_TIMEOUT_MS = 15000;
/**
 * Source addresses for client sockets. Each closed client leaves its port in TIME_WAIT for 60 s,
 * and a bound socket's port search slows to a crawl once about half an address's range is taken:
 * with 4 addresses, connects fell from ~8,000/s to ~600/s after 45,000 handshakes in a minute,
 * which a full run reaches. 32 keep each address's share a few percent.
 */
const LOCAL_ADDRESSES = Array.from({ length: 32 }, (_, i) => `127.0.0.${i + 1}`);

/**
 * @typedef {object} Workload
 * @property {string} name
 * @property {number} clients
 * @property {number} senders
 * @property {number} rooms  1 = everyone in the seed's group (no ?room)
 * @property {boolean} [idle] connect, measure memory and connections/s, send nothing
 * @property {number} [rate] open loop: messages/s per sender (else closed loop)
 */

/** @type {Workload[]} */
const FULL = [
  { name: '100c×1s', clients: 100, senders: 1, rooms: 1 },
  { name: '100c×10s', clients: 100, senders: 10, rooms: 1 },
  { name: '1000c×1s', clients: 1000, senders: 1, rooms: 1 },
  { name: '1000c×10s', clients: 1000, senders: 10, rooms: 1 },
  { name: '5000c×1s', clients: 5000, senders: 1, rooms: 1 },
  { name: '5000c×10s', clients: 5000, senders: 10, rooms: 1 },
  { name: '10rooms×100c', clients: 1000, senders: 10, rooms: 10 },
  { name: 'open 1000c 2×10/s', clients: 1000, senders: 2, rooms: 1, rate: 10 },
  { name: 'idle 10000c', clients: 10000, senders: 0, rooms: 1, idle: true },
];
/** @type {Workload[]} */
const QUICK_SET = [
  { name: '100c×1s', clients: 100, senders: 1, rooms: 1 },
  { name: 'idle 1000c', clients: 1000, senders: 0, rooms: 1, idle: true },
];
/** The fan-out workload profiled with --profile. */
const PROFILE_WORKLOAD = ((named) => {
  const w = FULL.find((x) => x.name === named && !x.idle);
  if (named && !w) throw new Error(`--profile-workload=${named}: no such messaging workload`);
  return w
    ? { ...w, name: `profile ${w.name}` }
    : { name: 'profile 1000c×1s', clients: 1000, senders: 1, rooms: 1 };
})(opt('profile-workload'));

const workloads = (QUICK ? QUICK_SET : FULL).filter(
  (w) => !ONLY || ONLY.some((o) => w.name.includes(o)),
);

// ---------------------------------------------------------------------------------------------
// Load-generator workers

/**
 * @typedef {object} Worker
 * @property {import('node:child_process').ChildProcess} proc
 * @property {(cmd: string, args?: object) => Promise<any>} call
 * @property {(sid: number, seq: number, phase: number) => void} onAck set by the closed loop's relay
 */

/** @returns {Worker} */
function startWorker() {
  const proc = spawnWithFdLimit(process.execPath, [path.join(__dirname, 'loadgen.js')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  /** @type {Map<number, { resolve: (v: any) => void, reject: (e: Error) => void }>} */
  const pending = new Map();
  /** @type {Worker} */
  const worker = {
    proc,
    onAck: () => {},
    call: (cmd, args = {}) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        proc.send({ id, cmd, args });
      }),
  };
  proc.on('message', (/** @type {any} */ msg) => {
    if (msg.ev === 'ack') return worker.onAck(msg.sid, msg.s, msg.phase);
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(msg.error));
  });
  proc.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error(`load generator exited with ${code}`));
    pending.clear();
  });
  return worker;
}

/**
 * Closed loop relay: when every worker with receivers in a sender's room has acked its message,
 * tells the sender's worker to send the next one.
 * @param {Worker[]} workers @param {{ sids: number[], roomSize: Record<string, number> }[]} setups
 * @param {number[]} roomsOfSenders
 */
function relayAcks(workers, setups, roomsOfSenders) {
  const host = new Map();
  setups.forEach((s, i) => s.sids.forEach((sid) => host.set(sid, workers[i])));
  const needed = roomsOfSenders.map(
    (room) => setups.filter((s) => (s.roomSize[room] ?? 0) > 0).length,
  );
  const ackSeq = new Array(roomsOfSenders.length).fill(0);
  const acks = new Array(roomsOfSenders.length).fill(0);
  for (const w of workers) {
    w.onAck = (sid, seq, phase) => {
      if (seq !== ackSeq[sid]) {
        ackSeq[sid] = seq;
        acks[sid] = 0;
      }
      if (++acks[sid] === needed[sid])
        host.get(sid)?.proc.send({ cmd: 'next', args: { sid, phase } });
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Servers under test

/**
 * @typedef {object} Server
 * @property {string} kind
 * @property {number[]} pids
 * @property {string[]} urls one per process; clients are spread over them
 * @property {'ws' | 'io'} protocol raw ws (seed frames) or Socket.IO
 * @property {() => Promise<void>} stop
 */

/**
 * Starts one server process and waits until a client gets the greeting.
 * @param {string[]} args node arguments @param {NodeJS.ProcessEnv} env @param {number} port
 * @param {'ws' | 'io'} [protocol]
 */
async function startProcess(args, env, port, protocol = 'ws') {
  const child = spawnWithFdLimit(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (/** @type {Buffer} */ d) => {
    log = (log + d).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  /** @type {number | null} */
  let exitCode = null;
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      exitCode = code ?? -1;
      resolve(signal ?? code);
    }),
  );
  const url = protocol === 'io' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}${WS_PATH}`;
  const deadline = Date.now() + 20000;
  for (;;) {
    if (exitCode !== null) throw new Error(`exited with ${exitCode} at startup: ${lastLines(log)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`no greeting within 20 s: ${lastLines(log)}`);
    }
    try {
      const ws = await open(url, protocol);
      ws.close();
      break;
    } catch {
      await sleep(100);
    }
  }
  return {
    pid: /** @type {number} */ (child.pid),
    url,
    stop: async () => {
      if (exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * @typedef {object} Ctx
 * @property {string} [redisUrl] the private redis-server (app-redis, socketio-redis)
 * @property {number} [redisPid] its pid, if started for the run
 * @property {string} [clusterUrl] the private Redis Cluster's redis+cluster:// URL (app-cluster)
 * @property {number[]} [clusterPids] its nodes' pids
 * @property {string} [clusterError] why the cluster did not start
 * @property {string} [cpuProf] directory for --cpu-prof
 */

/**
 * @param {string} kind @param {Ctx} ctx
 * @returns {Promise<Server>}
 */
async function startServer(kind, ctx) {
  const prof = ctx.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${ctx.cpuProf}`] : [];
  /** @type {{ pid: number, url: string, stop: () => Promise<void> }[]} */
  let procs;
  const protocol = SOCKET_IO.has(kind) ? 'io' : 'ws';
  if (kind === 'app-cluster' && !ctx.clusterUrl)
    throw new Error(`no Redis Cluster: ${ctx.clusterError ?? 'not started'}`);
  if (kind === 'baseline') {
    const port = await freePort();
    procs = [
      await startProcess(
        [...prof, path.join(__dirname, 'baseline-server.js'), String(port)],
        {},
        port,
      ),
    ];
  } else if (protocol === 'io') {
    const n = kind === 'socketio-redis' ? 2 : 1;
    procs = [];
    try {
      for (let i = 0; i < n; i++) {
        const port = await freePort();
        const env = {
          PORT: String(port),
          HOST: '127.0.0.1',
          ...(kind === 'socketio-redis' ? { REDIS_URL: ctx.redisUrl } : {}),
        };
        const main = path.join(__dirname, 'socketio-server', 'main.mjs');
        procs.push(await startProcess([...prof, main], env, port, 'io'));
      }
    } catch (error) {
      await Promise.all(procs.map((p) => p.stop()));
      throw error;
    }
  } else {
    if (!fs.existsSync(APP_MAIN)) throw new Error(`${APP_MAIN} missing: run \`npm run build\``);
    const n = MULTI_PROCESS.has(kind) ? 2 : 1;
    procs = [];
    try {
      for (let i = 0; i < n; i++) {
        const port = await freePort();
        const env = {
          PORT: String(port),
          HOST: '127.0.0.1',
          LOG_LEVEL: 'warn',
          // The bench measures fan-out, not the per-socket rate limit (issue 7): lift it. Its
          // crowds come from 32 loopback addresses, so the per-address caps and handshake budget
          // (issue 15) are set past what it makes: they keep counting, and never refuse.
          RATE_LIMIT_PER_SECOND: '0',
          MAX_CONNECTIONS: '15000',
          MAX_CONNECTIONS_PER_ADDRESS: '1000000',
          HANDSHAKES_PER_SECOND: '1000000',
          HANDSHAKE_BURST: '1000000',
          CHANNEL_LAYER: kind === 'app-memory' ? 'memory' : 'redis',
          ...(kind === 'app-redis' ? { REDIS_URL: ctx.redisUrl } : {}),
          ...(kind === 'app-cluster' ? { REDIS_URL: ctx.clusterUrl } : {}),
          ...APP_ENV,
        };
        procs.push(await startProcess([...prof, APP_MAIN], env, port));
      }
    } catch (error) {
      await Promise.all(procs.map((p) => p.stop()));
      throw error;
    }
  }
  return {
    kind,
    pids: procs.map((p) => p.pid),
    urls: procs.map((p) => p.url),
    protocol,
    stop: async () => {
      await Promise.all(procs.map((p) => p.stop()));
    },
  };
}

/**
 * A Socket.IO client dressed as a raw ws one for the probes: its `connection_established` and
 * `chat` events come out as the seed's JSON frames on `message`, and `send` of a seed frame emits
 * `message` with its object. `?room=` in the URL becomes the handshake's query.
 * @param {string} url
 */
function ioAsWs(url) {
  const u = new URL(url);
  const socket = io(u.origin, {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    query: Object.fromEntries(u.searchParams),
  });
  const ws = Object.assign(new EventEmitter(), {
    send: (/** @type {string} */ text) => socket.emit('message', JSON.parse(text)),
    close: () => socket.disconnect(),
    terminate: () => socket.disconnect(),
  });
  for (const type of ['connection_established', 'chat'])
    socket.on(type, (p) => ws.emit('message', JSON.stringify({ type, ...p })));
  socket.on('connect_error', (e) => ws.listenerCount('error') && ws.emit('error', e));
  return ws;
}

/**
 * Opens a socket and resolves with it once the greeting came.
 * @param {string} url @param {'ws' | 'io'} [protocol]
 */
function open(url, protocol = 'ws', timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const ws =
      protocol === 'io'
        ? /** @type {any} */ (ioAsWs(url))
        : new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => (ws.terminate(), reject(new Error('no greeting'))), timeoutMs);
    ws.once('error', (e) => (clearTimeout(timer), reject(e)));
    /** Every frame, kept: a probe may look for one that came right after the greeting. */
    const frames = /** @type {any[]} */ ([]);
    ws.on('message', (data) => {
      frames.push(JSON.parse(String(data)));
      if (frames.length > 1) return;
      clearTimeout(timer);
      Object.assign(ws, { greeting: frames[0], frames });
      resolve(/** @type {WebSocket & { greeting: any, frames: any[] }} */ (ws));
    });
  });
}

/**
 * The room a socket was put in: named by the greeting (the baseline) or by the history frame that
 * follows it (our app keeps the seed's greeting). @returns {Promise<string | undefined>}
 */
async function roomOf(/** @type {any} */ ws, ms = 1000) {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(10)) {
    const named = ws.frames.find((/** @type {any} */ f) => typeof f.room === 'string');
    if (named) return named.room;
  }
  return undefined;
}

/** Resolves with the first chat frame `ws` receives, or null after `ms`. @param {WebSocket} ws */
function nextChat(ws, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => (ws.off('message', on), resolve(null)), ms);
    const on = (/** @type {Buffer} */ data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'chat') return;
      clearTimeout(timer);
      ws.off('message', on);
      resolve(frame);
    };
    ws.on('message', on);
  });
}

/**
 * Does the server keep rooms apart? Detected, not assumed: the greeting (or the history frame
 * after it) must name the room, and a message in one room must not reach the other.
 * @returns {Promise<string | null>} why not, or null
 */
async function probeRooms(/** @type {Server} */ server) {
  const a = /** @type {any} */ (
    await open(`${server.urls[0]}?room=bench-probe-a`, server.protocol)
  );
  const b = /** @type {any} */ (
    await open(`${server.urls[0]}?room=bench-probe-b`, server.protocol)
  );
  try {
    if ((await roomOf(a)) !== 'bench-probe-a')
      return 'neither the greeting nor a history frame names the room: rooms not supported yet';
    const heardB = nextChat(b, 500);
    const heardA = nextChat(a, 2000);
    a.send(JSON.stringify({ message: 'probe' }));
    if (!(await heardA)) return 'sender did not hear its own message in a room';
    if (await heardB) return 'a message reached another room: rooms not isolated';
    return null;
  } finally {
    a.close();
    b.close();
  }
}

/** Does a message sent on one process reach a client of the other? @returns {Promise<string | null>} */
async function probeCrossProcess(/** @type {Server} */ server) {
  const a = await open(server.urls[0], server.protocol);
  const b = await open(server.urls[1], server.protocol);
  try {
    const heard = nextChat(b, 3000);
    a.send(JSON.stringify({ message: 'probe' }));
    return (await heard)
      ? null
      : 'messages do not cross processes (the Redis layer or adapter not in effect?)';
  } finally {
    a.close();
    b.close();
  }
}

// ---------------------------------------------------------------------------------------------
// One workload on one server

/**
 * Picks, for sender `sid`, a client in room `sid % rooms` on process `sid % urls`, spreading the
 * senders over the clients (and so over the workers). @returns {number[]} client index per sender
 */
function assignSenders(/** @type {Workload} */ w, /** @type {number} */ nUrls) {
  const taken = new Set();
  const out = [];
  for (let sid = 0; sid < w.senders; sid++) {
    const room = sid % w.rooms;
    const url = sid % nUrls;
    let g = Math.floor((sid * w.clients) / w.senders);
    let tries = 0;
    while (taken.has(g) || g % w.rooms !== room || (tries < w.clients && g % nUrls !== url)) {
      g = (g + 1) % w.clients;
      if (++tries > 2 * w.clients) throw new Error(`cannot place sender ${sid}`);
    }
    taken.add(g);
    out.push(g);
  }
  return out;
}

/**
 * @param {Worker[]} workers @param {Server} server @param {Workload} w
 * @param {{ durationS: number, record: boolean, roomsOfSenders: number[] }} p
 */
async function phase(workers, server, w, p) {
  const harnessPids = [process.pid, ...workers.map((x) => /** @type {number} */ (x.proc.pid))];
  const cpu0 = sumCpu(server.pids);
  const h0 = sumCpu(harnessPids);
  const busy0 = machineBusySeconds();
  const t0 = process.hrtime.bigint();
  await Promise.all(
    workers.map((x) =>
      x.call('start', { openLoop: w.rate !== undefined, ratePerSender: w.rate, record: p.record }),
    ),
  );
  await Promise.all(workers.map((x) => x.call('go')));
  await sleep(p.durationS * 1000);
  const stops = await Promise.all(workers.map((x) => x.call('stop')));
  const sent = new Array(w.senders).fill(0);
  const lastSeq = new Array(w.senders).fill(0);
  for (const s of stops) {
    for (const [sid, n] of Object.entries(s.sent)) sent[Number(sid)] += n;
    for (const [sid, n] of Object.entries(s.last)) lastSeq[Number(sid)] = n;
  }
  const drains = await Promise.all(
    workers.map((x) => x.call('drain', { sent, lastSeq, timeoutMs: DRAIN_TIMEOUT_MS })),
  );
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = sumCpu(server.pids) - cpu0;
  const harnessCpu = sumCpu(harnessPids) - h0;
  // Everything else the box did meanwhile (other sessions, Redis, kernel threads): if this is
  // large, the run competed for the CPU and its figures are not clean.
  const otherCpu = Math.max(0, machineBusySeconds() - busy0 - cpu - harnessCpu);
  const hist = new Histogram();
  const total = { got: 0, dups: 0, disorder: 0, losses: 0, stray: 0, gaps: 0, expected: 0 };
  const short = drains.flatMap((d) => d.short);
  /** @type {Record<string, number>} */
  const refused = {};
  for (const d of drains)
    for (const [k, n] of Object.entries(d.refused)) refused[k] = (refused[k] ?? 0) + n;
  for (const d of drains) {
    hist.add(d.hist);
    for (const k of /** @type {(keyof typeof total)[]} */ (Object.keys(total))) total[k] += d[k];
  }
  return {
    wall,
    cpu,
    harnessCpu,
    otherCpu,
    hist,
    short,
    refused,
    sent: sent.reduce((a, b) => a + b, 0),
    ...total,
  };
}

/** Servers that failed to start once in this run, and why. @type {Map<string, string>} */
const cannotStart = new Map();

/**
 * @param {Worker[]} workers @param {string} kind @param {Workload} w
 * @param {Ctx} ctx
 */
/**
 * Opens `count` of the workload's clients, split over the workers.
 * @param {Worker[]} workers @param {Server} server @param {Workload} w @param {number} count
 */
function connectAll(workers, server, w, count) {
  const per = Math.ceil(count / workers.length);
  return Promise.all(
    workers.map((x, i) =>
      x.call('connect', {
        urls: server.urls,
        first: i * per,
        count: Math.max(0, Math.min(per, count - i * per)),
        rooms: w.rooms,
        roomParam: w.rooms > 1,
        concurrency: 64,
        localAddresses: LOCAL_ADDRESSES,
        protocol: server.protocol,
      }),
    ),
  );
}

async function runOne(workers, kind, w, ctx) {
  /** @type {Record<string, any>} */
  const row = { workload: w.name, server: kind, clients: w.clients };
  /** @type {Server | undefined} */
  let server;
  if (cannotStart.has(kind)) return { ...row, na: cannotStart.get(kind) };
  try {
    server = await startServer(kind, ctx);
  } catch (error) {
    const why = `does not start: ${error instanceof Error ? error.message : error}`;
    cannotStart.set(kind, why); // once is enough: the next workloads would fail the same way
    return { ...row, na: why };
  }
  try {
    if (server.urls.length > 1) {
      const why = await probeCrossProcess(server);
      if (why) return { ...row, na: why };
    }
    if (w.rooms > 1) {
      const why = await probeRooms(server);
      if (why) return { ...row, na: why };
    }
    const batch = Math.min(w.clients, WARMUP_BATCH);
    for (let done = 0; done < WARMUP_HANDSHAKES; done += batch) {
      const t = process.hrtime.bigint();
      await connectAll(workers, server, w, batch);
      row.coldConnPerS ??= batch / (Number(process.hrtime.bigint() - t) / 1e9);
      await Promise.all(workers.map((x) => x.call('close')));
    }
    await sleep(500);
    const rss0 = sumRss(server.pids);
    const t0 = process.hrtime.bigint();
    const conns = await connectAll(workers, server, w, w.clients);
    const connectS = Number(process.hrtime.bigint() - t0) / 1e9;
    const failures = conns.reduce((a, c) => a + c.failures, 0);
    if (failures > 0) {
      const errors = conns
        .flatMap((c) => c.errors)
        .slice(0, 3)
        .join('; ');
      row.error = `${failures} of ${w.clients} connections failed: ${errors}`;
    }
    await sleep(1000);
    const rss1 = sumRss(server.pids);
    Object.assign(row, {
      connPerS: (w.clients - failures) / connectS,
      kibPerConn: (rss1 - rss0) / w.clients,
      rssMiB: rss1 / 1024,
    });
    if (w.idle || row.error) return row;

    const assign = assignSenders(w, server.urls.length);
    const roomsOfSenders = assign.map((g) => g % w.rooms);
    const setups = await Promise.all(
      workers.map((x) => x.call('setup', { assign, roomsOfSenders })),
    );
    relayAcks(workers, setups, roomsOfSenders);
    await phase(workers, server, w, { durationS: WARMUP_S, record: false, roomsOfSenders });
    // The Redis behind the server (its one redis-server, or the cluster's nodes), counted apart.
    const storePids =
      kind === 'app-cluster'
        ? (ctx.clusterPids ?? [])
        : ctx.redisPid && ON_REDIS.has(kind)
          ? [ctx.redisPid]
          : [];
    const redisCpu0 = sumCpu(storePids);
    const r = await phase(workers, server, w, {
      durationS: DURATION_S,
      record: true,
      roomsOfSenders,
    });
    const redisCpu = sumCpu(storePids) - redisCpu0;
    Object.assign(row, {
      sent: r.sent,
      delivered: r.got,
      msgPerS: r.got / r.wall,
      cpuPer1k: r.got ? (r.cpu / r.got) * 1000 : NaN,
      redisCpuPer1k: redisCpu && r.got ? (redisCpu / r.got) * 1000 : undefined,
      serverCores: r.cpu / r.wall,
      harnessCores: r.harnessCpu / r.wall,
      otherCores: r.otherCpu / r.wall,
      p50ms: r.hist.quantile(0.5) / 1000,
      p99ms: r.hist.quantile(0.99) / 1000,
      losses: r.losses,
      dups: r.dups,
      disorder: r.disorder,
      stray: r.stray,
      gaps: r.gaps,
      wallS: r.wall,
      ...(r.losses ? { missing: r.short } : {}),
    });
    if (Object.keys(r.refused).length) {
      const codes = Object.entries(r.refused)
        .map(([k, n]) => `${n}× ${k}`)
        .join(', ');
      row.error = `server refused frames (${codes}); lift the limit with --app-env`;
    }
    return row;
  } catch (error) {
    return { ...row, error: String(error instanceof Error ? error.message : error) };
  } finally {
    await Promise.all(workers.map((x) => x.call('close').catch(() => {})));
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Redis

/** A private redis-server for the run (isolated from anyone's tests), or the given URL. */
async function startRedis() {
  const given = opt('redis-url');
  if (given) return { url: given, stop: async () => {} };
  let bin;
  try {
    bin = execFileSync('bash', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    bin = '';
  }
  if (!bin) return { url: 'redis://127.0.0.1:6379', stop: async () => {} };
  const port = await freePort();
  const child = spawn(
    bin,
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 50; i++) {
    try {
      if (
        execFileSync('redis-cli', ['-p', String(port), 'ping'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }).includes('PONG')
      )
        break;
    } catch {
      /* not up yet */
    }
    await sleep(100);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** Runs redis-cli with `args`; its stdout, or '' if it failed. @param {string[]} args */
function redisCli(args) {
  try {
    return execFileSync('redis-cli', args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 20000,
    });
  } catch {
    return '';
  }
}

/**
 * A private Redis Cluster for app-cluster: 3 primaries, no replicas (the bench kills no node), on
 * free ports with their bus ports chosen too (`--cluster-port`, so none lands past 65535), config
 * files in a temporary directory; `redis-cli --cluster create`, then every node must report
 * cluster_state:ok. Stopped, and the directory removed, at the end of the run.
 */
async function startCluster() {
  let bin;
  try {
    bin = execFileSync('bash', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    bin = '';
  }
  if (!bin) throw new Error('redis-server not installed');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-cluster-'));
  /** @type {import('node:child_process').ChildProcess[]} */
  const nodes = [];
  const stop = async () => {
    await Promise.all(
      nodes.map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined);
            child.once('exit', resolve);
            child.kill('SIGTERM');
          }),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  };
  // Should the run die before `stop`, the nodes must not outlive it.
  process.once('exit', () => {
    for (const child of nodes) if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  try {
    const taken = new Set();
    const free = async () => {
      for (;;) {
        const p = await freePort();
        if (!taken.has(p)) return (taken.add(p), p);
      }
    };
    const ports = [];
    for (let i = 0; i < 3; i++) {
      const port = await free();
      const bus = await free();
      ports.push(port);
      const child = spawn(
        bin,
        [
          '--bind',
          '127.0.0.1',
          '--port',
          String(port),
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(bus),
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          '--daemonize',
          'no',
        ],
        { stdio: 'ignore' },
      );
      nodes.push(child);
    }
    for (const port of ports) {
      for (let i = 0; !redisCli(['-p', String(port), 'ping']).includes('PONG'); i++) {
        if (i > 50) throw new Error(`cluster node on ${port} did not answer PING`);
        await sleep(100);
      }
    }
    const seeds = ports.map((p) => `127.0.0.1:${p}`);
    redisCli(['--cluster', 'create', ...seeds, '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      for (
        let i = 0;
        !redisCli(['-p', String(port), 'cluster', 'info']).includes('cluster_state:ok');
        i++
      ) {
        if (i > 100) throw new Error(`cluster node on ${port} not cluster_state:ok after 10 s`);
        await sleep(100);
      }
    }
    return {
      url: `redis+cluster://${seeds.join(',')}`,
      pids: nodes.map((n) => /** @type {number} */ (n.pid)),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Output

const fmt = (/** @type {number | undefined} */ v, d = 0) =>
  v === undefined || Number.isNaN(v)
    ? '–'
    : v.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Median of the numbers among `xs` (undefined and NaN skipped); undefined if none. */
function median(/** @type {(number | undefined)[]} */ xs) {
  const s = /** @type {number[]} */ (xs.filter((x) => x !== undefined && !Number.isNaN(x)));
  s.sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? undefined : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The rows of each workload and server (one per round), in order of first appearance. */
function byServer(/** @type {Record<string, any>[]} */ rows) {
  /** @type {Map<string, Record<string, any>[]>} */
  const groups = new Map();
  for (const r of rows) {
    const key = `${r.workload}\n${r.server}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

/** Figures shown as their median over the rounds. */
const MEDIAN_KEYS = [
  'msgPerS',
  'cpuPer1k',
  'redisCpuPer1k',
  'p50ms',
  'p99ms',
  'kibPerConn',
  'connPerS',
  'coldConnPerS',
  'rssMiB',
  'serverCores',
  'harnessCores',
  'otherCores',
];

/**
 * One row per workload and server: the median of each figure over the rounds, losses,
 * duplicates and order violations summed. With one round, the figures of that round's row.
 * @param {Record<string, any>[]} rows
 */
function mergeRounds(rows) {
  return byServer(rows).map((runs) => {
    const ran = runs.filter((r) => !r.na);
    if (ran.length === 0) return runs[0];
    const { workload, server, clients } = runs[0];
    /** @type {Record<string, any>} */
    const row = { workload, server, clients, rounds: runs.length };
    for (const k of MEDIAN_KEYS) row[k] = median(ran.map((r) => r[k]));
    for (const k of ['losses', 'dups', 'disorder'])
      if (ran.some((r) => r[k] !== undefined)) row[k] = ran.reduce((a, r) => a + (r[k] ?? 0), 0);
    const errors = runs.map((r) => (r.na ? `n/a: ${r.na}` : r.error)).filter(Boolean);
    if (errors.length) row.error = [...new Set(errors)].join('; ');
    return row;
  });
}

/** @param {Record<string, any>[]} rows */
function table(rows) {
  const head = [
    'workload',
    'server',
    'msg/s',
    'CPU s/1k',
    'p50 ms',
    'p99 ms',
    'KiB/conn',
    'conn/s',
    'cold conn/s',
    'srv cores',
    'harness cores',
    'other cores',
    'loss/dup/order',
  ];
  const body = rows.map((r) => {
    if (r.na) return [r.workload, r.server, `n/a: ${r.na}`];
    if (r.error && r.msgPerS === undefined && r.connPerS === undefined)
      return [r.workload, r.server, `error: ${r.error}`];
    return [
      r.workload,
      r.server,
      fmt(r.msgPerS),
      r.cpuPer1k === undefined
        ? '–'
        : fmt(r.cpuPer1k, 4) + (r.redisCpuPer1k ? ` (+redis ${fmt(r.redisCpuPer1k, 4)})` : ''),
      fmt(r.p50ms, 2),
      fmt(r.p99ms, 2),
      fmt(r.kibPerConn, 1),
      fmt(r.connPerS),
      fmt(r.coldConnPerS),
      fmt(r.serverCores, 2),
      fmt(r.harnessCores, 2),
      fmt(r.otherCores, 2),
      r.losses === undefined ? '–' : `${r.losses}/${r.dups}/${r.disorder}`,
    ].concat(r.error ? [`error: ${r.error}`] : []);
  });
  return markdown(head, body);
}

/**
 * Paired ratios: each round's app figure / the baseline's of the same round; the median over the
 * rounds, and for CPU/1k also the min–max range when there is more than one round.
 * @param {Record<string, any>[]} rows every round's row
 */
function ratios(rows) {
  const head = [
    'workload',
    'server',
    'msg/s ×',
    'CPU/1k ×',
    'p99 ×',
    'KiB/conn ×',
    'conn/s ×',
    'cold conn/s ×',
  ];
  const body = [];
  for (const runs of byServer(rows)) {
    const { workload, server } = runs[0];
    if (server.startsWith('baseline')) continue;
    // profiled rows: the profiled baseline
    const base = server.endsWith(' (--cpu-prof)') ? 'baseline (--cpu-prof)' : 'baseline';
    /** @type {[Record<string, any>, Record<string, any>][]} app row, baseline row of its round */
    const pairs = [];
    for (const r of runs) {
      const b = rows.find(
        (x) => x.workload === workload && x.server === base && x.round === r.round,
      );
      if (b && !b.na && !r.na) pairs.push([r, b]);
    }
    if (pairs.length === 0) {
      body.push([workload, server, runs.every((r) => r.na) ? 'n/a' : 'no baseline']);
      continue;
    }
    const x = (/** @type {string} */ k, range = false) => {
      const q = pairs.filter(([r, b]) => r[k] !== undefined && b[k]).map(([r, b]) => r[k] / b[k]);
      const m = median(q);
      if (m === undefined) return '–';
      const span = q.length > 1 ? ` (${fmt(Math.min(...q), 2)}–${fmt(Math.max(...q), 2)})` : '';
      return fmt(m, 2) + (range ? span : '');
    };
    body.push([
      workload,
      server,
      x('msgPerS'),
      x('cpuPer1k', true),
      x('p99ms'),
      x('kibPerConn'),
      x('connPerS'),
      x('coldConnPerS'),
    ]);
  }
  return markdown(head, body);
}

/**
 * `--handshakes`: every round starts each server fresh and has it take HANDSHAKE_BURSTS bursts of
 * 1000 handshakes (64 in flight per worker, as the workloads connect), each closed before the
 * next. Prints, per burst, the medians over the rounds of the server's CPU per handshake (all its
 * threads, so JIT compilation counts) and of conn/s, and the app's conn/s over the baseline's.
 * @param {Worker[]} workers @param {Ctx} ctx
 */
async function handshakeCurve(workers, ctx) {
  const burst = { name: 'handshakes', clients: 1000, senders: 0, rooms: 1, idle: true };
  /** server → burst → one { us, connPerS } per round */
  const runs = new Map(
    SERVERS.map((kind) => [
      kind,
      Array.from(
        { length: HANDSHAKE_BURSTS },
        () => /** @type {{ us: number, connPerS: number }[]} */ ([]),
      ),
    ]),
  );
  for (let round = 0; round < REPEAT; round++) {
    for (let i = 0; i < SERVERS.length; i++) {
      const kind = SERVERS[(round + i) % SERVERS.length];
      const server = await startServer(kind, ctx);
      try {
        const line = [];
        for (let b = 0; b < HANDSHAKE_BURSTS; b++) {
          const cpu0 = sumCpuNanos(server.pids);
          const t0 = process.hrtime.bigint();
          const conns = await connectAll(workers, server, burst, burst.clients);
          const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
          const cpuNs = sumCpuNanos(server.pids) - cpu0;
          const connected = conns.reduce((a, c) => a + c.connected, 0);
          if (connected < burst.clients)
            throw new Error(`${kind}: ${burst.clients - connected} handshakes failed`);
          const figures = { us: cpuNs / 1000 / connected, connPerS: connected / wallS };
          runs.get(kind)?.[b].push(figures);
          line.push(`${fmt(figures.us)} µs ${fmt(figures.connPerS)}/s`);
          await Promise.all(workers.map((x) => x.call('close')));
        }
        console.log(`  #${round + 1} ${kind.padEnd(14)} ${line.join(', ')}`);
      } finally {
        await server.stop();
      }
    }
  }
  const base = runs.get('baseline');
  const head = ['burst', 'handshakes before'];
  for (const kind of SERVERS) head.push(`${kind} µs/handshake`, `${kind} conn/s`);
  for (const kind of SERVERS) if (base && kind !== 'baseline') head.push(`${kind} conn/s ×`);
  const body = Array.from({ length: HANDSHAKE_BURSTS }, (_, b) => {
    const cells = [String(b + 1), fmt(b * burst.clients)];
    for (const kind of SERVERS) {
      const rounds = runs.get(kind)?.[b] ?? [];
      cells.push(fmt(median(rounds.map((r) => r.us))), fmt(median(rounds.map((r) => r.connPerS))));
    }
    for (const kind of SERVERS) {
      if (!base || kind === 'baseline') continue;
      const app = runs.get(kind)?.[b] ?? [];
      cells.push(fmt(median(app.map((r, round) => r.connPerS / base[b][round].connPerS)), 2));
    }
    return cells;
  });
  console.log(
    `\nMedians over ${REPEAT} round(s), every server fresh per round; conn/s × = median of each round's app / baseline:\n\n${markdown(head, body)}\n`,
  );
}

/** @param {string[]} head @param {string[][]} body */
function markdown(head, body) {
  const line = (/** @type {string[]} */ cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

/** The lines of a crashed server's output that say why: its error lines, else its last lines. */
function lastLines(/** @type {string} */ s) {
  const lines = s
    .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '')
    .trim()
    .split('\n');
  const errors = lines.filter((l) => /error|fatal|cannot|must/i.test(l));
  return (errors.length ? errors : lines)
    .slice(-3)
    .map((l) => l.trim())
    .join(' / ');
}

function machine() {
  return {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    node: process.version,
    kernel: os.release(),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    workers: WORKERS,
    durationS: DURATION_S,
    quick: QUICK,
    repeat: REPEAT,
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const m = machine();
  console.log(
    `fan-out bench${QUICK ? ' (quick)' : ''}: ${m.nproc} cores (${m.cpu}), node ${m.node}, linux ${m.kernel}; ` +
      `${WORKERS} load-generator workers, ` +
      (HANDSHAKE_BURSTS
        ? `${HANDSHAKE_BURSTS} bursts of 1000 handshakes per server`
        : `${WARMUP_HANDSHAKES} warm-up handshakes, ${DURATION_S} s per run after ${WARMUP_S} s warm-up`) +
      `${REPEAT > 1 ? `, ${REPEAT} rounds per workload` : ''}; ` +
      `load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const redis = SERVERS.some((s) => ON_REDIS.has(s)) ? await startRedis() : undefined;
  /** @type {Awaited<ReturnType<typeof startCluster>> | undefined} */
  let cluster;
  /** @type {string | undefined} */
  let clusterError;
  if (SERVERS.includes('app-cluster')) {
    try {
      cluster = await startCluster();
    } catch (error) {
      clusterError = error instanceof Error ? error.message : String(error);
    }
  }
  /** @type {Ctx} */
  const ctx = {
    redisUrl: redis?.url,
    redisPid: redis?.pid,
    clusterUrl: cluster?.url,
    clusterPids: cluster?.pids,
    clusterError,
  };
  const stopStores = async () => {
    await redis?.stop();
    await cluster?.stop();
  };
  const workers = Array.from({ length: WORKERS }, startWorker);
  if (HANDSHAKE_BURSTS) {
    try {
      await handshakeCurve(workers, ctx);
    } finally {
      for (const x of workers) x.proc.disconnect();
      await stopStores();
    }
    return;
  }
  /** @type {Record<string, any>[]} */
  const rows = [];
  try {
    for (const w of workloads) {
      for (let round = 0; round < REPEAT; round++) {
        for (let i = 0; i < SERVERS.length; i++) {
          // Round r starts at server r mod k, so slow drift of the machine hits every server alike.
          const kind = SERVERS[(round + i) % SERVERS.length];
          /** @type {Record<string, any>} */
          const row = {
            round: round + 1,
            ...(await runOne(workers, kind, w, ctx)),
          };
          rows.push(row);
          const brief = row.na
            ? `n/a (${row.na})`
            : row.msgPerS !== undefined
              ? `${fmt(row.msgPerS)} msg/s, ${fmt(row.cpuPer1k, 4)} CPU s/1k, p99 ${fmt(row.p99ms, 2)} ms, loss/dup/order ${row.losses}/${row.dups}/${row.disorder}`
              : `${fmt(row.kibPerConn, 1)} KiB/conn, ${fmt(row.connPerS)} conn/s`;
          const tag = REPEAT > 1 ? `#${round + 1} ` : '';
          console.log(
            `  ${w.name.padEnd(18)} ${tag}${kind.padEnd(14)} ${brief}${row.error ? ` error: ${row.error}` : ''}`,
          );
        }
      }
    }
    if (PROFILE) await profile(workers, rows);
  } finally {
    for (const x of workers) x.proc.disconnect();
    await stopStores();
  }

  const merged = mergeRounds(rows);
  const rounds =
    REPEAT > 1
      ? `Medians over ${REPEAT} rounds (server order rotated by round); loss/dup/order summed over the rounds.\n\n`
      : '';
  const paired =
    REPEAT > 1
      ? `median over ${REPEAT} rounds of each round's app / baseline, CPU/1k with its min–max`
      : 'same run';
  const out = `${rounds}${table(merged)}\n\nRatios to the baseline (${paired}; CPU, p99, KiB: lower is better; msg/s, conn/s: higher is better):\n\n${ratios(rows)}\n`;
  console.log(`\n${out}`);
  const bad = rows.filter(
    (r) =>
      (!r.na && (r.losses || r.dups || r.disorder || r.error)) ||
      (r.na &&
        !ON_REDIS.has(r.server) &&
        r.server !== 'app-cluster' &&
        r.workload.indexOf('rooms') < 0),
  );
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.writeFileSync(
    path.join(OUT, `results-${stamp}.json`),
    JSON.stringify({ machine: m, rows, medians: merged }, null, 2),
  );
  fs.writeFileSync(path.join(OUT, 'latest.md'), out);
  console.log(
    `cores = CPU-s / wall-s over the measured run (${m.nproc} on this box): srv = the server process(es), ` +
      'harness = this script + its load generators, other = everything else on the machine.',
  );
  console.log(`written: bench/out/results-${stamp}.json, bench/out/latest.md`);
  if (bad.length > 0) {
    console.error(
      `FAIL: ${bad.length} run(s) lost, duplicated or reordered messages, errored or did not start`,
    );
    process.exitCode = 1;
  }
}

/** Runs one fan-out workload on app-memory and baseline under --cpu-prof and summarizes. */
async function profile(/** @type {Worker[]} */ workers, /** @type {Record<string, any>[]} */ rows) {
  const { summarize } = require('./profile-summary');
  for (const kind of ['app-memory', 'baseline']) {
    const dir = path.join(OUT, 'profile', kind);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const row = await runOne(workers, kind, PROFILE_WORKLOAD, { cpuProf: dir });
    rows.push({ ...row, server: `${kind} (--cpu-prof)` });
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file) {
      console.log(`no profile written for ${kind}`);
      continue;
    }
    console.log(
      `\nprofile of ${kind}, ${PROFILE_WORKLOAD.name} (bench/out/profile/${kind}/${file}):`,
    );
    console.log(summarize(path.join(dir, file), 15));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
