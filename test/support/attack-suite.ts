import WebSocket from 'ws';
import { AppProcess, buildApp } from './app-process.js';
import {
  MiB,
  RawClient,
  Refused,
  Target,
  Watch,
  WatchReport,
  attacker,
  closeLeftovers,
  clientFrame,
  closeCodeOf,
  destroy,
  eachLimit,
  httpGet,
  openSocket,
  pingFlood,
  rawPingFlood,
  sleep,
  tcpOf,
  BYSTANDER_ADDRESS,
  Opcode,
} from './attackers.js';
import { Samples, sample, scrape } from './metrics.js';

/**
 * How hard and how long each attack of issue 15 runs. `npm test` runs a short version of each
 * (test/attacks.e2e-spec.ts); `npm run attack` a heavier one (test/attacks.soak-spec.ts).
 */
export interface AttackScale {
  /** How long each timed attack lasts. */
  seconds: number;
  /** Sockets filling fresh rooms with 60 kB messages. */
  historySockets: number;
  /** Rooms opened with one 1-character message each. */
  tinyRooms: number;
  /** Sockets joining a room with a full history and never reading. */
  fullRoomJoiners: number;
  /** Sockets pinging without reading (half `ws`, half raw TCP); one more reads. */
  pingFlooders: number;
  /** Addresses keeping silent TCP connections open. */
  silentAddresses: number;
  /** Sockets leaving a 200 KiB fragment unfinished. */
  fragments: number;
  /** Sockets sending 256 KiB of nested invalid JSON at 19 frames a second. */
  cpuAttackers: number;
  /** Environment of every server: settings lowered so a short run reaches the bounds. */
  env: Record<string, string>;
  /** Environment of the connection floods' server only (connection caps). */
  connectionEnv: Record<string, string>;
  /** RSS the server must stay under (the issue: a few hundred MiB however long it runs). */
  rssBoundMiB: number;
}

/** The bounds every attack is held to, besides its own refusals. */
const BYSTANDER_P50_MS = 100;
const BYSTANDER_MAX_MS = 1000;
/**
 * A fresh connection per poll: under a burst of handshakes the listen queue may drop its SYN,
 * which the kernel resends after 1 s; one resend is allowed.
 */
const HEALTH_MAX_MS = 2000;

/**
 * The server stayed up and answering, under `rssBoundMiB`, while the bystander got every message
 * (median under 100 ms, none over 1 s) and `/health` answered every poll within 2 s. Bounds are
 * generous: these run on 2-core machines shared with the attackers; a server without the bounds
 * misses them by far (see the README of each attack below).
 */
function expectWithstood(what: string, report: WatchReport, rssBoundMiB: number): void {
  process.stdout.write(`${what}: ${JSON.stringify(report)}\n`);
  const { bystander, health, rss } = report;
  const verdict: Record<string, boolean> = {
    'server alive and answering': report.alive,
    [`RSS peak ${rss.peakMiB} MiB < ${rssBoundMiB} MiB`]: rss.peakMiB < rssBoundMiB,
    [`bystander got ${bystander.received} of ${bystander.sent}`]:
      bystander.sent > 0 && bystander.lost === 0,
    [`bystander still open (${bystander.closedWith ?? 'open'})`]:
      bystander.closedWith === undefined,
    // A median needs a run of messages: an attack over within a second (a burst of handshakes)
    // leaves the bystander a sample or two, which its max bounds.
    [`bystander p50 ${bystander.p50Ms} ms < ${BYSTANDER_P50_MS} ms (of ${bystander.received})`]:
      bystander.received < 10 || bystander.p50Ms < BYSTANDER_P50_MS,
    [`bystander max ${bystander.maxMs} ms < ${BYSTANDER_MAX_MS} ms`]:
      bystander.maxMs < BYSTANDER_MAX_MS,
    [`/health failed ${health.failures.length} of ${health.polls} (${health.failures.slice(0, 3).join('; ')})`]:
      health.polls > 0 && health.failures.length === 0,
    [`/health slowest ${health.maxMs} ms < ${HEALTH_MAX_MS} ms`]: health.maxMs < HEALTH_MAX_MS,
  };
  expect(verdict).toEqual(Object.fromEntries(Object.keys(verdict).map((key) => [key, true])));
}

/** `after - before` of one sample. */
function delta(before: Samples, after: Samples, key: string): number {
  return sample(after, key) - sample(before, key);
}

