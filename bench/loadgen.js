'use strict';
/**
 * One load-generator worker, forked by bench/run.js and driven over IPC. It holds a slice of the
 * clients, sends on behalf of the senders among them, and checks every chat frame it receives:
 * latency (send time is in the text), losses, duplicates and per-sender order.
 *
 * A sent message's text is `~b|<sender>|<seq>|<sendMicros>~`; `sendMicros` is CLOCK_MONOTONIC
 * (process.hrtime), which every process on the box shares, so receivers in other workers can
 * subtract it from their own clock.
 *
 * Two client kinds: raw `ws` sockets speaking the seed's JSON frames (our app, the baseline), or
 * `socket.io-client` sockets (protocol `io`: the Socket.IO servers), websocket transport only, that
 * emit `message` `{ message }` and listen for `connection_established` and `chat` `{ message }`.
 * Both carry the same text and go through the same checks; a Socket.IO client's payload arrives
 * already decoded by socket.io-client (its parse is harness CPU, not the server's).
 *
 * Commands (from the parent): connect, setup, start, go, stop, drain, close. Each is answered by one
 * message with the same `id`. Closed loop: a worker reports `ack` when all its receivers have a
 * sender's message; the parent, once every worker with receivers in that room has, sends `next`
 * to the sender's worker. So each sender has exactly one message in flight end to end, and
 * receivers' queues cannot grow without bound behind an early echo to the sender.
 */
const { WebSocket } = require('ws');
const { io } = require('socket.io-client');
const { Histogram } = require('./lib/histogram');

const MARK = Buffer.from('~b|');
const TILDE = 0x7e;
const ERROR_TYPE = Buffer.from('"type":"error"');
const BAR = 0x7c;

/**
 * @typedef {object} Client
 * @property {WebSocket | undefined} ws raw ws client
 * @property {import('socket.io-client').Socket | undefined} io Socket.IO client
 * @property {number} g global client index
 * @property {number} room
 * @property {number} sid sender id, or -1
 * @property {boolean} greeted
 * @property {Int32Array} last last seq seen per sender (0 = none)
 */

/** @type {Client[]} */
let clients = [];
/** Global sender ids of the senders this worker drives, and their clients. @type {Client[]} */
let senders = [];
/** senderRoom[sid] = room of that sender. @type {Int32Array} */
let senderRoom = new Int32Array(0);
/** seq[sid] = last seq this worker sent for a sender it drives. */
let seq = new Int32Array(0);
let sentThisPhase = new Int32Array(0);
let running = false;
/** Set by `start` on every worker before any sender goes: receptions count toward acks. */
let armed = false;
let mode = 'closed';
let recording = false;
let hist = new Histogram();
let got = 0; // distinct chat frames received this phase (dups excluded)
let dups = 0;
let disorder = 0;
/** Error frames the server sent this phase, by code. @type {Record<string, number>} */
let refused = {};
let stray = 0;
let gaps = 0; // receptions that skipped over a seq (the skipped ones are losses) // chat frames without our mark, or from a sender outside the receiver's room
/** Closed loop: the seq each sender has in flight, and how many of my clients still miss it. */
let outstanding = new Int32Array(0);
let remaining = new Int32Array(0);
/** room → number of my clients in it. @type {Map<number, number>} */
let roomSize = new Map();
let rate = 0;
/** Counts phases, so a closed-loop `next` left over from the previous phase is ignored. */
let phaseNo = 0;
let openTimer = /** @type {NodeJS.Timeout | undefined} */ (undefined);

const nowMicros = () => Number(process.hrtime.bigint() / 1000n);

/** Reads a decimal integer from `buf` at `i` up to `stop`; returns [value, index after stop]. */
function readInt(buf, i, stop) {
  let v = 0;
  for (; buf[i] !== stop; i++) v = v * 10 + (buf[i] - 48);
  return [v, i + 1];
}

/** @param {Client} c @param {Buffer} data */
function onMessage(c, data) {
  if (!c.greeted) return; // the greeting is handled by the connect listener
  const at = data.indexOf(MARK);
  if (at < 0) {
    if (data.indexOf(ERROR_TYPE) >= 0) {
      // The server refused a frame (a rate limit, say): a loss the report must explain.
      let code = 'unknown';
      try {
        code = String(JSON.parse(String(data)).code);
      } catch {
        /* keep unknown */
      }
      refused[code] = (refused[code] ?? 0) + 1;
    } else stray++;
    return;
  }
  const [sid, i1] = readInt(data, at + 3, BAR);
  const [s, i2] = readInt(data, i1, BAR);
  const [t] = readInt(data, i2, TILDE);
  onMark(c, sid, s, t);
}

/** Reads a decimal integer from string `str` at `i` up to char code `stop`; as readInt. */
function readIntStr(
  /** @type {string} */ str,
  /** @type {number} */ i,
  /** @type {number} */ stop,
) {
  let v = 0;
  for (; str.charCodeAt(i) !== stop; i++) v = v * 10 + (str.charCodeAt(i) - 48);
  return [v, i + 1];
}

