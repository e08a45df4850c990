import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { ChatTestClient, HandshakeRefused } from '../src/testing/index.js';
import { waitFor } from './channel-layer.conformance.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { Frame, drain, expectNoneOf, nextOf, takeOf } from './support/frames.js';
import { sample, scrape } from './support/metrics.js';

describe('Origin check (allowedOrigins)', () => {
  let chat: RunningChatApp;
  let ownOrigin: string;

  beforeAll(async () => {
    chat = await startChatApp();
    ownOrigin = chat.httpUrl;
  });

  afterAll(async () => {
    await chat.close();
  });

  it('accepts a page of the server’s own host', async () => {
    const client = await ChatTestClient.connect(chat.wsUrl(), { origin: ownOrigin });
    await client.greeted();
    await client.close();
  });

  it('accepts a client that sends no Origin (bots, CLIs)', async () => {
    const client = await chat.join();
    await client.close();
  });

  it('refuses another origin with HTTP 403 and opens no socket', async () => {
    const before = await scrape(chat.httpUrl);
    await expect(
      ChatTestClient.connect(chat.wsUrl(), { origin: 'http://evil.example' }),
    ).rejects.toEqual(new HandshakeRefused(403));
    const after = await scrape(chat.httpUrl);
    expect(sample(after, 'chat_connections_opened_total')).toBe(
      sample(before, 'chat_connections_opened_total'),
    );
    expect(sample(after, 'chat_handshakes_refused_total{reason="origin"}')).toBe(
      sample(before, 'chat_handshakes_refused_total{reason="origin"}') + 1,
    );
  });

  it('refuses a Host the server is not reachable as, even with a matching Origin (DNS rebinding)', async () => {
    const before = await scrape(chat.httpUrl);
    await expect(
      ChatTestClient.connect(chat.wsUrl(), {
        origin: 'http://evil.example',
        headers: { host: 'evil.example' },
      }),
    ).rejects.toEqual(new HandshakeRefused(403));
    const client = await ChatTestClient.connect(chat.wsUrl(), {
      origin: chat.httpUrl.replace('127.0.0.1', 'localhost'),
      headers: { host: chat.httpUrl.replace('http://127.0.0.1', 'localhost') },
    });
    await client.greeted();
    await client.close();
    const after = await scrape(chat.httpUrl);
    expect(sample(after, 'chat_handshakes_refused_total{reason="host"}')).toBe(
      sample(before, 'chat_handshakes_refused_total{reason="host"}') + 1,
    );
  });

  it('refuses the same host on another port', async () => {
    const otherPort = ownOrigin.replace(/:(\d+)$/, (_, port: string) => `:${Number(port) + 1}`);
    await expect(ChatTestClient.connect(chat.wsUrl(), { origin: otherPort })).rejects.toEqual(
      new HandshakeRefused(403),
    );
  });

  describe('with allowedOrigins and rejectMissingOrigin', () => {
    let strict: RunningChatApp;

    beforeAll(async () => {
      strict = await startChatApp({
        allowedOrigins: ['https://chat.example.com'],
        rejectMissingOrigin: true,
      });
    });

    afterAll(async () => {
      await strict.close();
    });

    it('accepts a listed origin', async () => {
      const client = await ChatTestClient.connect(strict.wsUrl(), {
        origin: 'https://chat.example.com',
      });
      await client.greeted();
      await client.close();
    });

    it('refuses the server’s own host when it is not listed', async () => {
      await expect(
        ChatTestClient.connect(strict.wsUrl(), { origin: strict.httpUrl }),
      ).rejects.toEqual(new HandshakeRefused(403));
    });

    it('refuses a handshake without Origin', async () => {
      await expect(ChatTestClient.connect(strict.wsUrl())).rejects.toEqual(
        new HandshakeRefused(403),
      );
    });
  });
});

