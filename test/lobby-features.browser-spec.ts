import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { AddressInfo } from 'node:net';
import { Browser, Page, WebSocketRoute } from 'playwright-core';
import { InMemoryRoomState } from '../src/rooms/in-memory-room-state.js';
import { ChatRecord } from '../src/rooms/room-state.js';
import { ChatModule, LOBBY_CSP } from '../src/index.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { launchChromium } from './support/chromium.js';

/** A room name no other test uses. */
const roomName = (label: string): string => `${label}-${Math.random().toString(36).slice(2, 8)}`;

const PHONE = { width: 390, height: 780 };

type Frame = Record<string, unknown>;

describe('The lobby: typing, an outbox of pending messages, and what a new user saw', () => {
  let browser: Browser;
  let chat: RunningChatApp;

  beforeAll(async () => {
    browser = await launchChromium();
    chat = await startChatApp();
  });

  afterAll(async () => {
    await browser?.close();
    await chat?.close();
  });

  /** What each page's sockets sent and received, parsed, from its first socket on. */
  const wire = new WeakMap<Page, { sent: Frame[]; received: Frame[] }>();

  /** Opens the lobby at `/?room=<room>` as `name` (remembered, as a returning visitor's). */
  async function openLobby(
    app: RunningChatApp | string,
    room: string,
    name: string,
    options: Parameters<Browser['newPage']>[0] = {},
  ): Promise<Page> {
    const page = await browser.newPage(options);
    const frames = { sent: [] as Frame[], received: [] as Frame[] };
    wire.set(page, frames);
    page.on('websocket', (socket) => {
      socket.on('framesent', ({ payload }) => frames.sent.push(JSON.parse(String(payload))));
      socket.on('framereceived', ({ payload }) =>
        frames.received.push(JSON.parse(String(payload))),
      );
    });
    await page.addInitScript(`localStorage.setItem('lobby.name', ${JSON.stringify(name)})`);
    await page.goto(`${typeof app === 'string' ? app : app.httpUrl}/?room=${room}`);
    await page.locator('#connection[data-state="live"]').waitFor();
    return page;
  }

  async function post(page: Page, message: string): Promise<void> {
    await page.fill('form#form input[name="message"]', message);
    await page.press('form#form input[name="message"]', 'Enter');
  }

  /** The message elements whose text is exactly `text`. */
  const messages = (page: Page, text: string) =>
    page.locator('#messages .msg').filter({ has: page.locator('p', { hasText: text }) });

  const sentFrames = (page: Page): Frame[] => wire.get(page)!.sent;
  const receivedFrames = (page: Page): Frame[] => wire.get(page)!.received;

  describe('typing', () => {
    it('shows each page that the other is typing, and hides it a few seconds after', async () => {
      const room = roomName('typing');
      const ann = await openLobby(chat, room, 'ann');
      const bob = await openLobby(chat, room, 'bob');
      await bob.locator('#people .name', { hasText: 'ann' }).waitFor();

      await ann.locator('input[name="message"]').pressSequentially('hel');
      await bob.locator('#typing', { hasText: 'ann is typing…' }).waitFor();
      // The sender is not told about itself.
      await expect(ann.locator('#typing').textContent()).resolves.toBe('');

      await bob.locator('input[name="message"]').pressSequentially('hi');
      await ann.locator('#typing', { hasText: 'bob is typing…' }).waitFor();

      // No "stopped" frame: the hint goes once no typing frame came for about 5 s.
      const shown = Date.now();
      await ann.locator('#typing').filter({ hasText: /^$/ }).waitFor({ timeout: 10_000 });
      expect(Date.now() - shown).toBeGreaterThan(3_500);
      await Promise.all([ann.close(), bob.close()]);
    }, 30_000);

    it('sends one typing frame per few seconds however fast the person types', async () => {
      const room = roomName('typing-rate');
      const ann = await openLobby(chat, room, 'ann');
      const sent = sentFrames(ann);
      const watcher = await chat.join(`/ws/socket-server/?room=${room}&name=watcher`);
      await ann.locator('input[name="message"]').pressSequentially('a quick sentence');
      await expect(watcher.nextOfType('typing')).resolves.toEqual({ type: 'typing', user: 'ann' });
      // A message after the keystrokes: the server handles each sender's frames in order, so
      // every typing frame the keystrokes caused is in before its echo.
      await post(ann, 'barrier');
      for (;;) {
        const frame = await watcher.nextOfType<ChatRecord>('chat');
        if (frame.message === 'barrier') break;
      }
      expect(sent.filter((frame) => frame.type === 'typing')).toHaveLength(1);
      await ann.close();
    });

    it('hides the hint when the typist’s message arrives', async () => {
      const room = roomName('typing-sent');
      const ann = await openLobby(chat, room, 'ann');
      const bob = await openLobby(chat, room, 'bob');
      await bob.locator('#people .name', { hasText: 'ann' }).waitFor();
      await ann.locator('input[name="message"]').pressSequentially('done');
      await bob.locator('#typing', { hasText: 'ann is typing…' }).waitFor();
      await ann.press('input[name="message"]', 'Enter');
      await messages(bob, 'done').waitFor();
      await expect(bob.locator('#typing').textContent()).resolves.toBe('');
      await Promise.all([ann.close(), bob.close()]);
    });
  });

  describe('messages until the server has them', () => {
    it('shows a sent message once, merged with its echo, under the id its ack names', async () => {
      const room = roomName('ack');
      const ann = await openLobby(chat, room, 'ann');
      const sent = sentFrames(ann);
      const received = receivedFrames(ann);
      await post(ann, 'one of mine');
      await ann.locator('#messages .msg:not(.pending)', { hasText: 'one of mine' }).waitFor();
      await post(ann, 'barrier');
      await ann.locator('#messages .msg:not(.pending)', { hasText: 'barrier' }).waitFor();

      const frame = sent.find((candidate) => candidate.message === 'one of mine');
      expect(frame?.id).toMatch(/^[\x21-\x7e]{1,64}$/);
      const ack = received.find(
        (candidate) => candidate.type === 'ack' && candidate.id === frame?.id,
      );
      const echo = received.find(
        (candidate) => candidate.type === 'chat' && candidate.message === 'one of mine',
      );
      expect(ack?.message_id).toBe(echo?.id);
      await expect(messages(ann, 'one of mine').count()).resolves.toBe(1);
      await expect(messages(ann, 'one of mine').getAttribute('data-id')).resolves.toBe(echo?.id);
      await expect(ann.locator('#messages .status').count()).resolves.toBe(0);
      // Each message its own id.
      expect(new Set(sent.filter((f) => 'message' in f).map((f) => f.id)).size).toBe(2);
      await ann.close();
    });

    /**
     * A page whose socket the test plays: the frames the page sends come to `onFrame`, and
     * `server.send` answers in whatever order a test needs.
     */
    async function pageWithFakeServer(
      onFrame: (frame: Record<string, unknown>, server: WebSocketRoute) => void,
    ): Promise<Page> {
      const page = await browser.newPage();
      await page.addInitScript("localStorage.setItem('lobby.name', 'ann')");
      await page.routeWebSocket(/\/ws\/socket-server/, (server) => {
        server.send(
          JSON.stringify({ type: 'connection_established', message: 'You are connected!' }),
        );
        server.send(JSON.stringify({ type: 'history', room: 'r', user: 'ann', messages: [] }));
        server.onMessage((data) => onFrame(JSON.parse(String(data)), server));
      });
      await page.goto(`${chat.httpUrl}/?room=r`);
      await page.locator('#connection[data-state="live"]').waitFor();
      return page;
    }

    const chatFrame = (message: unknown, id: string) =>
      JSON.stringify({ type: 'chat', message, room: 'r', user: 'ann', id, ts: Date.now() });

    it('merges an ack that comes before the echo, and one that comes after it', async () => {
      let next = 1;
      const page = await pageWithFakeServer((frame, server) => {
        if (typeof frame.message !== 'string') return;
        const id = `1764300000000-${next++}`;
        const ack = JSON.stringify({ type: 'ack', id: frame.id, message_id: id });
        if (frame.message.startsWith('ack first')) server.send(ack);
        server.send(chatFrame(frame.message, id));
        if (!frame.message.startsWith('ack first')) server.send(ack);
      });
      await post(page, 'ack first');
      await post(page, 'echo first');
      await page.locator('#messages .msg:not(.pending)', { hasText: 'echo first' }).waitFor();
      await page.locator('#messages .msg:not(.pending)', { hasText: 'ack first' }).waitFor();
      await expect(page.locator('#messages p').allTextContents()).resolves.toEqual([
        'ack first',
        'echo first',
      ]);
      await expect(
        page
          .locator('#messages .msg')
          .evaluateAll((items) =>
            items.map((item) => (item as unknown as { dataset: { id: string } }).dataset.id),
          ),
      ).resolves.toEqual(['1764300000000-1', '1764300000000-2']);
      await page.close();
    });

    it('shows a refused message as failed, with the reason, and sends it again on Retry', async () => {
      let refuse = true;
      const ids: unknown[] = [];
      const page = await pageWithFakeServer((frame, server) => {
        if (typeof frame.message !== 'string') return;
        ids.push(frame.id);
        if (refuse) {
          refuse = false;
          server.send(
            JSON.stringify({
              type: 'error',
              code: 'message_rejected',
              message: 'no links here',
              id: frame.id,
            }),
          );
          return;
        }
        server.send(chatFrame(frame.message, '1764300000000-7'));
        server.send(JSON.stringify({ type: 'ack', id: frame.id, message_id: '1764300000000-7' }));
      });
      await post(page, 'see example.com');
      const failed = page.locator('#messages .msg.failed', { hasText: 'see example.com' });
      await failed.locator('.status', { hasText: 'Not sent: no links here' }).waitFor();
      await failed.getByRole('button', { name: 'Retry' }).click();
      await page
        .locator('#messages .msg:not(.pending):not(.failed)', { hasText: 'see example.com' })
        .waitFor();
      await expect(messages(page, 'see example.com').count()).resolves.toBe(1);
      // The retry is a new message to the server: a new id.
      expect(ids).toHaveLength(2);
      expect(ids[0]).not.toBe(ids[1]);
      await page.close();
    });
  });

  it('shows a message sent while the server is down as pending, then delivers it once', async () => {
    const room = roomName('outbox');
    // History lives outside the app, so the restarted app has it (as it would in Redis).
    const roomState = new InMemoryRoomState();
    let first: RunningChatApp | undefined = await startChatApp({ roomState });
    const { port } = first.app.getHttpServer().address() as AddressInfo;
    const url = first.httpUrl;
    let second: RunningChatApp | undefined;
    try {
      const ann = await openLobby(first, room, 'ann');
      const bob = await openLobby(first, room, 'bob');
      const sent = sentFrames(ann);
      await bob.locator('#people .name', { hasText: 'ann' }).waitFor();

      await first.close();
      first = undefined;
      await ann.locator('#connection[data-state="reconnecting"]').waitFor();
      await post(ann, 'typed while down');
      const pending = ann.locator('#messages .msg.pending', { hasText: 'typed while down' });
      // Seen, and said in the log that screen readers follow.
      await expect(pending.locator('.status').textContent()).resolves.toBe(
        'Not sent yet: waiting for the connection',
      );
      await expect(
        ann.locator('#messages[role="log"] .msg.pending .status').isVisible(),
      ).resolves.toBe(true);
      await expect(ann.locator('input[name="message"]').inputValue()).resolves.toBe('');

      second = await startChatApp({ roomState }, port);
      await ann.locator('#connection[data-state="live"]').waitFor();
      await ann.locator('#messages .msg:not(.pending)', { hasText: 'typed while down' }).waitFor();
      // Bob gets it live; a message after it, from the same page, proves nothing more follows.
      await post(ann, 'and after');
      await messages(bob, 'and after').waitFor();
      const carol = await openLobby(url, room, 'carol');
      await messages(carol, 'and after').waitFor();
      for (const page of [ann, bob, carol]) {
        await expect(messages(page, 'typed while down').count()).resolves.toBe(1);
        await expect(messages(page, 'typed while down').getAttribute('data-user')).resolves.toBe(
          'ann',
        );
      }
      // Sent once to the restarted server (and never before: it was down).
      expect(sent.filter((frame) => frame.message === 'typed while down')).toHaveLength(1);
      await Promise.all([ann.close(), bob.close(), carol.close()]);
    } finally {
      await first?.close();
      await second?.close();
      await roomState.close();
    }
  }, 60_000);

  it('keeps an unsent message across a reload of the tab and sends it then, with its id', async () => {
    const room = roomName('reload');
    const page = await browser.newPage();
    await page.addInitScript("localStorage.setItem('lobby.name', 'ann')");
    // The socket goes through the test, which drops what the page sends until `hold` is off.
    let hold = true;
    const sent: Frame[] = [];
    await page.routeWebSocket(/\/ws\/socket-server/, (socket) => {
      const server = socket.connectToServer();
      socket.onMessage((data) => {
        const frame = JSON.parse(String(data)) as Frame;
        if (hold) return;
        sent.push(frame);
        server.send(data);
      });
    });
    await page.goto(`${chat.httpUrl}/?room=${room}`);
    await page.locator('#connection[data-state="live"]').waitFor();
    await post(page, 'kept over a reload');
    await page.locator('#messages .msg.pending', { hasText: 'kept over a reload' }).waitFor();
    const id = await page.locator('#messages .msg.pending').getAttribute('data-outbox');

    hold = false;
    await page.reload();
    await page.locator('#messages .msg:not(.pending)', { hasText: 'kept over a reload' }).waitFor();
    expect(sent.filter((frame) => frame.message === 'kept over a reload')).toEqual([
      { message: 'kept over a reload', id },
    ]);
    const bob = await openLobby(chat, room, 'bob');
    await messages(bob, 'kept over a reload').waitFor();
    await expect(messages(bob, 'kept over a reload').count()).resolves.toBe(1);
    // Once acknowledged, it is no longer kept: another reload sends nothing.
    await page.reload();
    await page.locator('#connection[data-state="live"]').waitFor();
    await messages(page, 'kept over a reload').waitFor();
    await expect(page.locator('#messages .msg.pending').count()).resolves.toBe(0);
    await Promise.all([page.close(), bob.close()]);
  });

  describe('what a new user saw', () => {
    it('logs nothing to the console and loads no missing file (the icon is there)', async () => {
      const page = await browser.newPage();
      const logged: string[] = [];
      const missing: string[] = [];
      page.on('console', (message) => logged.push(message.text()));
      page.on('response', (response) => {
        if (response.status() >= 400) missing.push(response.url());
      });
      await page.goto(`${chat.httpUrl}/?room=${roomName('quiet')}`);
      await page.locator('#connection[data-state="live"]').waitFor();
      await post(page, 'quietly');
      await page.locator('#messages .msg:not(.pending)', { hasText: 'quietly' }).waitFor();
      const icon = await page.locator('link[rel="icon"]').getAttribute('href');
      const fetched = await page.evaluate(
        async (href) => (await fetch(href as string)).headers.get('content-type'),
        icon,
      );
      expect(fetched).toMatch(/^image\/svg\+xml/);
      expect(logged).toEqual([]);
      expect(missing).toEqual([]);
      await page.close();
    });

    it('answers /favicon.ico with an icon', async () => {
      const response = await fetch(`${chat.httpUrl}/favicon.ico`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/x-icon');
      const bytes = new Uint8Array(await response.arrayBuffer());
      // An ICO file's header: reserved 0, type 1 (icon).
      expect([...bytes.slice(0, 4)]).toEqual([0, 0, 1, 0]);
    });

    it('serves its icon on Fastify too, at its own route, and /favicon.ico only from /', async () => {
      for (const route of ['/', '/chat']) {
        @Module({ imports: [ChatModule.forRoot({ lobby: { route } })] })
        class FastifyHost {}
        const app = await NestFactory.create<NestFastifyApplication>(
          FastifyHost,
          new FastifyAdapter(),
          { logger: ['error'] },
        );
        await app.listen(0, '127.0.0.1');
        const { port } = app.getHttpServer().address() as AddressInfo;
        const prefix = route === '/' ? '' : route;
        const base = `http://127.0.0.1:${port}${prefix}`;
        try {
          const page = await (await fetch(`${base}/`)).text();
          expect(page).toContain(`<link rel="icon" href="${prefix}/favicon.svg"`);
          const svg = await fetch(`${base}/favicon.svg`);
          expect(svg.status).toBe(200);
          expect(svg.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
          expect(svg.headers.get('content-security-policy')).toBe(LOBBY_CSP);
          await expect(svg.text()).resolves.toMatch(/^<svg /);
          const ico = await fetch(`http://127.0.0.1:${port}/favicon.ico`);
          if (route === '/') {
            expect(ico.headers.get('content-type')).toBe('image/x-icon');
            const bytes = new Uint8Array(await ico.arrayBuffer());
            expect([...bytes.slice(0, 4)]).toEqual([0, 0, 1, 0]);
          } else {
            // Under a route of its own, the site's root is the host's.
            expect(ico.status).toBe(404);
          }
        } finally {
          await app.close();
        }
      }
    });

    it('labels Room and Name visibly on a phone', async () => {
      const page = await openLobby(chat, roomName('labels'), 'ann', { viewport: PHONE });
      for (const label of ['Room', 'Name']) {
        const text = page.locator('#join label > span', { hasText: label });
        await expect(text.isVisible()).resolves.toBe(true);
        const box = await text.boundingBox();
        expect(box?.width).toBeGreaterThan(20);
        expect(box?.height).toBeGreaterThan(8);
        // And it names its field.
        await expect(page.getByLabel(label).count()).resolves.toBe(1);
      }
      await page.close();
    });

    it('says on a phone how many more are here than fit in the row, and shows them', async () => {
      const room = roomName('crowd');
      const names = ['alexandra', 'bartholomew', 'cornelia', 'demetrius', 'evangeline', 'fitz'];
      const crowd = await Promise.all(
        names.map((name) => chat.join(`/ws/socket-server/?room=${room}&name=${name}`)),
      );
      const page = await openLobby(chat, room, 'zoe', { viewport: PHONE });
      await page.locator('#people-count', { hasText: String(names.length + 1) }).waitFor();
      const more = page.locator('#people-more');
      await more.waitFor();
      const hidden = await page.locator('#people li.clipped').count();
      expect(hidden).toBeGreaterThan(0);
      await expect(more.textContent()).resolves.toBe(`+${hidden}`);
      // Every chip shown is shown whole.
      const list = await page.locator('#people').boundingBox();
      for (const chip of await page.locator('#people li:not(.clipped)').all()) {
        const box = await chip.boundingBox();
        expect(box!.x + box!.width).toBeLessThanOrEqual(list!.x + list!.width + 1);
      }
      await more.click();
      await expect(more.getAttribute('aria-expanded')).resolves.toBe('true');
      await expect(page.locator('#people li.clipped').count()).resolves.toBe(0);
      for (const chip of await page.locator('#people li').all()) {
        await expect(chip.isVisible()).resolves.toBe(true);
      }
      await page.close();
      await Promise.all(crowd.map((client) => client.close()));
    });

    it('gives different people different avatar colours', async () => {
      const room = roomName('colours');
      // By the name's hash alone (as before), ann and bob had one colour, grace and heidi another.
      const names = ['ann', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
      const crowd = await Promise.all(
        names.map((name) => chat.join(`/ws/socket-server/?room=${room}&name=${name}`)),
      );
      const page = await openLobby(chat, room, 'ivan');
      await page.locator('#people-count', { hasText: String(names.length + 1) }).waitFor();
      const hues = await page
        .locator('#people .avatar')
        .evaluateAll((avatars) =>
          avatars.map((avatar) =>
            (
              avatar as unknown as { style: { getPropertyValue(name: string): string } }
            ).style.getPropertyValue('--hue'),
          ),
        );
      expect(hues).toHaveLength(names.length + 1);
      expect(new Set(hues).size).toBe(hues.length);
      await page.close();
      await Promise.all(crowd.map((client) => client.close()));
    });

    it('updates the rooms list’s count soon after presence changes, not on its 15 s poll', async () => {
      const room = roomName('counts');
      const page = await openLobby(chat, room, 'ann');
      const entry = page.locator('#rooms a', { hasText: room });
      await entry.locator('.count', { hasText: /^1$/ }).waitFor();
      const joined: ChatTestClient[] = [];
      for (const name of ['bob', 'carol']) {
        joined.push(await chat.join(`/ws/socket-server/?room=${room}&name=${name}`));
      }
      await page.locator('#people-count', { hasText: '3' }).waitFor();
      await entry.locator('.count', { hasText: /^3$/ }).waitFor({ timeout: 5_000 });
      await Promise.all(joined.map((client) => client.close()));
      await page.locator('#people-count', { hasText: '1' }).waitFor();
      await entry.locator('.count', { hasText: /^1$/ }).waitFor({ timeout: 5_000 });
      await page.close();
    });

    it('keeps the rooms list current while presence frames keep coming', async () => {
      const room = roomName('churn');
      const page = await openLobby(chat, room, 'ann');
      const entry = page.locator('#rooms a', { hasText: room });
      await entry.locator('.count', { hasText: /^1$/ }).waitFor();
      // Someone joining and leaving over and over: a presence frame every ~100 ms, each of
      // which put a debounced refresh off again, until the 15 s poll.
      let churning = true;
      const churn = (async () => {
        while (churning) {
          const client = await chat.join(`/ws/socket-server/?room=${room}&name=churn`);
          await client.close();
        }
      })();
      try {
        await page.locator('#people .name', { hasText: 'churn' }).waitFor();
        const joined: ChatTestClient[] = [];
        for (const name of ['bob', 'carol']) {
          joined.push(await chat.join(`/ws/socket-server/?room=${room}&name=${name}`));
        }
        await page.locator('#people .name', { hasText: 'carol' }).waitFor();
        // ann, bob, carol, and the churning socket when it is in.
        await entry.locator('.count', { hasText: /^[34]$/ }).waitFor({ timeout: 5_000 });
        await Promise.all(joined.map((client) => client.close()));
      } finally {
        churning = false;
        await churn;
      }
      await page.close();
    });
  });
});
