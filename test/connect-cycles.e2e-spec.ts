import { isDeepStrictEqual } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChatTestClient } from '../src/testing/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { sample, scrape } from './support/metrics.js';

/**
 * Connect, greet, disconnect, many times: nothing may grow. The suite runs 2,000 cycles;
 * `npm run soak` runs 50,000 (SOAK_CYCLES) and also holds the heap to a bound.
 */
const CYCLES = Number(process.env.SOAK_CYCLES ?? 2000);
const CONCURRENCY = 20;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** What must come back to where it was. */
async function footprint(chat: RunningChatApp) {
  const metrics = await scrape(chat.httpUrl);
  const server = chat.app.getHttpServer() as NodeJS.EventEmitter;
  const resources = process.getActiveResourcesInfo();
  return {
    connections: sample(metrics, 'chat_connections'),
    rooms: sample(metrics, 'chat_rooms'),
    sendBufferBytes: sample(metrics, 'chat_send_buffer_bytes'),
    groupMembers: (await chat.layer.groupChannels('test')).length,
    timers: resources.filter((name) => name === 'Timeout').length,
    sockets: resources.filter((name) => name === 'TCPSocketWrap').length,
    serverListeners: server.eventNames().reduce((sum, name) => sum + server.listenerCount(name), 0),
    processListeners: process
      .eventNames()
      .reduce((sum, name) => sum + process.listenerCount(name as string), 0),
  };
}

/**
 * The footprint once it holds still: after a burst, closing handshakes and a pending presence
 * announcement (a timer) take moments to go, and a baseline taken among them would be too high.
 */
async function settled(chat: RunningChatApp) {
  let last = await footprint(chat);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = await footprint(chat);
    if (isDeepStrictEqual(now, last) && now.connections === 0) return now;
    last = now;
  }
  throw new Error(`the footprint did not settle: ${JSON.stringify(last)}`);
}

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe(`${CYCLES} connect/disconnect cycles`, () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp();
  });

  afterAll(async () => {
    await chat.close();
  });

  async function cycles(count: number): Promise<void> {
    let left = count;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) {
          const client = await ChatTestClient.connect(chat.wsUrl());
          await client.greeted();
          await client.close();
        }
      }),
    );
  }

  it(
    'leaves no connection, membership, timer, socket or listener behind',
    async () => {
      await cycles(200); // warm up: lazy singletons, JIT, pools
      const before = await settled(chat);
      const heapBefore = heapUsed();
      const started = Date.now();
      await cycles(CYCLES);
      const took = Date.now() - started;
      // Closing handshakes, fetch's pooled connection and the like settle within moments; a leak
      // never does.
      let after = await footprint(chat);
      await waitFor(async () => {
        after = await footprint(chat);
        return isDeepStrictEqual(after, before);
      }, 10_000).catch(() => undefined);
      expect(after).toEqual(before);
      const grewBy = heapUsed() - heapBefore;
      process.stdout.write(
        `${CYCLES} cycles in ${took} ms (${Math.round((CYCLES / took) * 1000)}/s), ` +
          `heap ${grewBy >= 0 ? '+' : ''}${Math.round(grewBy / 1024)} KiB\n`,
      );
      // A leak grows with the cycles: 200 bytes each is 10 MB at 50,000. Measured: about +1.5 MiB
      // after 2,000 and after 20,000 cycles alike, i.e. residue of the warm-up, not per cycle.
      expect(grewBy).toBeLessThan(8 * 1024 * 1024);
      const metrics = await scrape(chat.httpUrl);
      expect(sample(metrics, 'chat_connections_opened_total')).toBeGreaterThanOrEqual(CYCLES + 200);
    },
    60_000 + CYCLES * 10,
  );
});