/** Polls `/metrics` until `check` holds (a gauge settling), up to `ms`. */
async function metricsUntil(
  target: Target,
  check: (samples: Samples) => boolean,
  ms = 10_000,
): Promise<Samples> {
  let samples = await scrape(target.httpUrl);
  for (const deadline = Date.now() + ms; !check(samples) && Date.now() < deadline;) {
    await sleep(100);
    samples = await scrape(target.httpUrl);
  }
  return samples;
}

/** A server of its own per attack, so each one's RSS is its own. */
function serverFor(scale: AttackScale, env: Record<string, string> = {}) {
  const server: { app?: AppProcess; target?: Target } = {};
  beforeAll(async () => {
    server.app = new AppProcess({ ...scale.env, ...env });
    server.target = new Target(await server.app.listening());
  });
  afterAll(async () => {
    server.app?.kill();
    await server.app?.exited;
  });
  return {
    get app(): AppProcess {
      return server.app as AppProcess;
    },
    get target(): Target {
      return server.target as Target;
    },
  };
}

/**
 * Opens a socket as a patient client would: a handshake refused for the address's handshake
 * budget (429 with `Retry-After`) is tried again when the server says; other refusals reject.
 */
async function openPaced(url: string, address: string): Promise<WebSocket> {
  for (;;) {
    try {
      return await openSocket(url, address);
    } catch (error) {
      const retryAfter = error instanceof Refused ? error.headers['retry-after'] : undefined;
      if (!(error instanceof Refused) || error.status !== 429 || retryAfter === undefined) {
        throw error;
      }
      await sleep(Number(retryAfter) * 1000);
    }
  }
}

/** A chat frame carrying `bytes` characters. */
function chatFrame(bytes: number, fill = 'x'): string {
  return JSON.stringify({ message: fill.repeat(bytes) });
}

