import { Browser } from 'playwright-core';
import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { launchChromium } from './support/chromium.js';

describe('The lobby in a real browser', () => {
  let chat: RunningChatApp;
  let browser: Browser;

  beforeAll(async () => {
    chat = await startChatApp();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await chat?.close();
  });

  async function openLobby() {
    const page = await browser.newPage();
    await page.goto(`${chat.httpUrl}/`);
    await page.locator('#connection[data-state="live"]').waitFor();
    return page;
  }

  it('shows a message typed in one window in both windows', async () => {
    const [alice, bob] = [await openLobby(), await openLobby()];
    await alice.fill('form#form input[name="message"]', 'hello from alice');
    await alice.press('form#form input[name="message"]', 'Enter');
    for (const page of [alice, bob]) {
      await page.locator('#messages', { hasText: 'hello from alice' }).waitFor();
    }
    await expect(alice.inputValue('input[name="message"]')).resolves.toBe('');
    await Promise.all([alice.close(), bob.close()]);
  });

  it('shows an HTML payload as text and never runs it', async () => {
    const page = await openLobby();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    const payload = '<img src=x onerror=alert(1)>';
    await page.fill('input[name="message"]', payload);
    await page.press('input[name="message"]', 'Enter');
    await page.locator('#messages p', { hasText: payload }).waitFor();
    await expect(page.locator('#messages img').count()).resolves.toBe(0);
    expect(dialogs).toEqual([]);
    await page.close();
  });
});
