import { normalizeName } from './chat-session.js';

describe('normalizeName', () => {
  it.each([
    ['ann', 'ann'],
    ['  Zoë  ', 'Zoë'],
    ['ｆｕｌｌ', 'full'],
    ['Иван', 'Иван'],
    ['Αλέξης', 'Αλέξης'],
    ['李小龙', '李小龙'],
    ['😀', '😀'],
  ])('shows %j as %j', (name, shown) => {
    expect(normalizeName(name)).toBe(shown);
  });

  it.each([
    ['', 'empty'],
    ['   ', 'blanks'],
    ['\u3164', 'a Hangul filler'],
    ['\u115f\u1160', 'Hangul fillers'],
    ['\u2800\u2800', 'blank Braille'],
    ['\u0301', 'a lone combining mark'],
    ['a\u200bb', 'a zero-width space'],
    ['\u0430nn', 'a Cyrillic а among Latin letters'],
    ['p\u03bfp', 'a Greek ο among Latin letters'],
    ['x'.repeat(33), 'over 32 characters'],
  ])('refuses %j (%s)', (name) => {
    expect(normalizeName(name)).toBeUndefined();
  });
});
