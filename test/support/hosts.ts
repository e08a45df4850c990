import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';

export { freePort } from './ports.js';

/** The fixtures: apps as the Nest CLIs made them, each with a lockfile made when it was added. */
export const HOSTS_DIR = join(import.meta.dirname, '..', 'hosts');

/**
 * Where installs outlive a run, outside the repo: each fixture's `npm ci` (per lockfile, platform
 * and Node major). CI may keep it between runs, keyed on the hosts' lockfiles; deleting it
 * costs the next run its `npm ci`s, nothing else.
 */
export const CACHE_DIR = join(
  process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
  'nest-channels-chat',
);

/** One host app made by a Nest CLI, and what the package test does with it. */
export interface Host {
  /** Its fixture directory under test/hosts/. */
  name: 'nest12-esm' | 'nest12-cjs' | 'nest11-cjs';
  nestMajor: 11 | 12;
  /** The TypeScript major its CLI chose, which compiles it. */
  typescriptMajor: 5 | 6;
  /** An ES module app (relative imports end in `.js`), else CommonJS (no extension). */
  esm: boolean;
  /** The test runner its CLI set up, which `npm run test:e2e` runs. */
  runner: 'vitest' | 'jest';
  /** Its jest loads Nest 12's ES modules from CommonJS, which jest does on Node 24.9+ only. */
  runnerNeedsRequireEsm: boolean;
  /** What the user installs beside the tarball. */
  alongside: string[];
  /** Optional peers present after the install (and, by their absence, not needed by the rest). */
  optionalPeers: string[];
  /** Source patched into the CLI's AppModule. */
  chat: { imports: string[]; before: string; moduleImports: string };
  /** A route that only the optional peer (or, with none, the host itself) serves. */
  probe: { path: string; contains: string };
}

export const HOSTS: Host[] = [
  {
    // `nest new` today: ESM, Vitest. The non-optional peers are named with the host's major, as
    // the README says. The lobby gets a route of its own: the CLI's AppController has `GET /`.
    name: 'nest12-esm',
    nestMajor: 12,
    typescriptMajor: 6,
    esm: true,
    runner: 'vitest',
    runnerNeedsRequireEsm: false,
    alongside: ['@nestjs/websockets@12', '@nestjs/platform-ws@12'],
    optionalPeers: [],
    chat: {
      imports: [`import { ChatModule } from 'nest-channels-chat';`],
      before: '',
      moduleImports: `ChatModule.forRoot({ lobby: { route: '/lobby' } })`,
    },
    probe: { path: '/lobby/', contains: 'id="messages"' },
  },
  {
    // Nest 12 asked for CommonJS. The tarball alone: npm installs the peers itself, and on the
    // newest Nest major it picks the right ones. No optional peer.
    name: 'nest12-cjs',
    nestMajor: 12,
    typescriptMajor: 6,
    esm: false,
    runner: 'jest',
    runnerNeedsRequireEsm: true,
    alongside: [],
    optionalPeers: [],
    chat: {
      imports: [`import { ChatModule } from 'nest-channels-chat';`],
      before: '',
      moduleImports: 'ChatModule.forRoot()',
    },
    probe: { path: '/', contains: 'Hello World!' },
  },
  {
    // Nest 11 CommonJS. npm's own peer install would pick Nest 12's websockets and fail with
    // ERESOLVE, so the peers are named with @11; terminus serves nest-channels-chat/health.
    name: 'nest11-cjs',
    nestMajor: 11,
    typescriptMajor: 5,
    esm: false,
    runner: 'jest',
    runnerNeedsRequireEsm: false,
    alongside: ['@nestjs/websockets@11', '@nestjs/platform-ws@11', '@nestjs/terminus@11'],
    optionalPeers: ['@nestjs/terminus'],
    chat: {
      imports: [
        `import { ChatModule } from 'nest-channels-chat';`,
        `import { HealthModule } from 'nest-channels-chat/health';`,
      ],
      before: 'const chat = ChatModule.forRoot();\n\n',
      moduleImports: 'chat, HealthModule.forChat(chat)',
    },
    probe: { path: '/health', contains: '"status":"ok"' },
  },
];

export const OPTIONAL_PEERS = ['@nestjs/terminus'];

/** The greeting every socket gets first: the seed's exact frame. */
export const GREETING = { type: 'connection_established', message: 'You are connected!' };

/** A relative import as the host's module system writes it. */
function local(host: Host, path: string): string {
  return host.esm ? `${path}.js` : path;
}

/** `text.replace(anchor, by)`, failing when a CLI's template no longer has the anchor. */
function replaceOnce(file: string, text: string, anchor: string, by: string): string {
  if (text.split(anchor).length !== 2) {
    throw new Error(`${file}: the CLI's template has no single ${JSON.stringify(anchor)}`);
  }
  return text.replace(anchor, by);
}