/** Registers the attacks of issue 15 at `scale`. */
export function describeAttacks(scale: AttackScale): void {
  const timeout = 60_000 + scale.seconds * 2000;

  beforeAll(async () => {
    await buildApp();
  }, 60_000);

  afterEach(async () => {
    await closeLeftovers();
  });

  describe('History: fresh rooms, big messages, then thousands of tiny rooms', () => {
    const server = serverFor(scale);

    it(
      'holds history to its byte bounds while sockets fill fresh rooms with 60 kB messages',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        // 60 kB messages: under maxMessageBytes (64 KiB); four of them fill the burst
        // (burstBytes = 256 KiB), then one a second stays under bytesPerSecond (64 KiB).
        const frame = chatFrame(60_000, 'h');
        const errors = new Map<string, number>();
        let rooms = 0;
        let bytes = 0;
        await Promise.all(
          Array.from({ length: scale.historySockets }, async (_, i) => {
            for (let k = 0; !watch.over(scale.seconds); k++) {
              const socket = await openSocket(
                target.room(`big-${i}-${k}`),
                attacker(i % Math.ceil(scale.historySockets / 10)),
                (text) => {
                  const code = /"code":"([a-z_]+)"/.exec(text.slice(0, 100))?.[1];
                  if (code) errors.set(code, (errors.get(code) ?? 0) + 1);
                },
              ).catch(async (error: unknown) => {
                if (!(error instanceof Refused)) throw error;
                await sleep(1000); // refused (a handshake rate): try again in a while
              });
              if (!socket) continue;
              rooms++;
              for (let m = 0; m < 6 && socket.readyState === WebSocket.OPEN; m++) {
                socket.send(frame);
                bytes += frame.length;
                if (m >= 3) await sleep(1000);
              }
              const closed = closeCodeOf(socket);
              socket.close();
              await closed;
            }
          }),
        );
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        process.stdout.write(
          `  ${rooms} rooms, ${Math.round(bytes / MiB)} MiB posted, errors ${JSON.stringify(Object.fromEntries(errors))}\n`,
        );
        expectWithstood('history, big messages', report, scale.rssBoundMiB);
        expect(delta(before, after, 'chat_history_rooms_evicted_total')).toBeGreaterThan(0);
        // Under the flood a room may be evicted (least recently written) before it reaches its
        // own byte bound, so that bound is shown once the flood is over: six of these messages
        // (360 kB) in one room, and a joiner is replayed at most historyBytes (256 KiB) of them.
        // Addresses no attacker of this run used, so no per-address bound refuses them.
        const witness = await openSocket(target.room('big-witness'), attacker(2000));
        for (let m = 0; m < 6; m++) {
          witness.send(frame);
          if (m >= 3) await sleep(1000);
        }
        await sleep(200);
        let replay: (text: string) => void = () => undefined;
        const replayed = new Promise<string>((resolve) => (replay = resolve));
        const joiner = await openSocket(target.room('big-witness'), attacker(2001), (text) => {
          if (text.startsWith('{"type":"history"')) replay(text);
        });
        const history = JSON.parse(await replayed) as { messages: unknown[] };
        await Promise.all([destroy(witness), destroy(joiner)]);
        expect(history.messages.length).toBeGreaterThan(0);
        expect(history.messages.length).toBeLessThan(6);
        const trimmed = await scrape(target.httpUrl);
        expect(delta(after, trimmed, 'chat_history_records_trimmed_total')).toBeGreaterThan(0);
        // What the server holds once the attackers left: their sockets gone, history in its bound.
        const settled = await metricsUntil(
          target,
          (samples) => sample(samples, 'chat_connections') === sample(before, 'chat_connections'),
        );
        expect(sample(settled, 'chat_connections')).toBe(sample(before, 'chat_connections'));
        expect(sample(settled, 'chat_history_bytes')).toBeLessThanOrEqual(
          Number(scale.env.MAX_HISTORY_BYTES ?? 64 * MiB),
        );
      },
      timeout,
    );

    it(
      'evicts the history of the least recently written rooms past maxRooms, however many rooms 1-character messages open',
      async () => {
        const { app, target } = server;
        const maxRooms = Number(scale.env.MAX_ROOMS ?? 10_000);
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        const started = performance.now();
        const slowestRoomsList = { ms: 0, rooms: 0 };
        let done = false;
        const listing = (async () => {
          while (!watch.over(scale.seconds * 4)) {
            const asked = performance.now();
            const answer = await httpGet(target, '/api/rooms', '127.0.0.3');
            const ms = performance.now() - asked;
            if (ms > slowestRoomsList.ms) {
              slowestRoomsList.ms = Math.round(ms);
              slowestRoomsList.rooms = (JSON.parse(answer.body) as unknown[]).length;
            }
            if (done) return;
            await sleep(200);
          }
        })();
        let opened = 0;
        const rooms = Array.from({ length: scale.tinyRooms }, (_, i) => `tiny-${i}`);
        // 150 addresses: one address may only open 30 at once (handshakeRate's burst).
        await eachLimit(rooms, 50, async (room, i) => {
          if (watch.signal.aborted) return;
          const socket = await openPaced(target.room(room), attacker(100 + (i % 150)));
          opened++;
          const echoed = new Promise<void>((resolve) =>
            socket.on('message', (data) => {
              if (String(data).startsWith('{"type":"chat"')) resolve();
            }),
          );
          socket.send(chatFrame(1));
          await echoed;
          const closed = closeCodeOf(socket);
          socket.close();
          await closed;
        });
        done = true;
        const took = (performance.now() - started) / 1000;
        await listing;
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        const list = await httpGet(target, '/api/rooms');
        process.stdout.write(
          `  ${opened} rooms in ${took.toFixed(1)} s (${Math.round(opened / took)}/s); ` +
            `slowest /api/rooms ${JSON.stringify(slowestRoomsList)}\n`,
        );
        expectWithstood('history, tiny rooms', report, scale.rssBoundMiB);
        expect(opened).toBe(scale.tinyRooms);
        expect(delta(before, after, 'chat_history_rooms_evicted_total')).toBeGreaterThanOrEqual(
          scale.tinyRooms - maxRooms,
        );
        expect(slowestRoomsList.ms).toBeLessThan(1000);
        expect(list.status).toBe(200);
        expect((JSON.parse(list.body) as unknown[]).length).toBeLessThanOrEqual(100);
      },
      timeout * 2,
    );
  });

  describe('Joining a room with a full history and never reading', () => {
    const server = serverFor(scale);

    it(
      'sends each joiner at most the room’s bounded history and holds it within the send budget',
      async () => {
        const { app, target } = server;
        // Fill the room: 13 writers of four 60 kB messages is more than its history keeps
        // (256 KiB), then 50 writers of one 250 kB message each, which a server without a message
        // size bound keeps as 50 records, 12.5 MB, for every joiner (maxMessageBytes refuses them).
        const writers = [
          ...Array.from({ length: 13 }, () => ({ text: chatFrame(60_000, 'f'), count: 4 })),
          ...Array.from({ length: 50 }, () => ({ text: chatFrame(250_000, 'F'), count: 1 })),
        ];
        await eachLimit(writers, 13, async ({ text, count }, i) => {
          let answers = 0;
          let answered!: () => void;
          const done = new Promise<void>((resolve) => (answered = resolve));
          const writer = await openSocket(target.room('full'), attacker(200 + (i % 40)), (data) => {
            if (/^\{"type":"(chat|error)"/.test(data) && ++answers === count) answered();
          });
          for (let m = 0; m < count; m++) writer.send(text);
          await done;
          await destroy(writer);
        });
        const watch = await Watch.start(app, target);
        const joiners: RawClient[] = [];
        const started = performance.now();
        // 30 addresses: under the per-address connection cap and the handshake burst.
        await eachLimit(
          Array.from({ length: scale.fullRoomJoiners }, (_, i) => i),
          50,
          async (i) => {
            if (watch.signal.aborted) return;
            joiners.push(
              await RawClient.upgrade(target, target.path('full'), attacker(i % 30), {
                read: false,
              }),
            );
          },
        );
        const joinedIn = Math.round(performance.now() - started);
        // Hold them while the watch runs: the bytes they were sent stay queued on the server.
        const held = await metricsUntil(
          target,
          (samples) => sample(samples, 'chat_connections') >= joiners.length + 1,
        );
        for (const deadline = Date.now() + scale.seconds * 1000; !watch.over(scale.seconds);) {
          await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
        }
        const buffered = sample(await scrape(target.httpUrl), 'chat_send_buffer_bytes');
        const report = await watch.stop();
        await Promise.all(joiners.map((joiner) => joiner.destroy()));
        process.stdout.write(
          `  ${joiners.length} joiners in ${joinedIn} ms; ${sample(held, 'chat_connections')} connections; ` +
            `send buffers ${Math.round(buffered / MiB)} MiB\n`,
        );
        expectWithstood('full room, never reading', report, scale.rssBoundMiB);
        expect(joiners).toHaveLength(scale.fullRoomJoiners);
        // Each joiner holds at most its send budget (maxBufferedBytes, 1 MiB): the history frame
        // counts against it and is trimmed to fit.
        expect(buffered).toBeLessThanOrEqual(scale.fullRoomJoiners * MiB);
        // Once they are gone, so is everything queued for them.
        const settled = await metricsUntil(
          target,
          (samples) =>
            sample(samples, 'chat_connections') <= 1 &&
            sample(samples, 'chat_send_buffer_bytes') === 0,
        );
        expect(sample(settled, 'chat_connections')).toBeLessThanOrEqual(1);
        expect(sample(settled, 'chat_send_buffer_bytes')).toBe(0);
      },
      timeout,
    );
  });

  describe('Ping floods', () => {
    const server = serverFor(scale);

    it(
      'rate-limits pings and closes the flooders (1008), reading or not, while nothing queues without bound',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        const silent = Math.max(1, Math.floor(scale.pingFlooders / 2));
        const stop = (): boolean => watch.over(scale.seconds);
        const wsFlooders = await Promise.all(
          Array.from({ length: silent }, (_, i) =>
            openSocket(target.room(`ping-${i}`), attacker(i)),
          ),
        );
        for (const socket of wsFlooders) tcpOf(socket).pause(); // never reads its pongs
        const rawFlooders = await Promise.all(
          Array.from({ length: scale.pingFlooders - silent }, (_, i) =>
            RawClient.upgrade(target, target.path(`ping-raw-${i}`), attacker(silent + i), {
              read: false,
            }),
          ),
        );
        const reader = await openSocket(target.room('ping-reader'), attacker(scale.pingFlooders));
        const readerClosed = closeCodeOf(reader);
        let readerClosedAt: number | undefined;
        void readerClosed.then(() => (readerClosedAt = performance.now()));
        const started = performance.now();
        const pings = await Promise.all([
          ...wsFlooders.map((socket) => pingFlood(socket, stop)),
          ...rawFlooders.map((client) => rawPingFlood(client, stop)),
          pingFlood(reader, stop),
        ]);
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        const readerCode = reader.readyState === WebSocket.CLOSED ? await readerClosed : undefined;
        await Promise.all([...wsFlooders, reader].map((socket) => destroy(socket)));
        await Promise.all(rawFlooders.map((client) => client.destroy()));
        process.stdout.write(
          `  ${pings.reduce((sum, n) => sum + n, 0)} pings; reader closed with ${readerCode} after ` +
            `${readerClosedAt === undefined ? '-' : Math.round(readerClosedAt - started)} ms\n`,
        );
        expectWithstood('ping flood', report, scale.rssBoundMiB);
        expect(readerCode).toBe(1008);
        expect(delta(before, after, 'chat_rate_limited_total{limit="frames"}')).toBeGreaterThan(0);
        expect(
          delta(before, after, 'chat_connections_closed_by_server_total{reason="rate_limited"}'),
        ).toBeGreaterThanOrEqual(scale.pingFlooders + 1);
      },
      timeout,
    );
  });

  describe('Connection floods', () => {
    const env = { ...scale.env, ...scale.connectionEnv };
    const maxConnections = Number(env.MAX_CONNECTIONS ?? 10_000);
    const perAddress = Number(env.MAX_CONNECTIONS_PER_ADDRESS ?? 100);
    const handshakeTimeoutMs = Number(env.HANDSHAKE_TIMEOUT_MS ?? 10_000);
    const server = serverFor(scale, scale.connectionEnv);

    /** Opens `count` sockets from `address` at once: the opened ones, and the refusals. */
    async function openMany(count: number, address: (i: number) => string) {
      const results = await Promise.allSettled(
        Array.from({ length: count }, (_, i) => openPaced(server.target.room('crowd'), address(i))),
      );
      const opened = results.flatMap((result) =>
        result.status === 'fulfilled' ? [result.value] : [],
      );
      const refused = results.flatMap((result) =>
        result.status === 'rejected' && result.reason instanceof Refused ? [result.reason] : [],
      );
      const failed = results.filter(
        (result) => result.status === 'rejected' && !(result.reason instanceof Refused),
      );
      return { opened, refused, failed: failed.length };
    }

    async function closeAll(sockets: WebSocket[]): Promise<void> {
      await Promise.all(sockets.map((socket) => destroy(socket)));
      await metricsUntil(server.target, (samples) => sample(samples, 'chat_connections') === 0);
    }

    it('refuses WebSockets past maxConnectionsPerAddress from one address with 429, and not from others', async () => {
      const { target } = server;
      const before = await scrape(target.httpUrl);
      const flood = await openMany(perAddress + 5, () => attacker(0));
      const other = await openSocket(target.room('crowd'), attacker(1));
      const after = await scrape(target.httpUrl);
      await closeAll([...flood.opened, other]);
      // The five past the bound are refused either with a 429 once their head is read, or, when
      // more than `maxConnectionsPerAddress` of the flood are still connecting at once, at TCP
      // by the guard's cap on pending connections per address: both are the per-address bound.
      expect({
        opened: flood.opened.length,
        refusedOrDropped: flood.refused.length + flood.failed,
      }).toEqual({
        opened: perAddress,
        refusedOrDropped: 5,
      });
      expect(flood.refused.map((r) => r.status)).toEqual(Array(flood.refused.length).fill(429));
      expect(
        delta(before, after, 'chat_handshakes_refused_total{reason="connections_per_address"}'),
      ).toBe(flood.refused.length);
      expect(
        delta(before, after, 'chat_tcp_connections_dropped_total{reason="pending_per_address"}'),
      ).toBe(flood.failed);
    });

    it('refuses handshakes past the per-address rate with 429 and Retry-After', async () => {
      const { target } = server;
      const before = await scrape(target.httpUrl);
      const refused: Refused[] = [];
      let opened = 0;
      for (let i = 0; i < 60; i++) {
        const socket = await openSocket(target.room('crowd'), attacker(2)).catch(
          (error: unknown) => {
            if (error instanceof Refused) refused.push(error);
            else throw error;
          },
        );
        if (!socket) continue;
        opened++;
        await destroy(socket);
      }
      const after = await scrape(target.httpUrl);
      process.stdout.write(`  handshake rate: ${opened} opened, ${refused.length} refused\n`);
      expect(refused.length).toBeGreaterThan(0);
      for (const refusal of refused) {
        expect(refusal.status).toBe(429);
        expect(Number(refusal.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      expect(delta(before, after, 'chat_handshakes_refused_total{reason="handshake_rate"}')).toBe(
        refused.length,
      );
    });

    it(
      'refuses WebSockets past maxConnections with 503 and Retry-After: 5, while /health and a member keep going',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target); // the bystander is one connection
        // Spread so that no address reaches its own caps (connections, handshake burst).
        const addresses = Math.ceil((maxConnections + 50) / Math.min(perAddress - 1, 25));
        const attempts = addresses * Math.ceil((maxConnections + 50) / addresses);
        const flood = await openMany(attempts, (i) => attacker(10 + (i % addresses)));
        const healthWhileFull = await httpGet(target, '/health', '127.0.0.3');
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        await closeAll(flood.opened);
        const afterwards = await openSocket(target.room('crowd'), attacker(9));
        await destroy(afterwards);
        process.stdout.write(
          `  ${attempts} attempts from ${addresses} addresses: ${flood.opened.length} opened, ` +
            `${flood.refused.length} refused, ${flood.failed} failed\n`,
        );
        expectWithstood('connection flood', report, scale.rssBoundMiB);
        expect(healthWhileFull.status).toBe(200);
        expect(flood.opened.length).toBe(maxConnections - 1);
        expect(flood.refused.length).toBe(attempts - maxConnections + 1);
        for (const refusal of flood.refused) {
          expect([refusal.status, refusal.headers['retry-after']]).toEqual([503, '5']);
        }
        expect(delta(before, after, 'chat_handshakes_refused_total{reason="connections"}')).toBe(
          flood.refused.length,
        );
      },
      timeout,
    );

    it('drops TCP connections that send nothing after handshakeTimeoutMs, and those past the per-address number at once', async () => {
      const { target } = server;
      const before = await scrape(target.httpUrl);
      const count = perAddress + 10;
      const clients = await Promise.all(
        Array.from({ length: count }, () =>
          RawClient.connect(target, attacker(3)).catch(() => undefined),
        ),
      );
      const opened = performance.now();
      const lived = await Promise.all(
        clients.map(async (client) => (client ? (await client.closed) - opened : 0)),
      );
      const after = await scrape(target.httpUrl);
      const early = lived.filter((ms) => ms < handshakeTimeoutMs / 2).length;
      process.stdout.write(
        `  silent: ${count} from one address, ${early} dropped at once, longest lived ${Math.round(Math.max(...lived))} ms\n`,
      );
      expect(Math.max(...lived)).toBeLessThan(handshakeTimeoutMs + 1500);
      expect(early).toBeGreaterThanOrEqual(10);
      expect(
        delta(before, after, 'chat_tcp_connections_dropped_total{reason="pending_per_address"}'),
      ).toBeGreaterThanOrEqual(10);
      expect(
        delta(before, after, 'chat_tcp_connections_dropped_total{reason="handshake_timeout"}'),
      ).toBeGreaterThanOrEqual(count - early);
    });

    it(
      'keeps /health and a member going while silent TCP connections keep coming from many addresses',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        let made = 0;
        let longest = 0;
        const live = new Set<RawClient>();
        await Promise.all(
          Array.from({ length: scale.silentAddresses * perAddress }, async (_, i) => {
            while (!watch.over(scale.seconds)) {
              const client = await RawClient.connect(
                target,
                attacker(20 + (i % scale.silentAddresses)),
              ).catch(() => undefined);
              if (!client) continue;
              made++;
              live.add(client);
              const openedAt = performance.now();
              // Held until the server drops it, or the attack ends.
              await Promise.race([
                client.closed,
                (async () => {
                  while (!watch.over(scale.seconds)) await sleep(100);
                })(),
              ]);
              longest = Math.max(longest, performance.now() - openedAt);
              live.delete(client);
              await client.destroy();
            }
          }),
        );
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        await Promise.all([...live].map((client) => client.destroy()));
        process.stdout.write(
          `  ${made} silent connections from ${scale.silentAddresses} addresses in ${report.seconds} s, ` +
            `longest held ${Math.round(longest)} ms\n`,
        );
        expectWithstood('silent connections', report, scale.rssBoundMiB);
        expect(longest).toBeLessThan(handshakeTimeoutMs + 1500);
        expect(
          delta(before, after, 'chat_tcp_connections_dropped_total{reason="handshake_timeout"}'),
        ).toBeGreaterThanOrEqual(scale.silentAddresses * perAddress);
      },
      timeout,
    );
  });

  describe('Unfinished messages', () => {
    const server = serverFor(scale);
    const messageTimeoutMs = Number(scale.env.MESSAGE_TIMEOUT_MS ?? 10_000);

    it(
      'closes sockets that leave a fragmented message unfinished with 1008 after messageTimeoutMs',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        // 200 KiB: within the frame size and the byte burst, so only the deadline can refuse it.
        const fragment = clientFrame(Opcode.Text, `{"message":"${'f'.repeat(200 * 1024)}`, false);
        const lived: number[] = [];
        const codes = new Map<string, number>();
        // All at once, 25 per address: under the handshake burst and the connection cap, so only
        // the deadline refuses.
        const addresses = Math.ceil(scale.fragments / 25);
        await eachLimit(
          Array.from({ length: scale.fragments }, (_, i) => i),
          scale.fragments,
          async (i) => {
            const client = await RawClient.upgrade(
              target,
              target.path(`fragments-${i % 10}`),
              attacker(i % addresses),
            );
            const sent = performance.now();
            await client.write(fragment);
            await Promise.race([client.closed, sleep(messageTimeoutMs * 1.5 + 5000)]);
            lived.push(client.closeFrameAt === undefined ? Infinity : client.closeFrameAt - sent);
            const key = `${client.closeCode} ${client.closeReason ?? ''}`;
            codes.set(key, (codes.get(key) ?? 0) + 1);
            await client.destroy();
          },
        );
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        process.stdout.write(
          `  ${scale.fragments} unfinished: closed ${JSON.stringify(Object.fromEntries(codes))}, ` +
            `longest ${Math.round(Math.max(...lived))} ms\n`,
        );
        expectWithstood('unfinished fragments', report, scale.rssBoundMiB);
        // Each is ended by the deadline (1008), or at once (1013) when the fragments all sockets
        // hold would pass maxUnfinishedBytes (64 MiB: 330 of these).
        const held = scale.fragments * fragment.length;
        const overBudget = held > Number(scale.env.MAX_UNFINISHED_BYTES ?? 64 * MiB);
        const timedOut = codes.get('1008 message timeout') ?? 0;
        const busy = codes.get('1013 server busy') ?? 0;
        expect({ timedOut: timedOut + busy, busy: busy > 0 }).toEqual({
          timedOut: scale.fragments,
          busy: overBudget,
        });
        // The deadline's contract: within 1.5 × messageTimeoutMs of the first byte.
        expect(Math.max(...lived)).toBeLessThan(messageTimeoutMs * 1.5 + 2000);
        expect(
          delta(before, after, 'chat_connections_closed_by_server_total{reason="message_timeout"}'),
        ).toBe(timedOut);
        expect(
          delta(
            before,
            after,
            'chat_connections_closed_by_server_total{reason="unfinished_budget"}',
          ),
        ).toBe(busy);
      },
      timeout,
    );

    it(
      'closes a socket that trickles one frame slower than messageTimeoutMs with 1008',
      async () => {
        const { target } = server;
        const frame = clientFrame(Opcode.Text, chatFrame(60_000));
        const client = await RawClient.upgrade(target, target.path('trickle'), BYSTANDER_ADDRESS);
        const started = performance.now();
        // A piece every 100 ms: the whole frame would take three times messageTimeoutMs.
        const piece = Math.ceil(frame.length / ((messageTimeoutMs * 3) / 100));
        for (let at = 0; at < frame.length && client.closeCode === undefined; at += piece) {
          await client.write(frame.subarray(at, at + piece));
          await Promise.race([sleep(100), client.closed]);
        }
        await client.closed;
        const lived = (client.closeFrameAt ?? Infinity) - started;
        expect([client.closeCode, client.closeReason]).toEqual([1008, 'message timeout']);
        expect(lived).toBeLessThan(messageTimeoutMs * 1.5 + 2000);
      },
      timeout,
    );
  });

  describe('CPU inside the rate limit: big nested invalid JSON at the frame rate', () => {
    const server = serverFor(scale);

    it(
      'refuses them by the byte rate (rate_limited) before parsing, and other users stay prompt',
      async () => {
        const { app, target } = server;
        const before = await scrape(target.httpUrl);
        const watch = await Watch.start(app, target);
        // Just under maxFrameBytes (256 KiB): deeply nested and never closed, so invalid JSON.
        const payload = `{"message":${'['.repeat(262_000)}`;
        const sent = { frames: 0, connections: 0 };
        const answered = new Map<string, number>();
        await Promise.all(
          Array.from({ length: scale.cpuAttackers }, async (_, i) => {
            // One pre-encoded frame: the attacker spends no CPU of its own per frame.
            const frame = clientFrame(Opcode.Text, payload);
            while (!watch.over(scale.seconds)) {
              const client = await RawClient.upgrade(
                target,
                target.path(`cpu-${i}`),
                attacker(i),
              ).catch(() => undefined);
              if (!client) {
                await sleep(500);
                continue;
              }
              sent.connections++;
              // 19 frames a second: under messagesPerSecond (20).
              while (!watch.over(scale.seconds) && !client.tcp.destroyed && !client.closeCode) {
                await client.write(frame);
                sent.frames++;
                await Promise.race([sleep(1000 / 19), client.closed]);
              }
              for (const [code, count] of client.errors)
                answered.set(code, (answered.get(code) ?? 0) + count);
              await client.destroy();
            }
          }),
        );
        const report = await watch.stop();
        const after = await scrape(target.httpUrl);
        process.stdout.write(
          `  ${sent.frames} frames of 256 KiB on ${sent.connections} connections; answers ` +
            `${JSON.stringify(Object.fromEntries(answered))}\n`,
        );
        expectWithstood('nested JSON', report, scale.rssBoundMiB);
        expect(answered.get('rate_limited') ?? 0).toBeGreaterThan(0);
        expect(delta(before, after, 'chat_rate_limited_total{limit="bytes"}')).toBeGreaterThan(0);
        // The byte rate lets through one such frame per 4 s per connection (64 KiB/s), plus the
        // burst: most are refused unparsed.
        expect(answered.get('invalid_json') ?? 0).toBeLessThan(sent.frames / 4);
      },
      timeout,
    );
  });

  describe('Names', () => {
    const server = serverFor(scale);

    /** Joins as `name`: the first error's code and the close code, or the name it chats as. */
    async function joinAs(
      name: string,
    ): Promise<{ user?: string; error?: string; close?: number }> {
      let settle!: (result: { user?: string; error?: string }) => void;
      const result = new Promise<{ user?: string; error?: string }>(
        (resolve) => (settle = resolve),
      );
      const socket = await openSocket(
        server.target.room('names', `name=${encodeURIComponent(name)}`),
        BYSTANDER_ADDRESS,
        (text) => {
          const frame = JSON.parse(text) as { type: string; user?: string; code?: string };
          if (frame.type === 'history') settle({ user: frame.user });
          if (frame.type === 'error') settle({ error: frame.code });
        },
      );
      const closed = closeCodeOf(socket);
      void closed.then(() => settle({}));
      const seen = await result;
      if (seen.user !== undefined) {
        await destroy(socket);
        return seen;
      }
      return { ...seen, close: await closed };
    }

    it.each([
      ['Latin and Cyrillic mixed (Cyrillic а)', '\u0430nn'],
      ['Latin and Greek mixed (Greek ο)', 'b\u03bfb'],
      ['a Hangul filler (U+3164)', '\u3164'],
      ['a Hangul choseong filler (U+115F)', '\u115f\u1160'],
      ['a braille blank (U+2800)', '\u2800\u2800'],
      ['blanks', '   '],
      ['zero-width space and joiner', '\u200b\u200d'],
    ])('refuses a name of %s with invalid_name and 1008', async (_, name) => {
      await expect(joinAs(name)).resolves.toEqual({ error: 'invalid_name', close: 1008 });
    });

    it.each([
      ['full-width Latin, NFKC-normalized', '\uff46\uff55\uff4c\uff4c', 'full'],
      ['all Cyrillic', '\u0430\u043d\u043d\u0430', '\u0430\u043d\u043d\u0430'],
      ['Latin with surrounding blanks, trimmed', '  ann  ', 'ann'],
    ])('accepts a name of %s', async (_, name, chatsAs) => {
      await expect(joinAs(name)).resolves.toEqual({ user: chatsAs });
    });
  });
}