describe('Rate limit (token bucket per connection)', () => {
  let chat: RunningChatApp;
  const rateLimit = {
    messagesPerSecond: 50,
    burst: 5,
    maxViolations: 3,
    violationWindowMs: 10_000,
  };

  beforeAll(async () => {
    chat = await startChatApp({ rateLimit });
  });

  afterAll(async () => {
    await chat.close();
  });

  it('answers a frame over the rate with rate_limited, and nobody sees it', async () => {
    const [sender, bystander] = await Promise.all([chat.join(), chat.join()]);
    for (let i = 0; i < 6; i++) sender.send({ message: `m${i}` });
    const frames = await takeOf(sender, 6, 'chat', 'error');
    expect(frames.filter((frame) => frame.type === 'chat')).toHaveLength(5);
    expect(frames.filter((frame) => frame.type === 'error')).toEqual([
      { type: 'error', code: 'rate_limited', message: expect.any(String) },
    ]);
    const seen = await takeOf(bystander, 5, 'chat');
    expect(seen.map((frame) => frame.message)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    await expectNoneOf(bystander, 100, 'chat', 'error');
    await Promise.all([sender.close(), bystander.close()]);
  });

  it('never limits a client that stays within the rate', async () => {
    const client = await chat.join();
    for (let i = 0; i < 5; i++) client.send({ message: `a${i}` });
    const first = await takeOf(client, 5, 'chat', 'error');
    await new Promise((resolve) => setTimeout(resolve, 150)); // 50/s refills the 5 tokens
    for (let i = 0; i < 5; i++) client.send({ message: `b${i}` });
    const second = await takeOf(client, 5, 'chat', 'error');
    expect([...first, ...second].every((frame) => frame.type === 'chat')).toBe(true);
    await client.close();
  });

  it('closes a client that keeps going with 1008, and only that one', async () => {
    const [flooder, other] = await Promise.all([chat.join(), chat.join()]);
    const before = await scrape(chat.httpUrl);
    for (let i = 0; i < 20; i++) flooder.send({ message: `f${i}` });
    await expect(flooder.closedByServer()).resolves.toMatchObject({ code: 1008 });
    const errors = flooder.pending.filter((frame) => (frame as Frame).code === 'rate_limited');
    expect(errors).toHaveLength(rateLimit.maxViolations);
    other.send({ message: 'unaffected' });
    await expect(other.nextOfType('chat')).resolves.toMatchObject({ message: 'f0' });
    const after = await scrape(chat.httpUrl);
    expect(
      sample(after, 'chat_connections_closed_by_server_total{reason="rate_limited"}') -
        sample(before, 'chat_connections_closed_by_server_total{reason="rate_limited"}'),
    ).toBe(1);
    await other.close();
  });
});

describe('Heartbeats', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp({ heartbeatIntervalMs: 100 });
  });

  afterAll(async () => {
    await chat.close();
  });

  it('terminates a socket that stops answering pings, which frees its group membership', async () => {
    const before = (await chat.layer.groupChannels('test')).length;
    // A half-open peer: its TCP connection is up, but nothing answers.
    const silent = new WebSocket(chat.wsUrl(), { autoPong: false });
    await new Promise((resolve) => silent.once('message', resolve));
    expect(await chat.layer.groupChannels('test')).toHaveLength(before + 1);
    const code = await new Promise<number>((resolve) => silent.once('close', resolve));
    expect(code).toBe(1006); // terminated: no close frame
    await waitFor(async () => (await chat.layer.groupChannels('test')).length === before);
    const metrics = await scrape(chat.httpUrl);
    expect(
      sample(metrics, 'chat_connections_closed_by_server_total{reason="heartbeat_timeout"}'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('keeps a socket that answers pings, however quiet it is', async () => {
    const client = await chat.join();
    await expectNoneOf(client, 500, 'chat', 'error'); // five intervals, open all along
    client.send({ message: 'still here' });
    await expect(nextOf(client, 'chat')).resolves.toMatchObject({ message: 'still here' });
    await client.close();
  });
});

describe('Slow consumers (drop and tell)', () => {
  let chat: RunningChatApp;
  const maxBufferedBytes = 1024 * 1024; // the default

  beforeAll(async () => {
    chat = await startChatApp({ rateLimit: false, heartbeatIntervalMs: 0 });
  });

  afterAll(async () => {
    await chat.close();
  });

  it('bounds what a reader that never reads holds, while the others get every message promptly', async () => {
    const [slow, sender, fast] = await Promise.all([chat.join(), chat.join(), chat.join()]);
    const tcp = (slow.socket as unknown as { _socket: Socket })._socket;
    tcp.pause();
    // 16 MiB to each member, far more than the kernel's socket buffers hold, in bursts of 400 KiB
    // that the readers keep up with.
    const count = 1000;
    const burst = 25;
    const body = 'x'.repeat(16 * 1024);
    for (let sent = 0; sent < count; sent += burst) {
      for (let i = sent; i < sent + burst; i++) sender.send({ message: `${i}:${body}` });
      for (const member of [fast, sender]) {
        for (let i = sent; i < sent + burst; i++) {
          const frame = await nextOf(member, 'chat');
          expect(frame.message?.slice(0, frame.message.indexOf(':'))).toBe(String(i));
        }
      }
    }
    const flooded = await scrape(chat.httpUrl);
    expect(sample(flooded, 'chat_send_buffer_bytes')).toBeLessThanOrEqual(
      maxBufferedBytes + body.length + 1024,
    );
    expect(sample(flooded, 'chat_deliveries_dropped_total')).toBeGreaterThan(0);

    // The room goes on at full speed while the slow reader is still stuck.
    const started = performance.now();
    sender.send({ message: 'probe' });
    await expect(nextOf(fast, 'chat')).resolves.toMatchObject({ message: 'probe' });
    expect(performance.now() - started).toBeLessThan(250);
    await nextOf(sender, 'chat');

    // Nor do pongs and error frames queue for it: they would grow memory as chat messages would.
    for (let i = 0; i < 5; i++) slow.socket.ping(`p${i}`);
    slow.socket.send('not json');
    await waitFor(async () => {
      const metrics = await scrape(chat.httpUrl);
      return (
        sample(metrics, 'chat_pongs_skipped_total') === 5 &&
        sample(metrics, 'chat_errors_skipped_total') === 1
      );
    });

    // Once it reads again it gets what was queued, then how many it missed, then new messages.
    tcp.resume();
    await waitFor(async () => sample(await scrape(chat.httpUrl), 'chat_send_buffer_bytes') === 0);
    sender.send({ message: 'after' });
    const delivered: string[] = [];
    let notice: Frame | undefined;
    for (;;) {
      const frame = await nextOf(slow, 'chat', 'error');
      if (frame.type === 'error') notice = frame;
      else if (frame.message === 'after') break;
      else if (frame.message !== 'probe') delivered.push(frame.message?.split(':')[0] ?? '');
    }
    expect(notice).toEqual({
      type: 'error',
      code: 'messages_dropped',
      message: expect.any(String),
      count: expect.any(Number),
    });
    // Nothing vanished silently: each message was delivered, in order, or counted as dropped.
    expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => String(i)));
    expect(delivered.length + (notice?.count ?? 0)).toBe(count + 1); // + the probe
    await Promise.all([slow.close(), sender.close(), fast.close()]);
  });
});

