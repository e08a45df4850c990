/**
 * Regenerates the README's screenshots of the lobby (docs/lobby.png, docs/lobby-phone.png). Not
 * part of `npm test` (the name does not match its pattern); run it by hand:
 *
 *   npm test -- --testRegex 'test/lobby\.screenshots\.ts$'
 */
import { join } from 'node:path';
import { Browser } from 'playwright-core';
import { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { launchChromium } from './support/chromium.js';

const DOCS = join(import.meta.dirname, '..', 'docs');

const conversation: [string, string][] = [
  ['Bob', 'Morning! Is the staging deploy still on for today?'],
  ['Chidi', 'Yes, after lunch. I am finishing the migration notes.'],
  ['Chidi', 'Two tables get a new index, nothing else changes.'],
  ['Ann', 'Great. I will keep an eye on the error dashboard while it runs.'],
  ['Bob', 'Can someone review the rate limit change first? It is small.'],
  ['Ann', 'On it.'],
  ['Chidi', 'Reminder: names and messages render as text, so <b>this</b> stays literal.'],
  ['Bob', 'Thanks both!'],
];

describe('lobby screenshots', () => {
  let chat: RunningChatApp;
  let browser: Browser;
  const clients: ChatTestClient[] = [];

  beforeAll(async () => {
    chat = await startChatApp();
    browser = await launchChromium();
    const join = (room: string, name: string) =>
      chat.join(`/ws/socket-server/?room=${room}&name=${encodeURIComponent(name)}`);
    const people = { Bob: await join('release', 'Bob'), Chidi: await join('release', 'Chidi') };
    const ann = await join('release', 'Ann');
    clients.push(people.Bob, people.Chidi, ann);
    clients.push(await join('random', 'Dana'), await join('random', 'Eve'));
    clients.push(await join('design.reviews', 'Femi'));
    for (const [name, message] of conversation) {
      const sender = name === 'Ann' ? ann : people[name as 'Bob' | 'Chidi'];
      sender.send({ message });
      await sender.nextOfType('chat');
    }
    // Ann's socket leaves; her browser tab takes her place.
    await ann.close();
  });

  afterAll(async () => {
    await browser?.close();
    await chat?.close();
  });

  async function shoot(file: string, viewport: { width: number; height: number }, scale: number) {
    const page = await browser.newPage({
      viewport,
      deviceScaleFactor: scale,
      colorScheme: 'light',
    });
    await page.addInitScript("localStorage.setItem('lobby.name', 'Ann')");
    await page.goto(`${chat.httpUrl}/?room=release`);
    await page.locator('#connection[data-state="live"]').waitFor();
    // Attached, not visible: on a phone the panels start folded.
    await page.locator('#people li', { hasText: 'Chidi' }).waitFor({ state: 'attached' });
    await page
      .locator('#rooms a', { hasText: 'release' })
      .filter({ hasText: '3' })
      .waitFor({ state: 'attached' });
    await page.fill('input[name="message"]', 'Looks good to me, merging now');
    // Bob is typing: the indicator shows for 5 s after his last typing frame.
    clients[0].send({ type: 'typing' });
    await page.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
    await page.screenshot({ path: join(DOCS, file) });
    await page.close();
  }

  it('desktop', async () => {
    await shoot('lobby.png', { width: 1200, height: 720 }, 1);
  });

  it('phone', async () => {
    await shoot('lobby-phone.png', { width: 390, height: 780 }, 2);
  });
});
