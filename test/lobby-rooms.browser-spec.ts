import { AddressInfo } from 'node:net';
import { Browser, Page } from 'playwright-core';
import { InMemoryRoomState } from '../src/rooms/in-memory-room-state.js';
import { ChatRecord } from '../src/rooms/room-state.js';
import { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { launchChromium } from './support/chromium.js';

/** A room name no other test uses. */
const roomName = (label: string): string => `${label}-${Math.random().toString(36).slice(2, 8)}`;

/** The chat frame the sender's own echo brings back (it carries the id the page resumes from). */
async function say(client: ChatTestClient, message: string): Promise<ChatRecord> {
  client.send({ message });
  for (;;) {
    const frame = await client.nextOfType<ChatRecord>('chat');
    if (frame.message === message) return frame;
  }
}

describe('The lobby: rooms, people and reconnects in a real browser', () => {
  let browser: Browser;

  beforeAll(async () => {
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
  });

  /** Opens the lobby at `/?room=<room>` as `name` (remembered, as a returning visitor's). */
  async function openLobby(app: RunningChatApp, room: string, name: string): Promise<Page> {
    const page = await browser.newPage();
    await page.addInitScript(`localStorage.setItem('lobby.name', ${JSON.stringify(name)})`);
    await page.goto(`${app.httpUrl}/?room=${room}`);
    await page.locator('#connection[data-state="live"]').waitFor();
    return page;
  }

  async function post(page: Page, message: string): Promise<void> {
    await page.fill('form#form input[name="message"]', message);
    await page.press('form#form input[name="message"]', 'Enter');
  }

  /** The message texts on the page, in order. */
  const texts = (page: Page): Promise<string[]> => page.locator('#messages p').allTextContents();

  /** The names under "Here now". */
  const people = (page: Page): Promise<string[]> => page.locator('#people .name').allTextContents();

  /**
   * Waits until "Here now" lists exactly `names`. Joins and leaves of different sockets race, so
   * the list may pass through other states (a guest socket still leaving) before it settles. The
   * check runs in the page on each change of the list (the page's CSP forbids string predicates).
   */
  async function expectPeople(page: Page, names: string[]): Promise<void> {
    const settled = await page.locator('#people').evaluate(
      (list, { want, timeoutMs }) =>
        new Promise<boolean>((resolve) => {
          // This runs in the page; the test's TypeScript has no DOM types.
          const { MutationObserver } = globalThis as unknown as {
            MutationObserver: new (callback: () => void) => {
              observe(target: unknown, options: object): void;
              disconnect(): void;
            };
          };
          const matches = () =>
            JSON.stringify(
              Array.from(
                list.querySelectorAll('.name'),
                (e) => (e as { textContent: string | null }).textContent,
              ),
            ) === want;
          if (matches()) return resolve(true);
          const observer = new MutationObserver(() => {
            if (!matches()) return;
            observer.disconnect();
            clearTimeout(timer);
            resolve(true);
          });
          observer.observe(list, { childList: true, subtree: true, characterData: true });
          const timer = setTimeout(() => {
            observer.disconnect();
            resolve(false);
          }, timeoutMs);
        }),
      { want: JSON.stringify(names), timeoutMs: 5000 },
    );
    if (!settled) expect(await people(page)).toEqual(names);
  }

  /** Waits for a message's text, then checks who said it. */
  async function expectMessage(page: Page, text: string, user: string): Promise<void> {
    const message = page.locator('#messages .msg', {
      has: page.locator('p', { hasText: text }),
    });
    await message.waitFor();
    await expect(message.getAttribute('data-user')).resolves.toBe(user);
  }

  describe('one app', () => {
    let chat: RunningChatApp;

    beforeAll(async () => {
      chat = await startChatApp();
    });

    afterAll(async () => {
      await chat?.close();
    });

    it('lets two pages in one room chat, with names, times and each other in presence', async () => {
      const room = roomName('pair');
      const ann = await openLobby(chat, room, 'ann');
      // Bob arrives as a guest and picks his name in the join form, as a first visitor would.
      const bob = await openLobby(chat, room, '');
      await bob.fill('form#join input[name="name"]', 'bob');
      await bob.press('form#join input[name="name"]', 'Enter');

      for (const page of [ann, bob]) {
        await expectPeople(page, ['ann', 'bob']);
        await expect(page.locator('#room-name').textContent()).resolves.toBe(`# ${room}`);
      }
      await expect(bob.locator('input[name="name"]').inputValue()).resolves.toBe('bob');
      await expect(bob.evaluate("localStorage.getItem('lobby.name')")).resolves.toBe('bob');

      await post(ann, 'hi bob');
      await post(bob, 'hi ann');
      for (const page of [ann, bob]) {
        await expectMessage(page, 'hi bob', 'ann');
        await expectMessage(page, 'hi ann', 'bob');
        await expect(texts(page)).resolves.toEqual(['hi bob', 'hi ann']);
        const time = page.locator('#messages .msg time').first();
        await expect(time.getAttribute('datetime')).resolves.toMatch(/^\d{4}-\d\d-\d\dT/);
      }
      await expect(ann.locator('#messages .msg.mine p').allTextContents()).resolves.toEqual([
        'hi bob',
      ]);

      await bob.close();
      await expectPeople(ann, ['ann']);
      await ann.close();
    });

    it('shows a page in another room nothing of theirs', async () => {
      const room = roomName('ours');
      const elsewhere = roomName('theirs');
      const ann = await openLobby(chat, room, 'ann');
      const bob = await openLobby(chat, room, 'bob');
      await post(ann, 'ours before');
      await bob.locator('#messages p', { hasText: 'ours before' }).waitFor();

      const carol = await openLobby(chat, elsewhere, 'carol');
      await post(carol, 'theirs');
      await post(bob, 'ours after');
      // Order is what proves absence: each page has seen a message sent after the other room's.
      await carol.locator('#messages p', { hasText: 'theirs' }).waitFor();
      await ann.locator('#messages p', { hasText: 'ours after' }).waitFor();

      await expect(texts(carol)).resolves.toEqual(['theirs']);
      await expectPeople(carol, ['carol']);
      for (const page of [ann, bob]) {
        await expect(texts(page)).resolves.toEqual(['ours before', 'ours after']);
        await expectPeople(page, ['ann', 'bob']);
      }

      // The room picker lists both rooms; choosing one there switches without a reload.
      await carol.locator('#rooms a', { hasText: room }).click();
      await carol.waitForURL(`**/?room=${room}`);
      await expectPeople(carol, ['ann', 'bob', 'carol']);
      await expect(texts(carol)).resolves.toEqual(['ours before', 'ours after']);
      await Promise.all([ann.close(), bob.close(), carol.close()]);
    });
  });

  it('reconnects a page whose server restarted and shows what it missed, each once', async () => {
    const room = roomName('resume');
    // History lives outside the app, so it survives the app's restart (as it would in Redis).
    const roomState = new InMemoryRoomState();
    let first: RunningChatApp | undefined = await startChatApp({ roomState });
    const { port } = first.app.getHttpServer().address() as AddressInfo;
    let second: RunningChatApp | undefined;
    try {
      const page = await openLobby(first, room, 'carol');
      const sockets: string[] = [];
      page.on('websocket', (socket) => sockets.push(socket.url()));
      const dave = await first.join(`/ws/socket-server/?room=${room}&name=dave`);
      const seen = await say(dave, 'before the restart');
      await page.locator('#messages p', { hasText: 'before the restart' }).waitFor();

      await first.close();
      first = undefined;
      await page.locator('#connection[data-state="reconnecting"]').waitFor();

      // The restarted server holds the page's handshake until dave has spoken, so the page can
      // only learn of his messages from the history it resumes with: no race with live delivery.
      let letPageIn!: () => void;
      const pageMayJoin = new Promise<void>((resolve) => (letPageIn = resolve));
      second = await startChatApp(
        {
          roomState,
          authenticate: async (request) => {
            const name = new URL(request.url ?? '/', 'ws://x').searchParams.get('name') ?? 'guest';
            if (name === 'carol') await pageMayJoin;
            return { id: name };
          },
        },
        port,
      );
      const daveAgain = await second.join(`/ws/socket-server/?room=${room}&name=dave`);
      const missed = ['missed one', 'missed two', 'missed three'];
      for (const message of missed) await say(daveAgain, message);
      letPageIn();

      await page.locator('#connection[data-state="live"]').waitFor();
      await page.locator('#messages p', { hasText: 'missed three' }).waitFor();
      await expect(texts(page)).resolves.toEqual(['before the restart', ...missed]);
      await expectMessage(page, 'missed one', 'dave');
      // It resumed after the last message it had, not from the whole history.
      expect(new URL(sockets[sockets.length - 1]).searchParams.get('since')).toBe(seen.id);

      // And it is live again: what it sends reaches the room.
      await post(page, 'back');
      await expect(say(daveAgain, 'welcome back')).resolves.toMatchObject({ user: 'dave' });
      await page.locator('#messages p', { hasText: 'welcome back' }).waitFor();
      await expect(texts(page)).resolves.toEqual([
        'before the restart',
        ...missed,
        'back',
        'welcome back',
      ]);
      await page.close();
    } finally {
      await first?.close();
      await second?.close();
      await roomState.close();
    }
  });
});