describe('Health and metrics', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp();
  });

  afterAll(async () => {
    await chat.close();
  });

  it('answers GET /health (liveness)', async () => {
    const response = await fetch(`${chat.httpUrl}/health`);
    expect(response.status).toBe(200);
    await expect(response.json()).resolves.toMatchObject({ status: 'ok' });
  });

  it('answers GET /health/ready with the channel layer up', async () => {
    const response = await fetch(`${chat.httpUrl}/health/ready`);
    expect(response.status).toBe(200);
    await expect(response.json()).resolves.toMatchObject({
      status: 'ok',
      info: { channel_layer: { status: 'up' } },
    });
  });

  it('still serves the lobby at /', async () => {
    const response = await fetch(`${chat.httpUrl}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('serves GET /metrics in Prometheus text format', async () => {
    const response = await fetch(`${chat.httpUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain;.*version=0\.0\.4/);
    const text = await response.text();
    for (const name of [
      'chat_connections',
      'chat_rooms',
      'chat_frames_received_total',
      'chat_frames_sent_total',
      'chat_deliveries_total',
      'chat_deliveries_dropped_total',
      'chat_errors_total',
      'chat_layer_operation_seconds',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

  it('counts connections, rooms, frames, deliveries, errors and layer latency', async () => {
    const before = await scrape(chat.httpUrl);
    const [a, b] = await Promise.all([chat.join(), chat.join()]);
    a.send({ message: 'counted' });
    a.send('not json');
    // Everything written to the two sockets: the greetings (taken by join) and what follows.
    const frames = [...(await drain(a)), ...(await drain(b))];
    const after = await scrape(chat.httpUrl);
    const delta = (key: string): number => sample(after, key) - sample(before, key);
    expect(sample(after, 'chat_connections')).toBe(2);
    expect(sample(after, 'chat_rooms')).toBe(1);
    expect(delta('chat_connections_opened_total')).toBe(2);
    expect(delta('chat_frames_received_total')).toBe(2);
    expect(delta('chat_frames_sent_total')).toBe(2 + frames.length);
    expect(frames.filter((frame) => frame.type === 'chat')).toHaveLength(2);
    expect(delta('chat_deliveries_total')).toBeGreaterThanOrEqual(2);
    expect(delta('chat_errors_total{code="invalid_json"}')).toBe(1);
    expect(
      delta('chat_layer_operation_seconds_count{operation="group_send"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(delta('chat_layer_operation_seconds_count{operation="group_add"}')).toBe(2);
    await Promise.all([a.close(), b.close()]);
    await waitFor(async () => sample(await scrape(chat.httpUrl), 'chat_connections') === 0);
    expect(sample(await scrape(chat.httpUrl), 'chat_rooms')).toBe(0);
  });

  it('reports not ready (503), but still alive, when the channel layer is down', async () => {
    await chat.layer.close();
    const ready = await fetch(`${chat.httpUrl}/health/ready`);
    expect(ready.status).toBe(503);
    await expect(ready.json()).resolves.toMatchObject({
      status: 'error',
      error: { channel_layer: { status: 'down' } },
    });
    expect((await fetch(`${chat.httpUrl}/health`)).status).toBe(200);
  });
});

describe('Per-address limits behind a proxy (trustProxyHops)', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp({ trustProxyHops: 1, maxConnectionsPerAddress: 2 });
  });

  afterAll(async () => {
    await chat.close();
  });

  const via = (client: string, claimed = '203.0.113.99'): Promise<ChatTestClient> =>
    ChatTestClient.connect(chat.wsUrl(), {
      headers: { 'x-forwarded-for': `${claimed}, ${client}` },
    }).then((socket) => socket.greeted());

  it('counts each client by the address the proxy appended, not by the proxy or a claim', async () => {
    const first = [await via('198.51.100.1'), await via('198.51.100.1', '192.0.2.1')];
    await expect(via('198.51.100.1', '192.0.2.2')).rejects.toEqual(new HandshakeRefused(429));
    const other = await via('198.51.100.2');
    const metrics = await scrape(chat.httpUrl);
    expect(sample(metrics, 'chat_connection_addresses')).toBe(2);
    expect(sample(metrics, 'chat_handshakes_refused_total{reason="connections_per_address"}')).toBe(
      1,
    );
    await Promise.all([...first, other].map((client) => client.close()));
    await waitFor(async () => sample(await scrape(chat.httpUrl), 'chat_connections') === 0);
    const again = await via('198.51.100.1');
    await again.close();
  });
});

describe('What a handshake may hold', () => {
  it('gives authenticate handshakeTimeoutMs to decide, then refuses with 503', async () => {
    const chat = await startChatApp({
      authenticate: () => new Promise<never>(() => undefined),
      handshakeTimeoutMs: 300,
    });
    try {
      await expect(ChatTestClient.connect(chat.wsUrl())).rejects.toEqual(new HandshakeRefused(503));
      const metrics = await scrape(chat.httpUrl);
      expect(sample(metrics, 'chat_handshakes_refused_total{reason="auth_timeout"}')).toBe(1);
    } finally {
      await chat.close();
    }
  });

  it('counts handshakes against maxConnections while authenticate decides', async () => {
    const chat = await startChatApp({
      authenticate: async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        return { id: 'u' };
      },
      maxConnections: 2,
    });
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 4 }, () =>
          ChatTestClient.connect(chat.wsUrl()).then(
            async (client) => {
              await client.greeted();
              return client;
            },
            (error: unknown) => error,
          ),
        ),
      );
      const opened = outcomes.filter((outcome) => outcome instanceof ChatTestClient);
      expect(opened).toHaveLength(2);
      expect(outcomes.filter((outcome) => outcome instanceof HandshakeRefused)).toEqual([
        new HandshakeRefused(503),
        new HandshakeRefused(503),
      ]);
      await Promise.all(opened.map((client) => client.close()));
    } finally {
      await chat.close();
    }
  });

  it('drops a kept-alive HTTP connection that trickles its next request head', async () => {
    const chat = await startChatApp({ handshakeTimeoutMs: 300 });
    try {
      const { port } = new URL(chat.httpUrl);
      const socket = connect(Number(port), '127.0.0.1');
      const closed = new Promise<number>((resolve) =>
        socket.once('close', () => resolve(Date.now())),
      );
      let answered = '';
      const firstResponse = new Promise<void>((resolve) =>
        socket.on('data', (chunk: Buffer) => {
          answered += chunk.toString();
          if (answered.includes('"status":"ok"')) resolve();
        }),
      );
      socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await firstResponse;
      const started = Date.now();
      const trickle = setInterval(() => socket.write('X'), 50);
      socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
      const at = await closed;
      clearInterval(trickle);
      expect(at - started).toBeLessThan(2000);
      const metrics = await scrape(chat.httpUrl);
      expect(
        sample(metrics, 'chat_tcp_connections_dropped_total{reason="handshake_timeout"}'),
      ).toBe(1);
    } finally {
      await chat.close();
    }
  });
});