/**
 * What a user adds to the app the CLI made: the chat in its AppModule (the whole integration:
 * main.ts stays as the CLI wrote it), a controller of their own that posts into the room through
 * the injected layer, and an e2e test of AppModule next to the CLI's.
 */
export async function addChat(host: Host, dir: string): Promise<void> {
  const modulePath = join(dir, 'src', 'app.module.ts');
  let appModule = await readFile(modulePath, 'utf8');
  appModule = replaceOnce(
    modulePath,
    appModule,
    'imports: [],',
    `imports: [${host.chat.moduleImports}],`,
  );
  appModule = replaceOnce(
    modulePath,
    appModule,
    'controllers: [AppController],',
    'controllers: [AppController, AnnounceController],',
  );
  appModule = replaceOnce(modulePath, appModule, '@Module(', `${host.chat.before}@Module(`);
  const imports = [
    ...host.chat.imports,
    `import { AnnounceController } from '${local(host, './announce.controller')}';`,
  ];
  await writeFile(modulePath, `${imports.join('\n')}\n${appModule}`);

  await writeFile(join(dir, 'src', 'announce.controller.ts'), ANNOUNCE_CONTROLLER);
  await writeFile(join(dir, 'test', 'chat.e2e-spec.ts'), chatE2eSpec(host));
}

/** `POST /announce?text=`: the host's HTTP API posting into room `test` through ChannelLayer. */
const ANNOUNCE_CONTROLLER = `import { Controller, HttpCode, Post, Query } from '@nestjs/common';
import { ChannelLayer } from 'nest-channels-chat';

@Controller('announce')
export class AnnounceController {
  constructor(private readonly layer: ChannelLayer) {}

  @Post()
  @HttpCode(202)
  async announce(@Query('text') text: string): Promise<{ sent: string }> {
    await this.layer.groupSend('test', { type: 'chat.message', message: text });
    return { sent: text };
  }
}
`;

/** The host's e2e test, in the CLI's style: Vitest globals or jest, @nestjs/testing, supertest. */
function chatE2eSpec(host: Host): string {
  return `import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ChatTestClient } from 'nest-channels-chat/testing';
import request from 'supertest';
import { App } from '${local(host, 'supertest/types')}';
import { AppModule } from '${local(host, './../src/app.module')}';

describe('The chat in AppModule (e2e)', () => {
  let app: INestApplication<App>;

  beforeEach(async () => {
    const moduleFixture = await Test.createTestingModule({
      imports: [AppModule],
    }).compile();
    app = moduleFixture.createNestApplication();
    await app.listen(0, '127.0.0.1');
  });

  afterEach(async () => {
    await app.close();
  });

  it('chats, and posts into the room from HTTP', async () => {
    const url = (await app.getUrl()).replace(/^http/, 'ws');
    const client = await ChatTestClient.connect(\`\${url}/ws/socket-server/\`);
    await client.greeted();
    client.send({ message: 'hi' });
    expect(await client.nextOfType('chat')).toMatchObject({ message: 'hi' });
    await request(app.getHttpServer()).post('/announce?text=hello').expect(202);
    expect(await client.nextOfType('chat')).toEqual({ type: 'chat', message: 'hello' });
    await client.close();
  });

  it('serves ${host.probe.path}', async () => {
    const response = await request(app.getHttpServer()).get('${host.probe.path}').expect(200);
    expect(response.text).toContain(${JSON.stringify(host.probe.contains)});
  });
});
`;
}

/** What a child command printed, kept for the failure message. */
export interface Output {
  stdout: string;
  stderr: string;
}

/** Children still running, so afterAll can end them (each in its own process group). */
const running = new Set<ChildProcess>();

/** Ends every command this module started that is still running (its whole process group). */
export function killRunning(): void {
  for (const child of running) {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  running.clear();
}

/** Everything a command printed, without colours. */
export function printed(output: Output): string {
  return stripVTControlCharacters(`${output.stdout}\n${output.stderr}`);
}

/** The last `max` characters of a command's output, for a failure message. */
export function tail(output: Output, max = 6000): string {
  const cut = (text: string): string =>
    stripVTControlCharacters(text.length > max ? `…${text.slice(-max)}` : text).trim();
  return `--- stdout ---\n${cut(output.stdout)}\n--- stderr ---\n${cut(output.stderr)}`;
}

/**
 * The environment a user's shell would give the host's tools: not the npm script or jest that
 * runs this test (no `npm_*` lifecycle variables, no local prefix pointing at this repo, no
 * NODE_ENV=test, no `node_modules/.bin` of this repo on PATH). Config from the environment stays.
 */
export function userEnv(pathFirst?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(?!config_)/.test(key)) continue;
    if (/^npm_config_(local_prefix|prefix|global_prefix)$/.test(key)) continue;
    if (['INIT_CWD', 'JEST_WORKER_ID', 'NODE_ENV'].includes(key)) continue;
    env[key] = value;
  }
  const path = (process.env.PATH ?? '')
    .split(delimiter)
    .filter((entry) => !entry.endsWith(join('node_modules', '.bin')));
  env.PATH = [...(pathFirst ? [pathFirst] : []), ...path].join(delimiter);
  return env;
}

