import { cp, lstat, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ChatTestClient } from '../src/testing/index.js';
import {
  GREETING,
  HOSTS,
  HOSTS_DIR,
  type Host,
  HostProcess,
  OPTIONAL_PEERS,
  type Output,
  addChat,
  cachedInstall,
  freePort,
  http,
  killRunning,
  npmComplaints,
  printed,
  sh,
  tail,
  userEnv,
} from './support/hosts.js';
import { REGISTRY_NODE_RUNS, registryNode } from './support/registry-node.js';

/**
 * The package as users get it: `npm pack`ed, then installed from the registry into apps the Nest
 * CLIs made (test/hosts/, one per row of README "Supported stacks"), outside the repo. Each host
 * compiles with its own TypeScript, runs under `node` with real clients, and runs its own test
 * runner on an e2e test of its AppModule: loading under `node` alone is not enough.
 *
 * The fixtures are the CLIs' files as generated (`nest new` 12.0.8, ESM; the 12 schematics'
 * `application --type=cjs`; `nest new` 11.0.24), less their lint-only devDependencies (oxlint,
 * eslint, prettier and their plugins, to save install time), plus a lockfile each. Their `npm ci`
 * is cached outside the repo per lockfile (support/hosts.ts); the tarball is installed afresh.
 * The three hosts run at once, each step an `it` of its own.
 */

const REPO = join(import.meta.dirname, '..');

/** The Node the Nest 12 CommonJS host's jest runs on: jest loads ES modules from CJS on 24.9+. */
const REQUIRE_ESM_NODE = '24.22.3';
const [major, minor] = process.versions.node.split('.').map(Number);
const JEST_LOADS_ESM_FROM_CJS = major > 24 || (major === 24 && minor >= 9);

/** Whether the host's runner needs another Node than this one, from the npm registry. */
function needsRegistryNode(host: Host): boolean {
  return host.runnerNeedsRequireEsm && !JEST_LOADS_ESM_FROM_CJS;
}

/** Skipped loudly only off CI on a machine the registry has no Node for; CI must run it. */
function runnerSkipped(host: Host): boolean {
  return needsRegistryNode(host) && !REGISTRY_NODE_RUNS && !process.env.CI;
}

/** A host's steps, started at once; each `it` awaits one. A failed step fails those after it. */
interface HostRun {
  dir: string;
  installed: Promise<Output>;
  served: Promise<void>;
  tested: Promise<Output | undefined>;
}

function runHost(host: Host, tarball: Promise<string>, work: string): HostRun {
  const dir = join(work, host.name);
  const installed = install(host, dir, tarball);
  const built = installed.then(() => build(host, dir));
  const served = built.then(() => serve(host, dir));
  // After the node run, pass or fail: the two would compete for the CPU.
  const tested = built
    .then(() => served.catch(() => undefined))
    .then(() => (runnerSkipped(host) ? undefined : runE2e(host, dir)));
  for (const step of [installed, built, served, tested]) step.catch(() => undefined);
  return { dir, installed, served, tested };
}

/** The fixture, its cached `npm ci`, then `npm install <tarball> ...` as the user types it. */
async function install(host: Host, dir: string, tarball: Promise<string>): Promise<Output> {
  const [cache, tgz] = await Promise.all([cachedInstall(host), tarball]);
  await cp(join(HOSTS_DIR, host.name), dir, { recursive: true });
  const modules = join(cache, 'node_modules');
  await sh(`${host.name}: copying its cached npm ci`, 'cp', ['-a', modules, dir], { cwd: dir });
  return sh(
    `${host.name}: npm install of the tarball`,
    'npm',
    ['install', tgz, ...host.alongside, '--prefer-offline', '--no-audit', '--no-fund'],
    { cwd: dir, timeoutMs: 180_000 },
  );
}

/** The chat added to the CLI's app, type-checked (test/ too) and built by the host's own tools. */
async function build(host: Host, dir: string): Promise<void> {
  await addChat(host, dir);
  const tsc = join('node_modules', 'typescript', 'bin', 'tsc');
  const check = [tsc, '--noEmit', '-p', 'tsconfig.json'];
  await sh(`${host.name}: tsc --noEmit (src/ and test/)`, process.execPath, check, { cwd: dir });
  await sh(`${host.name}: npm run build (nest build)`, 'npm', ['run', 'build'], { cwd: dir });
}