describe("A join's history", () => {
  it('is cut to the newest records whose frame fits maxBufferedBytes, JSON escapes included', async () => {
    const maxBufferedBytes = 16 * 1024;
    const chat = await startChatApp({ maxBufferedBytes, historyBytes: 1024 * 1024 });
    try {
      const sender = await chat.join('/ws/socket-server/?room=escapes');
      // Each control character is six bytes of JSON: every message is about 6 KiB on the wire.
      for (let i = 0; i < 10; i++) {
        sender.send({ message: `${i}${'\u0001'.repeat(1000)}` });
        await nextOf(sender, 'chat');
      }
      const raw = new WebSocket(chat.wsUrl('/ws/socket-server/?room=escapes'));
      const frames = await new Promise<Buffer[]>((resolve, reject) => {
        const received: Buffer[] = [];
        raw.on('message', (data: Buffer) => {
          received.push(data);
          if (received.length === 2) resolve(received);
        });
        raw.once('error', reject);
      });
      raw.close();
      expect(frames[1].length).toBeLessThanOrEqual(maxBufferedBytes);
      const history = JSON.parse(frames[1].toString()) as { messages: { message: string }[] };
      const kept = history.messages.map((record) => record.message.slice(0, 1));
      expect(kept.length).toBeGreaterThan(0);
      expect(kept).toEqual(
        Array.from({ length: kept.length }, (_, i) => String(10 - kept.length + i)),
      );
      const metrics = await scrape(chat.httpUrl);
      expect(sample(metrics, 'chat_join_history_trimmed_total')).toBe(10 - kept.length);
      await sender.close();
    } finally {
      await chat.close();
    }
  });
});