/** A Socket.IO `chat` event's payload. @param {Client} c @param {any} payload */
function onChatEvent(c, payload) {
  const text = payload?.message;
  const at = typeof text === 'string' ? text.indexOf('~b|') : -1;
  if (at < 0) {
    stray++;
    return;
  }
  const [sid, i1] = readIntStr(text, at + 3, BAR);
  const [s, i2] = readIntStr(text, i1, BAR);
  const [t] = readIntStr(text, i2, TILDE);
  onMark(c, sid, s, t);
}

/**
 * One received message of sender `sid`, sequence `s`, sent at `t` µs: order, duplicates, latency,
 * and the closed loop's acks. @param {Client} c @param {number} sid @param {number} s @param {number} t
 */
function onMark(c, sid, s, t) {
  if (sid >= senderRoom.length || senderRoom[sid] !== c.room) {
    stray++;
    return;
  }
  const last = c.last[sid];
  if (s === last) dups++;
  else {
    if (s < last) disorder++;
    else {
      if (s > last + 1 && last > 0) gaps++;
      c.last[sid] = s;
    }
    got++;
    if (recording) hist.record(nowMicros() - t);
  }
  // Closed loop: count this worker's receivers of the sender's one outstanding message; once all
  // have it, tell the parent, which lets the sender go on when every worker has said so.
  if (armed && mode === 'closed' && s > last) {
    if (s !== outstanding[sid]) {
      outstanding[sid] = s;
      remaining[sid] = roomSize.get(c.room) ?? 0;
    }
    if (--remaining[sid] === 0) process.send?.({ ev: 'ack', sid, s, phase: phaseNo });
  }
}

/** @param {Client} c */
function send(c) {
  const s = ++seq[c.sid];
  sentThisPhase[c.sid]++;
  if (c.io) c.io.emit('message', { message: `~b|${c.sid}|${s}|${nowMicros()}~` });
  else c.ws?.send(`{"message":"~b|${c.sid}|${s}|${nowMicros()}~"}`);
}

/**
 * Opens `count` clients (global indexes from `first`), at most `concurrency` handshakes at a time.
 * A client counts as connected once it has the greeting, i.e. once the server has joined it.
 */
async function connect({
  urls,
  first,
  count,
  rooms,
  roomParam,
  concurrency,
  localAddresses,
  protocol,
}) {
  const t0 = nowMicros();
  let next = 0;
  let failures = 0;
  /** @type {string[]} */
  const errors = [];
  let greetingSample = /** @type {unknown} */ (null);
  const one = () =>
    new Promise((resolve) => {
      const i = next++;
      const g = first + i;
      const room = g % rooms;
      const base = urls[g % urls.length];
      const localAddress = localAddresses[g % localAddresses.length];
      const fail = (/** @type {unknown} */ e) => {
        failures++;
        if (errors.length < 3) errors.push(String(e instanceof Error ? e.message : e));
        resolve(undefined);
      };
      if (protocol === 'io') {
        const socket = io(base, {
          transports: ['websocket'],
          forceNew: true,
          reconnection: false,
          perMessageDeflate: false,
          localAddress,
          ...(roomParam ? { query: { room: `bench-r${room}` } } : {}),
        });
        /** @type {Client} */
        const c = {
          ws: undefined,
          io: socket,
          g,
          room,
          sid: -1,
          greeted: false,
          last: new Int32Array(0),
        };
        const failIo = (/** @type {unknown} */ e) => (socket.disconnect(), fail(e));
        socket.once('connect_error', failIo);
        socket.once('connection_established', (greeting) => {
          greetingSample ??= { type: 'connection_established', ...greeting };
          c.greeted = true;
          socket.off('connect_error', failIo);
          socket.on('chat', (p) => onChatEvent(c, p));
          socket.on('exception', (e) => {
            const code = String(e?.message ?? 'exception');
            refused[code] = (refused[code] ?? 0) + 1;
          });
          clients.push(c);
          resolve(undefined);
        });
        return;
      }
      const url = roomParam ? `${base}?room=bench-r${room}` : base;
      const ws = new WebSocket(url, { perMessageDeflate: false, localAddress });
      /** @type {Client} */
      const c = { ws, io: undefined, g, room, sid: -1, greeted: false, last: new Int32Array(0) };
      ws.once('error', fail);
      ws.once('message', (data) => {
        let greeting;
        try {
          greeting = JSON.parse(String(data));
        } catch {
          greeting = String(data);
        }
        greetingSample ??= greeting;
        if (greeting?.type !== 'connection_established')
          return fail(`unexpected first frame ${data}`);
        c.greeted = true;
        ws.off('error', fail);
        ws.on('error', () => {});
        ws.on('message', (d) => onMessage(c, /** @type {Buffer} */ (d)));
        clients.push(c);
        resolve(undefined);
      });
    });
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await one();
  });
  await Promise.all(lanes);
  return {
    connected: count - failures,
    failures,
    errors,
    ms: (nowMicros() - t0) / 1000,
    greetingSample,
  };
}