/**
 * Runs `command` to completion in its own process group; rejects, naming `what` and showing its
 * output, on a non-zero exit or after `timeoutMs` (then the whole group is killed).
 */
export function sh(
  what: string,
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Output> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.add(child);
    const output: Output = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    const line = `${command} ${args.join(' ')} (in ${options.cwd})`;
    child.once('error', (error) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new Error(`${what}: could not run ${line}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (code === 0) return resolve(output);
      const how = timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${code ?? signal}`;
      reject(new Error(`${what} failed: ${line} ${how}\n${tail(output)}`));
    });
  });
}

/** The installs' lines from npm that concern this package: ERESOLVE or any warning naming it. */
export function npmComplaints(output: Output): string[] {
  return printed(output)
    .split('\n')
    .filter(
      (line) => /ERESOLVE/.test(line) || (/warn/i.test(line) && /nest-channels-chat/.test(line)),
    );
}

/**
 * A directory holding the fixture's package.json, lockfile and `npm ci --prefer-offline`
 * node_modules, made once per lockfile (and platform, Node major) under {@link CACHE_DIR}, so a
 * run copies node_modules (seconds) instead of installing it (tens of seconds). Made in a
 * scratch directory and renamed into place, so a half-made install is never used.
 */
export async function cachedInstall(host: Host): Promise<string> {
  const fixture = join(HOSTS_DIR, host.name);
  const files = ['package.json', 'package-lock.json'];
  const hash = createHash('sha256');
  for (const file of files) hash.update(await readFile(join(fixture, file)));
  hash.update(`${process.platform}-${process.arch}-node${process.versions.node.split('.')[0]}`);
  const key = `${host.name}-${hash.digest('hex').slice(0, 16)}`;
  const root = join(CACHE_DIR, 'hosts');
  const dir = join(root, key);
  if (existsSync(join(dir, 'node_modules', '.package-lock.json'))) return dir;

  const scratch = `${dir}.${process.pid}.partial`;
  await rm(scratch, { recursive: true, force: true });
  await mkdir(scratch, { recursive: true });
  for (const file of files) await cp(join(fixture, file), join(scratch, file));
  await sh(
    `${host.name}: npm ci of the fixture's lockfile`,
    'npm',
    ['ci', '--prefer-offline', '--no-audit', '--no-fund'],
    { cwd: scratch, timeoutMs: 300_000 },
  );
  for (const entry of await readdir(root)) {
    if (entry.startsWith(`${host.name}-`) && entry !== key && !entry.endsWith('.partial')) {
      await rm(join(root, entry), { recursive: true, force: true });
    }
  }
  await rename(scratch, dir).catch(async (error: NodeJS.ErrnoException) => {
    // Another run put the same install in place first: use theirs.
    if (!existsSync(join(dir, 'node_modules', '.package-lock.json'))) throw error;
    await rm(scratch, { recursive: true, force: true });
  });
  return dir;
}

/** One HTTP exchange on a connection of its own (closed after), so nothing stays open. */
export function http(
  method: 'GET' | 'POST',
  url: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.once('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in 5 s`)));
    req.once('error', reject);
    req.end();
  });
}

/** A compiled app under `node` in `dir` (`dist/main.js`, as `npm run start:prod` starts it). */
export class HostProcess {
  readonly output: Output = { stdout: '', stderr: '' };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(
    dir: string,
    readonly port: number,
    private readonly entry = 'dist/main.js',
    env: Record<string, string> = {},
  ) {
    this.child = spawn(process.execPath, [entry], {
      cwd: dir,
      env: { ...userEnv(), ...env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    running.add(this.child);
    this.child.stdout
      ?.setEncoding('utf8')
      .on('data', (chunk: string) => (this.output.stdout += chunk));
    this.child.stderr
      ?.setEncoding('utf8')
      .on('data', (chunk: string) => (this.output.stderr += chunk));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        running.delete(this.child);
        resolve({ code, signal });
      }),
    );
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Resolves once the app answers HTTP; rejects if it exits or stays silent for `timeoutMs`. */
  async answering(timeoutMs = 30_000): Promise<void> {
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void this.exited.then((how) => (exit = how));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && exit === undefined) {
      const answered = await http('GET', `${this.url}/`).then(
        () => true,
        () => false,
      );
      if (answered) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const why = exit ? `exited with ${exit.code ?? exit.signal}` : `not within ${timeoutMs} ms`;
    throw new Error(
      `node ${this.entry} did not answer HTTP on ${this.url}: ${why}\n${tail(this.output)}`,
    );
  }

  /** SIGTERM, as a process manager stops it; resolves with how it ended. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