describe('The send budget of all sockets together (maxTotalBufferedBytes)', () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    chat = await startChatApp({
      rateLimit: false,
      heartbeatIntervalMs: 0,
      maxTotalBufferedBytes: 1024 * 1024,
    });
  });

  afterAll(async () => {
    await chat.close();
  });

  it('cuts every socket’s allowance while slow readers hold more, and restores it once they read', async () => {
    const limit = async (): Promise<number> =>
      sample(await scrape(chat.httpUrl), 'chat_send_limit_bytes');
    expect(await limit()).toBe(1024 * 1024);
    const slow = await Promise.all([chat.join(), chat.join()]);
    const [sender, fast] = await Promise.all([chat.join(), chat.join()]);
    const streams = slow.map((client) => (client.socket as unknown as { _socket: Socket })._socket);
    for (const tcp of streams) tcp.pause();
    const body = 'x'.repeat(16 * 1024);
    // Three at a time, each batch read before the next is sent: what the readers hold stays
    // under even the cut allowance (64 KiB), so only the paused ones can fill the total.
    for (let sent = 0; sent < 999; sent += 3) {
      for (let i = sent; i < sent + 3; i++) sender.send({ message: `${i}:${body}` });
      for (const member of [fast, sender]) await takeOf(member, 3, 'chat');
    }
    await waitFor(async () => (await limit()) === 64 * 1024);
    for (const tcp of streams) tcp.resume();
    await waitFor(async () => (await limit()) === 1024 * 1024);
    await Promise.all([...slow, sender, fast].map((client) => client.close()));
  });
});