/** Assigns senders: `assign` maps global sender id → global client index. */
function setup({ assign, roomsOfSenders }) {
  const n = assign.length;
  senderRoom = Int32Array.from(roomsOfSenders);
  seq = new Int32Array(n);
  sentThisPhase = new Int32Array(n);
  const byG = new Map(clients.map((c) => [c.g, c]));
  senders = [];
  bySid.clear();
  assign.forEach((g, sid) => {
    const c = byG.get(g);
    if (c) {
      c.sid = sid;
      senders.push(c);
      bySid.set(sid, c);
    }
  });
  for (const c of clients) c.last = new Int32Array(n);
  outstanding = new Int32Array(n);
  remaining = new Int32Array(n);
  roomSize = new Map();
  for (const c of clients) roomSize.set(c.room, (roomSize.get(c.room) ?? 0) + 1);
  return { sids: senders.map((c) => c.sid), roomSize: Object.fromEntries(roomSize) };
}

function start({ openLoop, ratePerSender, record }) {
  got = dups = disorder = stray = gaps = 0;
  refused = {};
  hist = new Histogram();
  recording = record;
  sentThisPhase.fill(0);
  mode = openLoop ? 'open' : 'closed';
  rate = ratePerSender;
  phaseNo++;
  outstanding.fill(0);
  armed = true;
  return {};
}

/**
 * Senders go. A separate command from `start`, so that every worker has reset its counters before
 * the first message of the phase can reach it.
 */
function go() {
  running = true;
  if (mode === 'closed') {
    for (const c of senders) send(c);
  } else {
    // Open loop: a fixed schedule per sender, whatever comes back; catch up if a tick ran late.
    const t0 = process.hrtime.bigint();
    openTimer = setInterval(() => {
      const due = Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate);
      for (const c of senders) while (sentThisPhase[c.sid] < due) send(c);
    }, 2);
  }
  return {};
}

function stop() {
  running = false;
  armed = false;
  clearInterval(openTimer);
  /** @type {Record<number, number>} */
  const sent = {};
  /** @type {Record<number, number>} */
  const last = {};
  for (const c of senders) {
    sent[c.sid] = sentThisPhase[c.sid];
    last[c.sid] = seq[c.sid];
  }
  return { sent, last };
}

/** Waits until this worker's clients hold every message sent this phase, or `timeoutMs`. */
async function drain({ sent, lastSeq, timeoutMs }) {
  // expected = Σ over my clients of Σ over senders in the client's room of sent[sid]
  const perRoom = new Map();
  sent.forEach((n, sid) => perRoom.set(senderRoom[sid], (perRoom.get(senderRoom[sid]) ?? 0) + n));
  let expected = 0;
  for (const c of clients) expected += perRoom.get(c.room) ?? 0;
  const deadline = Date.now() + timeoutMs;
  while (got < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  recording = false;
  /** Up to 5 receivers that miss messages, for the report: [client, sender, last seq, sent]. */
  const short = [];
  if (got < expected) {
    for (const c of clients) {
      for (let sid = 0; sid < sent.length && short.length < 5; sid++) {
        if (senderRoom[sid] === c.room && c.last[sid] < lastSeq[sid]) {
          short.push(
            c.io
              ? [c.g, sid, c.last[sid], sent[sid], c.io.connected ? 'connected' : 'disconnected']
              : [c.g, sid, c.last[sid], sent[sid], c.ws?.readyState, c.ws?.bufferedAmount],
          );
        }
      }
    }
  }
  return {
    short,
    refused,
    gaps,
    expected,
    got,
    dups,
    disorder,
    stray,
    losses: Math.max(0, expected - got),
    hist: hist.toJSON(),
  };
}

async function close() {
  const all = clients;
  clients = [];
  senders = [];
  bySid.clear();
  await Promise.all(
    all.map(
      (c) =>
        new Promise((resolve) => {
          // A Socket.IO client: close it, then wait for its underlying ws to finish closing, as a
          // raw client's close is waited for.
          const ws = c.io ? /** @type {any} */ (c.io.io.engine)?.transport?.ws : c.ws;
          c.io?.disconnect();
          if (!ws || ws.readyState === WebSocket.CLOSED) return resolve(undefined);
          ws.once('close', resolve);
          if (!c.io) ws.close();
          setTimeout(() => (ws.terminate(), resolve(undefined)), 2000).unref();
        }),
    ),
  );
  return {};
}

/** @type {Record<string, (args: any) => unknown>} */
const commands = { connect, setup, start, go, stop, drain, close };

/** sender id → its client, for the parent's `next` (closed loop). @type {Map<number, Client>} */
const bySid = new Map();

process.on('message', async (/** @type {{ id: number, cmd: string, args: any }} */ msg) => {
  if (msg.cmd === 'next') {
    // Everyone has the sender's previous message: send the next one (no reply, hot path).
    const c = bySid.get(msg.args.sid);
    if (c && running && mode === 'closed' && msg.args.phase === phaseNo) send(c);
    return;
  }
  try {
    const result = await commands[msg.cmd](msg.args ?? {});
    process.send?.({ id: msg.id, ok: true, result });
  } catch (error) {
    process.send?.({
      id: msg.id,
      ok: false,
      error: String(error instanceof Error ? error.stack : error),
    });
  }
});
process.on('disconnect', () => process.exit(0));
