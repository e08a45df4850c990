import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The directory of this package, holding `client/` (the lobby) next to its builds. CommonJS in
 * both builds (ESM's `dist/`, CommonJS' `dist/cjs/`) and in the tests' `src/`, so `__dirname` is
 * there in each, and the lobby is found whatever the depth of the build that loaded it.
 */
export const PACKAGE_ROOT = findRoot(__dirname);

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'client', 'index.html')) && isThisPackage(dir)) return dir;
    if (dirname(dir) === dir) throw new Error(`no client/index.html above ${from}`);
  }
}

/** Ours, not a host's own `client/` higher up (a bundled app, say). */
function isThisPackage(dir: string): boolean {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      name?: unknown;
    };
    return manifest.name === 'nest-channels-chat';
  } catch {
    return false;
  }
}
