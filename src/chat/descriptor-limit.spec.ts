import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { descriptorLimit } from './descriptor-limit.js';

describe('descriptorLimit', () => {
  const file = (text: string): string => {
    const path = join(mkdtempSync(join(tmpdir(), 'limits-')), 'limits');
    writeFileSync(path, text);
    return path;
  };

  it('reads the soft limit of open files', () => {
    const limits = file(
      'Limit                     Soft Limit           Hard Limit           Units     \n' +
        'Max open files            20000                40000                files     \n',
    );
    expect(descriptorLimit(limits)).toBe(20000);
  });

  it('is undefined where it cannot tell', () => {
    expect(
      descriptorLimit(file('Max open files            unlimited            unlimited\n')),
    ).toBe(undefined);
    expect(descriptorLimit('/nonexistent/limits')).toBeUndefined();
  });
});
