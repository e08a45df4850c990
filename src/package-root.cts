import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The directory of this package, holding `client/` (the lobby) next to its builds. CommonJS in
 * both builds (ESM's `dist/`, CommonJS' `dist/cjs/`) and in the tests' `src/`, so `__dirname` is
 * there in each, and the lobby is found whatever the depth of the build that loaded it.
 */
export const PACKAGE_ROOT = findRoot(__dirname);

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'client', 'index.html'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no client/index.html above ${from}`);
  }
}
