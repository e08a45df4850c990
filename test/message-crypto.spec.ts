import { MessageCipher } from '../src/channel-layer/message-crypto.js';

describe('MessageCipher', () => {
  it('opens what it sealed, and seals the same text differently each time', () => {
    const cipher = new MessageCipher(['secret']);
    const first = cipher.seal('{"type":"chat.message"}');
    expect(cipher.open(first)).toBe('{"type":"chat.message"}');
    expect(cipher.seal('{"type":"chat.message"}')).not.toBe(first);
  });

  it('seals with the first key and opens with any', () => {
    const old = new MessageCipher(['old']);
    const rotated = new MessageCipher(['new', 'old']);
    const retired = new MessageCipher(['new']);
    expect(rotated.open(old.seal('before'))).toBe('before');
    expect(retired.open(rotated.seal('after'))).toBe('after');
    expect(() => retired.open(old.seal('before'))).toThrow(/no symmetric encryption key/);
  });

  it('refuses a tampered message', () => {
    const cipher = new MessageCipher(['secret']);
    const sealed = Buffer.from(cipher.seal('pay 10'), 'base64');
    sealed[sealed.length - 1] ^= 1;
    expect(() => cipher.open(sealed.toString('base64'))).toThrow();
    expect(() => cipher.open('{"type":"plain"}')).toThrow(/not a sealed/);
  });
});
