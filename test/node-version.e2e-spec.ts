import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SUPPORTED_NODE, supportsNode } from '../src/node-version.js';
import { REGISTRY_NODE_RUNS, registryNode } from './support/registry-node.js';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '..', 'dist', 'main.js');

describe('The Node versions the stack needs', () => {
  it('accepts 20.19+, 22.12+ and 23+, and refuses what comes before each', () => {
    const accepted = ['20.19.0', '20.20.2', '22.12.0', '23.0.0', '24.22.3', '26.1.0'];
    const refused = ['18.20.8', '20.18.3', '21.7.3', '22.11.0'];
    expect(accepted.filter(supportsNode)).toEqual(accepted);
    expect(refused.filter(supportsNode)).toEqual([]);
    expect(supportsNode(process.versions.node)).toBe(true);
  });

  const onRegistryNode = REGISTRY_NODE_RUNS ? it : it.skip;
  if (!REGISTRY_NODE_RUNS) {
    console.warn('SKIPPED: the npm registry has no Node build for this platform to start on');
  }

  onRegistryNode(
    'stops npm start on Node 20.18 with a message naming the versions, before Nest loads',
    async () => {
      const node = await registryNode('20.18.3');
      const started = run(node, [MAIN], { timeout: 20_000, env: { ...process.env, PORT: '0' } });
      const failure = (await started.then(
        () => new Error('npm start ran on Node 20.18'),
        (error: unknown) => error,
      )) as { code?: number; stderr?: string; stdout?: string };
      expect(failure.code).toBe(1);
      expect(failure.stderr?.trim()).toBe(
        `nest-channels-chat needs Node ${SUPPORTED_NODE}; this is Node 20.18.3.`,
      );
      expect(failure.stdout).not.toContain('Nest');
    },
    240_000,
  );
});
