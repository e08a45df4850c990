import { execFile } from 'node:child_process';
import { access, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { ChatTestClient } from '../src/testing/index.js';
import { buildApp } from './support/app-process.js';
import { HostProcess, freePort } from './support/hosts.js';

/**
 * The README's code runs, so it cannot drift from the package: each `ts` block is either a test
 * (it has `describe(`), run by this repo's jest as a host's e2e test would be, or the app (it has
 * `NestFactory.create`), compiled by tsc against the built package's types and started with node.
 * Both import `nest-channels-chat` by its name, as a host does. And every option of ChatModule is
 * in the README.
 */
const ROOT = join(import.meta.dirname, '..');
const WORK = join(ROOT, 'test', 'readme-snippets');
const run = promisify(execFile);

/** The pages: README.md, and each page under docs/ it links to. */
async function pages(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md'));
  return ['README.md', ...docs.map((name) => join('docs', name))];
}

async function snippets(): Promise<string[]> {
  const blocks: string[] = [];
  for (const page of await pages()) {
    const text = await readFile(join(ROOT, page), 'utf8');
    blocks.push(
      ...[...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string),
    );
  }
  return blocks;
}

describe("The README's and docs' snippets", () => {
  beforeAll(async () => {
    await buildApp(); // the package's types and ESM build, which the snippets import by name
    await rm(WORK, { recursive: true, force: true });
    await mkdir(WORK, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await rm(WORK, { recursive: true, force: true });
  });

  it('are tests and one app, each importing the package by its name', async () => {
    const blocks = await snippets();
    const tests = blocks.filter((code) => code.includes('describe('));
    const apps = blocks.filter((code) => code.includes('NestFactory.create'));
    expect(tests.length).toBeGreaterThanOrEqual(2);
    expect(apps).toHaveLength(1);
    expect(tests.length + apps.length).toBe(blocks.length);
    for (const code of blocks) expect(code).toContain("from 'nest-channels-chat'");
  });

  it('the tests pass under jest', async () => {
    const tests = (await snippets()).filter((block) => block.includes('describe('));
    const files = tests.map((_, i) => join('test', 'readme-snippets', `snippet-${i}.e2e-spec.ts`));
    await Promise.all(tests.map((code, i) => writeFile(join(ROOT, files[i] as string), code)));
    const cases = tests.reduce((sum, code) => sum + (code.match(/^\s*it\(/gm) ?? []).length, 0);
    const jest = join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js');
    const { stderr } = await run(
      process.execPath,
      [
        '--experimental-vm-modules',
        '--disable-warning=ExperimentalWarning',
        jest,
        '--runInBand',
        // Past the suite's own ignore list, which keeps this directory out of `npm test`.
        '--testPathIgnorePatterns',
        '/node_modules/',
        '--runTestsByPath',
        ...files,
      ],
      { cwd: ROOT, timeout: 90_000 },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`a docs test failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    });
    expect(stderr).toMatch(new RegExp(`Tests:\\s+${cases} passed, ${cases} total`));
  }, 120_000);

  it('the app compiles, starts, chats and serves its lobby and rooms list', async () => {
    const [code] = (await snippets()).filter((block) => block.includes('NestFactory.create'));
    await writeFile(join(WORK, 'main.ts'), code as string);
    await writeFile(
      join(WORK, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: { rootDir: '.', outDir: 'out', types: ['node'], sourceMap: false },
        include: ['main.ts'],
        exclude: [],
      }),
    );
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await run(process.execPath, [tsc, '-p', join(WORK, 'tsconfig.json')], { cwd: ROOT }).catch(
      (error: { stdout?: string }) => {
        throw new Error(`the README's app does not compile:\n${error.stdout ?? ''}`);
      },
    );
    const app = new HostProcess(WORK, await freePort(), join('out', 'main.js'));
    try {
      await app.answering(15_000);
      const client = await ChatTestClient.connect(`ws://127.0.0.1:${app.port}/ws/socket-server/`);
      await client.greeted();
      client.send({ message: 'from the README' });
      await expect(client.nextOfType('chat')).resolves.toMatchObject({
        message: 'from the README',
      });
      const lobby = await fetch(`${app.url}/chat`);
      expect(await lobby.text()).toContain('id="messages"');
      const rooms = (await (await fetch(`${app.url}/api/rooms`)).json()) as unknown;
      expect(rooms).toEqual(expect.arrayContaining([expect.objectContaining({ room: 'test' })]));
      await client.close();
    } finally {
      await app.stop();
    }
  }, 60_000);

  it('name every option of ChatModule (docs/embedding.md)', async () => {
    const embedding = await readFile(join(ROOT, 'docs', 'embedding.md'), 'utf8');
    // The options table's first column: every identifier in its code spans (`onConnect(info)`,
    // `rateLimit` (`messagesPerSecond`, ...), `{ route }`).
    const firstCells = embedding
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|')[1] ?? '');
    const named = new Set(
      firstCells.flatMap((cell) =>
        (cell.match(/`[^`]+`/g) ?? []).flatMap((span) => span.match(/[A-Za-z_]\w*/g) ?? []),
      ),
    );
    const missing: string[] = [];
    for (const file of ['src/chat/chat.options.ts', 'src/chat/connection-policy.ts']) {
      const text = await readFile(join(ROOT, file), 'utf8');
      const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest);
      source.forEachChild((node) => {
        if (!ts.isInterfaceDeclaration(node) || !/Options$|Extras$/.test(node.name.text)) return;
        for (const member of node.members) {
          const name = member.name && ts.isIdentifier(member.name) ? member.name.text : undefined;
          if (name && !named.has(name)) missing.push(`${node.name.text}.${name}`);
        }
      });
    }
    expect(missing).toEqual([]);
  });

  it('link only to files and headings that exist', async () => {
    const broken: string[] = [];
    for (const page of await pages()) {
      const text = await readFile(join(ROOT, page), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (!target || /^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
        const [file, anchor] = target.split('#');
        const path = file ? join(ROOT, dirname(page), file) : join(ROOT, page);
        const exists = await access(path).then(
          () => true,
          () => false,
        );
        if (!exists) {
          broken.push(`${page}: ${target}`);
          continue;
        }
        if (anchor && path.endsWith('.md')) {
          const headings = (await readFile(path, 'utf8')).match(/^#+ .*$/gm) ?? [];
          if (!headings.map(slug).includes(anchor)) broken.push(`${page}: ${target}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/^#+ /, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}
