import { compileOriginCheck } from './origin-check.js';

describe('compileOriginCheck (allowedOrigins)', () => {
  const sameHost = compileOriginCheck({ allowedOrigins: [], rejectMissingOrigin: false });

  it('allows the server’s own host by default', () => {
    expect(sameHost('http://127.0.0.1:8000', '127.0.0.1:8000')).toBe(true);
    expect(sameHost('https://Chat.Example.com', 'chat.example.com')).toBe(true);
  });

  it('normalizes default ports for the Origin’s scheme', () => {
    expect(sameHost('http://example.com', 'example.com:80')).toBe(true);
    expect(sameHost('https://example.com', 'example.com:443')).toBe(true);
    expect(sameHost('https://example.com', 'example.com:80')).toBe(false);
  });

  it('refuses another host or port by default', () => {
    expect(sameHost('http://evil.example', '127.0.0.1:8000')).toBe(false);
    expect(sameHost('http://127.0.0.1:9000', '127.0.0.1:8000')).toBe(false);
    expect(sameHost('http://127.0.0.1:8000', undefined)).toBe(false);
  });

  it('refuses opaque and malformed origins', () => {
    expect(sameHost('null', '127.0.0.1:8000')).toBe(false);
    expect(sameHost('not a url', '127.0.0.1:8000')).toBe(false);
  });

  it('allows a missing Origin unless rejectMissingOrigin', () => {
    expect(sameHost(undefined, 'x')).toBe(true);
    const strict = compileOriginCheck({ allowedOrigins: [], rejectMissingOrigin: true });
    expect(strict(undefined, 'x')).toBe(false);
    expect(strict('', 'x')).toBe(false);
  });

  it('matches full origins exactly, scheme and port included', () => {
    const check = compileOriginCheck({
      allowedOrigins: ['https://chat.example.com'],
      rejectMissingOrigin: false,
    });
    expect(check('https://chat.example.com', 'internal:8000')).toBe(true);
    expect(check('https://chat.example.com:443', 'internal:8000')).toBe(true);
    expect(check('http://chat.example.com', 'internal:8000')).toBe(false);
    expect(check('https://chat.example.com:8443', 'internal:8000')).toBe(false);
  });

  it('matches a host on any port, or on the port it names', () => {
    const anyPort = compileOriginCheck({
      allowedOrigins: ['example.com'],
      rejectMissingOrigin: false,
    });
    expect(anyPort('http://example.com:1234', 'x')).toBe(true);
    expect(anyPort('http://sub.example.com', 'x')).toBe(false);
    const onePort = compileOriginCheck({
      allowedOrigins: ['example.com:8443', '[::1]:3000'],
      rejectMissingOrigin: false,
    });
    expect(onePort('https://example.com:8443', 'x')).toBe(true);
    expect(onePort('https://example.com', 'x')).toBe(false);
    expect(onePort('http://[::1]:3000', 'x')).toBe(true);
  });

  it('matches a domain and its subdomains with a leading dot', () => {
    const check = compileOriginCheck({
      allowedOrigins: ['.example.com'],
      rejectMissingOrigin: false,
    });
    expect(check('https://example.com', 'x')).toBe(true);
    expect(check('https://a.b.example.com', 'x')).toBe(true);
    expect(check('https://badexample.com', 'x')).toBe(false);
  });

  it('allows any origin with *, but still applies rejectMissingOrigin', () => {
    const check = compileOriginCheck({ allowedOrigins: ['*'], rejectMissingOrigin: true });
    expect(check('null', 'x')).toBe(true);
    expect(check('https://anywhere.example', 'x')).toBe(true);
    expect(check(undefined, 'x')).toBe(false);
  });

  it('throws on entries that are neither origins nor hosts', () => {
    expect(() =>
      compileOriginCheck({ allowedOrigins: ['http://'], rejectMissingOrigin: false }),
    ).toThrow(TypeError);
    expect(() =>
      compileOriginCheck({ allowedOrigins: ['example.com/path'], rejectMissingOrigin: false }),
    ).toThrow(/not a host/);
  });
});
