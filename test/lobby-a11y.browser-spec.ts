import axe from 'axe-core';
import { Browser, Page } from 'playwright-core';
import { ChatTestClient } from '../src/testing/index.js';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { launchChromium } from './support/chromium.js';

/** What an axe run returns, as far as these tests read it. */
interface AxeResults {
  violations: { id: string; impact?: string | null; help: string; nodes: { target: string[] }[] }[];
  passes: { id: string; nodes: { target: string[] }[] }[];
}

const VIEWPORTS = {
  desktop: { width: 1200, height: 720 },
  phone: { width: 390, height: 780 },
};

/**
 * axe-core's checks (WCAG 2.x A and AA, and its best practices) on the lobby as a user sees it:
 * other people's messages, one's own (confirmed, pending and failed), someone typing, and a room
 * crowded enough that "Here now" overflows its row on a phone; in each viewport and colour
 * scheme. Serious and critical findings fail the test.
 */
describe('The lobby’s accessibility (axe-core)', () => {
  let chat: RunningChatApp;
  let browser: Browser;
  let clients: ChatTestClient[] = [];

  beforeAll(async () => {
    chat = await startChatApp();
    browser = await launchChromium();
  });

  afterEach(async () => {
    await Promise.all(clients.map((client) => client.close()));
    clients = [];
  });

  afterAll(async () => {
    await browser?.close();
    await chat?.close();
  });

  /** A room of its own with six people in it, two of whom have said something. */
  async function crowdedRoom(): Promise<string> {
    const room = `a11y-${Math.random().toString(36).slice(2, 8)}`;
    const join = (name: string) => chat.join(`/ws/socket-server/?room=${room}&name=${name}`);
    for (const name of ['Bob', 'Chidi', 'Dana', 'Evangeline', 'Femi', 'Giovanni']) {
      clients.push(await join(name));
    }
    for (const [index, message] of ['Morning!', 'Is the deploy on?', 'After lunch.'].entries()) {
      const sender = clients[index % 2];
      sender.send({ message });
      await sender.nextOfType('chat');
    }
    return room;
  }

  /** Ann's page with a message of each state of her own, and Bob typing. */
  async function lobby(viewport: { width: number; height: number }): Promise<Page> {
    const room = await crowdedRoom();
    const page = await browser.newPage({ viewport });
    await page.addInitScript("localStorage.setItem('lobby.name', 'Ann')");
    // The socket goes through the test, which keeps back one message: it stays pending.
    await page.routeWebSocket(/\/ws\/socket-server/, (socket) => {
      const server = socket.connectToServer();
      socket.onMessage((data) => {
        if (!String(data).includes('still on its way')) server.send(data);
      });
    });
    await page.goto(`${chat.httpUrl}/?room=${room}`);
    await page.locator('#connection[data-state="live"]').waitFor();
    await page.locator('#people .name', { hasText: 'Giovanni' }).waitFor({ state: 'attached' });
    const send = async (message: string) => {
      await page.fill('form#form input[name="message"]', message);
      await page.press('form#form input[name="message"]', 'Enter');
    };
    await send('Looks good to me');
    await page.locator('#messages .msg:not(.pending)', { hasText: 'Looks good to me' }).waitFor();
    await send('x'.repeat(70 * 1024));
    await page.locator('#messages .msg.failed').waitFor();
    await send('still on its way');
    await page.locator('#messages .msg.pending', { hasText: 'still on its way' }).waitFor();
    clients[0].send({ type: 'typing' });
    await page.locator('#typing', { hasText: 'Bob is typing…' }).waitFor();
    return page;
  }

  async function runAxe(page: Page): Promise<AxeResults> {
    // Injected through the driver, which the page's CSP (script-src 'self') does not govern.
    await page.evaluate(axe.source);
    return page.evaluate(
      () =>
        (globalThis as unknown as { axe: { run(options: object): Promise<AxeResults> } }).axe.run({
          resultTypes: ['violations', 'passes'],
        }) as Promise<AxeResults>,
    );
  }

  const serious = (results: AxeResults) =>
    results.violations
      .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
      .map(({ id, impact, help, nodes }) => ({
        id,
        impact,
        help,
        nodes: nodes.map((node) => node.target.join(' ')),
      }));

  for (const [name, viewport] of Object.entries(VIEWPORTS)) {
    for (const colorScheme of ['light', 'dark'] as const) {
      it(`finds nothing serious on a ${name}, ${colorScheme}`, async () => {
        const page = await lobby(viewport);
        await page.emulateMedia({ colorScheme });
        if (name === 'phone') await page.locator('#people-more').waitFor();
        const results = await runAxe(page);
        expect(serious(results)).toEqual([]);
        // The checks that matter here ran on what they are about.
        const passed = (rule: string) =>
          results.passes.find((pass) => pass.id === rule)?.nodes.map((n) => n.target.join(' '));
        expect(passed('color-contrast')).toEqual(
          expect.arrayContaining([
            '#connection',
            '.status > span', // a failed message's reason
            '.pending > .body > .status',
            '#typing',
          ]),
        );
        expect(passed('label')).toEqual(
          expect.arrayContaining(['input[name="room"]', 'input[name="name"]']),
        );
        await page.close();
      });
    }
  }
});