describe('Messages still arriving (maxUnfinishedBytes)', () => {
  it('closes, with 1013, the socket whose unfinished message takes all of them past the bound', async () => {
    const chat = await startChatApp({ maxUnfinishedBytes: 100 * 1024, messageTimeoutMs: 0 });
    try {
      const open = (): Promise<WebSocket> =>
        new Promise((resolve, reject) => {
          const socket = new WebSocket(chat.wsUrl());
          socket.once('open', () => resolve(socket)).once('error', reject);
        });
      const first = await open();
      const second = await open();
      const part = `{"message":"${'u'.repeat(60 * 1024)}`;
      first.send(part, { fin: false });
      await waitFor(
        async () => sample(await scrape(chat.httpUrl), 'chat_unfinished_bytes') > 60 * 1024,
      );
      const closed = new Promise<number>((resolve) => second.once('close', resolve));
      second.send(part, { fin: false });
      await expect(closed).resolves.toBe(1013);
      const metrics = await scrape(chat.httpUrl);
      expect(
        sample(metrics, 'chat_connections_closed_by_server_total{reason="unfinished_budget"}'),
      ).toBe(1);
      // The first finishes its message: it was never at fault.
      const echoed = new Promise<string>((resolve) =>
        first.on('message', (data: Buffer) => {
          const frame = JSON.parse(data.toString()) as { type: string; message?: string };
          if (frame.type === 'chat') resolve(frame.message ?? '');
        }),
      );
      first.send('"}', { fin: true });
      await expect(echoed).resolves.toHaveLength(60 * 1024);
      await waitFor(async () => sample(await scrape(chat.httpUrl), 'chat_unfinished_bytes') === 0);
      first.close();
    } finally {
      await chat.close();
    }
  });
});