/** `node dist/main.js`, two real clients, and the host's own endpoint posting into the room. */
async function serve(host: Host, dir: string): Promise<void> {
  const app = new HostProcess(dir, await freePort());
  const clients: ChatTestClient[] = [];
  try {
    await app.answering();
    const url = `ws://127.0.0.1:${app.port}/ws/socket-server/`;
    for (let i = 0; i < 2; i++) clients.push(await ChatTestClient.connect(url));
    for (const client of clients) expect(await client.next()).toEqual(GREETING);
    for (const client of clients) await client.nextOfType('history');

    clients[0].send({ message: 'hi' });
    for (const client of clients) {
      expect(await client.nextOfType('chat')).toMatchObject({ type: 'chat', message: 'hi' });
    }
    const posted = await http('POST', `${app.url}/announce?text=from%20the%20host`);
    expect(posted).toEqual({ status: 202, body: '{"sent":"from the host"}' });
    for (const client of clients) {
      expect(await client.nextOfType('chat')).toEqual({ type: 'chat', message: 'from the host' });
    }

    const probe = await http('GET', `${app.url}${host.probe.path}`);
    expect(probe.status).toBe(200);
    expect(probe.body).toContain(host.probe.contains);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${host.name}: node dist/main.js: ${message}\n${tail(app.output)}`, {
      cause: error,
    });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await app.stop();
  }
}

/** `npm run test:e2e`: the CLI's runner on the host's e2e tests, the CLI's own among them. */
async function runE2e(host: Host, dir: string): Promise<Output> {
  let env = userEnv();
  if (needsRegistryNode(host)) {
    if (!REGISTRY_NODE_RUNS) {
      throw new Error(
        `${host.name}: its jest needs Node 24.9+ and the npm registry has no Node for ` +
          `${process.platform}-${process.arch}: run this on Node 24.9+ or on linux-x64`,
      );
    }
    env = userEnv(dirname(await registryNode(REQUIRE_ESM_NODE)));
    const version = await sh(`${host.name}: node -v`, 'node', ['-v'], { cwd: dir, env });
    expect(version.stdout.trim()).toBe(`v${REQUIRE_ESM_NODE}`);
  }
  // Every e2e test of the host: the CLI's own test/app.e2e-spec.ts, unchanged, with the chat in
  // its AppModule, and the added one.
  return sh(`${host.name}: npm run test:e2e (${host.runner})`, 'npm', ['run', 'test:e2e'], {
    cwd: dir,
    env,
    timeoutMs: 120_000,
  });
}

/** `name@version` as installed in the host. */
async function installed(dir: string, name: string): Promise<string> {
  const manifest = JSON.parse(
    await readFile(join(dir, 'node_modules', name, 'package.json'), 'utf8'),
  ) as { version: string };
  return `${name}@${manifest.version}`;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

describe('The packed package in hosts made by the Nest CLIs', () => {
  let work: string;
  let packed: Promise<string>;
  const runs = new Map<Host['name'], HostRun>();

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'chat-package-'));
    // The hosts' cached installs proceed while the package builds; only their tarball waits.
    packed = (async () => {
      await sh('npm pack (its prepack builds dist/)', 'npm', ['pack', '--pack-destination', work], {
        cwd: REPO,
        env: process.env,
        timeoutMs: 180_000,
      });
      const name = (await readdir(work)).find((file) => file.endsWith('.tgz'));
      if (!name) throw new Error(`npm pack left no tarball in ${work}`);
      return join(work, name);
    })();
    packed.catch(() => undefined);
    for (const host of HOSTS) runs.set(host.name, runHost(host, packed, work));
  });

  afterAll(async () => {
    killRunning();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('packs into a tarball', async () => {
    expect(await packed).toMatch(/nest-channels-chat-[\d.]+\.tgz$/);
  }, 180_000);

  describe.each(HOSTS)('$name', (host) => {
    const run = (): HostRun => runs.get(host.name) as HostRun;

    it(`installs the tarball with Nest ${host.nestMajor}'s peers: no ERESOLVE, no warning naming the package`, async () => {
      const output = await run().installed;
      const { dir } = run();
      expect(relative(REPO, dir).startsWith('..')).toBe(true);
      expect(npmComplaints(output)).toEqual([]);
      const ours = await lstat(join(dir, 'node_modules', 'nest-channels-chat'));
      expect(ours.isSymbolicLink()).toBe(false);

      const majors: Record<string, number> = { typescript: host.typescriptMajor };
      for (const name of ['common', 'core', 'websockets', 'platform-ws', 'testing']) {
        majors[`@nestjs/${name}`] = host.nestMajor;
      }
      for (const [name, want] of Object.entries(majors)) {
        expect(await installed(dir, name)).toMatch(new RegExp(`^${name}@${want}\\.`));
      }
      // Optional peers are there only where the host installed them: the rest runs without.
      for (const peer of OPTIONAL_PEERS) {
        const present = await exists(join(dir, 'node_modules', peer));
        expect(`${peer}: ${present}`).toBe(`${peer}: ${host.optionalPeers.includes(peer)}`);
      }
    }, 240_000);

    it('compiles with its own TypeScript, runs under node, chats, and posts from its own controller', async () => {
      await run().served;
    }, 240_000);

    if (runnerSkipped(host)) {
      console.warn(
        `SKIPPED: ${host.name}'s jest needs Node ${REQUIRE_ESM_NODE} from the npm registry, ` +
          `which has no build for ${process.platform}-${process.arch}`,
      );
    }
    const onNode = needsRegistryNode(host) ? ` on Node ${REQUIRE_ESM_NODE}` : '';
    (runnerSkipped(host) ? it.skip : it)(
      `passes the CLI's own e2e test unchanged and one of the chat, under its own ${host.runner}${onNode}`,
      async () => {
        const output = (await run().tested) as Output;
        expect(printed(output)).toMatch(
          host.runner === 'jest' ? /Tests:\s+3 passed, 3 total/ : /Tests\s+3 passed \(3\)/,
        );
      },
      240_000,
    );
  });
});
