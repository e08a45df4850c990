import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { LOBBY_CSP } from '../src/chat/lobby.js';
import { ChatTestClient } from '../src/testing/index.js';
import { AppProcess, buildApp } from './support/app-process.js';
import { launchChromium } from './support/chromium.js';

/** The compiled app (`npm start`), and its `http://` base URL once it listens. */
async function start(env: Record<string, string> = {}): Promise<{ app: AppProcess; url: string }> {
  const app = new AppProcess({ LOG_LEVEL: 'log', ...env });
  const ws = await app.listening();
  return { app, url: ws.replace(/^ws:/, 'http:').replace(/\/ws\/socket-server\/$/, '') };
}

/** The internal port's URL, from the line the app logs for it. */
function internalUrl(app: AppProcess): string {
  for (const line of app.lines) {
    const match = /\/health\/ready on (http:\/\/[\d.]+:\d+)\/ only/.exec(line);
    if (match) return match[1];
  }
  throw new Error(`no internal port logged:\n${app.lines.join('\n')}`);
}

/** A GET with a `Host` of our choosing (fetch always sends the URL's). */
function getWithHost(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { host } }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject).end();
  });
}

function expectHardened(response: Response): void {
  expect(response.headers.get('x-powered-by')).toBeNull();
  expect(response.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
  expect(response.headers.get('x-content-type-options')).toBe('nosniff');
  expect(response.headers.get('referrer-policy')).toBe('no-referrer');
}

beforeAll(async () => {
  await buildApp();
}, 60_000);

describe('HTTP hardening of `npm start`', () => {
  let app: AppProcess;
  let url: string;

  beforeAll(async () => {
    ({ app, url } = await start());
  });

  afterAll(async () => {
    app.signal('SIGTERM');
    await app.exited;
  });

  it('sends the lobby page and its files with the lobby’s CSP as a header', async () => {
    for (const path of ['/', '/index.html', '/lobby.js', '/lobby.css']) {
      const response = await fetch(`${url}${path}`);
      expect(response.status).toBe(200);
      expectHardened(response);
      expect(response.headers.get('content-security-policy')).toBe(LOBBY_CSP);
    }
  });

  it('keeps the page’s <meta> CSP the header’s, less frame-ancestors', async () => {
    const html = await readFile(join(import.meta.dirname, '..', 'client', 'index.html'), 'utf8');
    const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html);
    expect(`${meta?.[1]}; frame-ancestors 'none'`).toBe(LOBBY_CSP);
  });

  it('sends the headers with JSON, health and error answers too', async () => {
    for (const path of ['/api/rooms', '/health', '/metrics', '/no-such-page']) {
      const response = await fetch(`${url}${path}`);
      expectHardened(response);
      expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    }
  });

  it('refuses a Host it is not reachable as with 400 (DNS rebinding)', async () => {
    for (const path of ['/', '/api/rooms', '/health']) {
      const refused = await getWithHost(`${url}${path}`, 'evil.com');
      expect(refused).toEqual({ status: 400, body: 'Bad Request: unknown Host\n' });
    }
    expect((await getWithHost(`${url}/health`, 'evil.com:8000')).status).toBe(400);
  });

  it('accepts its loopback address and localhost names, on any port', async () => {
    const { port } = new URL(url);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'chat.localhost', 'localhost']) {
      expect((await getWithHost(`${url}/health`, host)).status).toBe(200);
    }
  });

  it('serves /metrics and /health/ready on the main port when INTERNAL_PORT is unset', async () => {
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    expect((await fetch(`${url}/health/ready`)).status).toBe(200);
  });

  it('does not warn about public metrics on a loopback HOST', () => {
    expect(app.lines.join('\n')).not.toMatch(/are public/);
  });
});

describe('INTERNAL_PORT', () => {
  let app: AppProcess;
  let url: string;
  let internal: string;

  beforeAll(async () => {
    ({ app, url } = await start({ INTERNAL_PORT: '0' }));
    internal = internalUrl(app);
  });

  afterAll(async () => {
    app.signal('SIGTERM');
    await app.exited;
  });

  it('serves /metrics, /health/ready and /health there', async () => {
    const metrics = await fetch(`${internal}/metrics`);
    expect(metrics.status).toBe(200);
    await expect(metrics.text()).resolves.toMatch(/^chat_connections 0$/m);
    const ready = await fetch(`${internal}/health/ready`);
    expect(ready.status).toBe(200);
    await expect(ready.json()).resolves.toMatchObject({ status: 'ok' });
    expect((await fetch(`${internal}/health`)).status).toBe(200);
  });

  it('answers 404 for them on the public port, however the path is spelled', async () => {
    for (const path of ['/metrics', '/health/ready', '/METRICS/', '/health/ready/', '/metrics?x']) {
      const response = await fetch(`${url}${path}`);
      expect(response.status).toBe(404);
      expectHardened(response);
    }
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('answers 404 for them on the public port with a fragment a raw client sends', async () => {
    const { port } = new URL(url);
    for (const path of ['/metrics#x', '/metrics/#', '/Health/Ready#?']) {
      const status = await new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
      expect(status).toBe(404);
    }
  });

  it('serves nothing else there', async () => {
    for (const path of ['/', '/lobby.js', '/api/rooms']) {
      expect((await fetch(`${internal}${path}`)).status).toBe(404);
    }
  });

  it('checks the Host there too', async () => {
    expect((await getWithHost(`${internal}/metrics`, 'evil.com')).status).toBe(400);
  });
});

describe('HOST not loopback, INTERNAL_PORT unset', () => {
  it('warns at start that /metrics and /health/ready are public', async () => {
    const { app } = await start({ HOST: '0.0.0.0' });
    try {
      expect(app.lines.join('\n')).toMatch(
        /WARN.*\/metrics and \/health\/ready are public: anyone who reaches HOST=0\.0\.0\.0/,
      );
    } finally {
      app.signal('SIGTERM');
      await app.exited;
    }
  });
});

describe('ROOMS_API', () => {
  it('ROOMS_API=false: GET /api/rooms answers 404 saying the list is turned off', async () => {
    const { app, url } = await start({ ROOMS_API: 'false' });
    try {
      const response = await fetch(`${url}/api/rooms`);
      expect(response.status).toBe(404);
      await expect(response.json()).resolves.toEqual({
        statusCode: 404,
        message: 'the rooms list is turned off',
      });
    } finally {
      app.signal('SIGTERM');
      await app.exited;
    }
  });

  it('ROOMS_API_LIMIT caps the list at the busiest rooms, sorted by name', async () => {
    const { app, url } = await start({ ROOMS_API_LIMIT: '2' });
    const ws = `${url.replace(/^http:/, 'ws:')}/ws/chat`;
    const members: ChatTestClient[] = [];
    try {
      for (const [room, count] of [
        ['quiet', 1],
        ['busy', 3],
        ['mid', 2],
      ] as const) {
        for (let i = 0; i < count; i++) {
          const client = await ChatTestClient.connect(`${ws}/${room}/`);
          members.push(client);
          await client.greeted();
        }
      }
      const rooms = (await (await fetch(`${url}/api/rooms`)).json()) as unknown;
      expect(rooms).toEqual([
        { room: 'busy', members: 3 },
        { room: 'mid', members: 2 },
      ]);
    } finally {
      await Promise.all(members.map((client) => client.close()));
      app.signal('SIGTERM');
      await app.exited;
    }
  });
});

describe('The lobby under npm start’s headers, in a real browser', () => {
  it('chats, breaks no policy, and says when the rooms list is off', async () => {
    const { app, url } = await start({ ROOMS_API: 'false' });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const refused: string[] = [];
      page.on('console', (message) => {
        if (/Content Security Policy|Refused to/i.test(message.text()))
          refused.push(message.text());
      });
      await page.goto(`${url}/`);
      await page.locator('body[data-connection="live"]').waitFor();
      await page.fill('form#form input[name="message"]', 'hello under helmet');
      await page.press('form#form input[name="message"]', 'Enter');
      await page.locator('#messages', { hasText: 'hello under helmet' }).waitFor();
      await page
        .locator('#rooms', { hasText: 'The rooms list is turned off on this server.' })
        .waitFor();
      expect(refused).toEqual([]);
    } finally {
      await browser.close();
      app.signal('SIGTERM');
      await app.exited;
    }
    // A browser and a compiled app, each started cold.
  }, 60_000);
});
