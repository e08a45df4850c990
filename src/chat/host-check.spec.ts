import { compileHostCheck } from './host-check.js';

describe('compileHostCheck (DNS rebinding)', () => {
  const machine = { machineNames: ['chat-box'], machineAddresses: ['192.168.1.5', 'fe80::5'] };
  const own = compileHostCheck(machine);

  it('allows the connection’s local address, on any port', () => {
    expect(own('127.0.0.1:8000', '127.0.0.1')).toBe(true);
    expect(own('127.0.0.1', '127.0.0.1')).toBe(true);
    expect(own('10.0.0.7:9', '10.0.0.7')).toBe(true);
  });

  it('allows IPv6 addresses in brackets, and mapped IPv4 as IPv4', () => {
    expect(own('[::1]:8000', '::1')).toBe(true);
    expect(own('[0:0:0:0:0:0:0:1]:8000', '::1')).toBe(true);
    expect(own('127.0.0.1:8000', '::ffff:127.0.0.1')).toBe(true);
    expect(own('::1', '::1')).toBe(false);
  });

  it('allows localhost and *.localhost on a loopback address only', () => {
    expect(own('localhost:8000', '127.0.0.1')).toBe(true);
    expect(own('LocalHost', '::1')).toBe(true);
    expect(own('app.localhost:8000', '127.0.0.2')).toBe(true);
    expect(own('localhost:8000', '10.0.0.7')).toBe(false);
    expect(own('localhost.evil.example', '127.0.0.1')).toBe(false);
  });

  it('allows the machine’s names and addresses on any local address', () => {
    expect(own('chat-box:8000', '10.0.0.7')).toBe(true);
    expect(own('192.168.1.5:8000', '127.0.0.1')).toBe(true);
    expect(own('[fe80::5]:8000', '127.0.0.1')).toBe(true);
  });

  it('refuses any other name, however it resolves', () => {
    expect(own('evil.com', '127.0.0.1')).toBe(false);
    expect(own('evil.com:8000', '10.0.0.7')).toBe(false);
    expect(own('10.0.0.8:8000', '10.0.0.7')).toBe(false);
    expect(own('127.0.0.1:8000', undefined)).toBe(false);
  });

  it('refuses a malformed Host, userinfo and paths included', () => {
    expect(own('evil.com@127.0.0.1:8000', '127.0.0.1')).toBe(false);
    expect(own('127.0.0.1/x', '127.0.0.1')).toBe(false);
    expect(own('127.0.0.1:notaport', '127.0.0.1')).toBe(false);
    expect(own('127.0.0.1 evil', '127.0.0.1')).toBe(false);
  });

  it('allows a request without Host (HTTP/1.0): no browser sends one', () => {
    expect(own(undefined, '127.0.0.1')).toBe(true);
    expect(own('', '127.0.0.1')).toBe(true);
  });

  it('allows the hosts of allowedOrigins entries, on any port', () => {
    const check = compileHostCheck({
      ...machine,
      allowedOrigins: ['https://chat.example.com', 'example.org:8443', '.example.net'],
    });
    expect(check('chat.example.com', '10.0.0.7')).toBe(true);
    expect(check('chat.example.com:8000', '10.0.0.7')).toBe(true);
    expect(check('example.org', '10.0.0.7')).toBe(true);
    expect(check('example.net', '10.0.0.7')).toBe(true);
    expect(check('a.b.example.net:8000', '10.0.0.7')).toBe(true);
    expect(check('example.com', '10.0.0.7')).toBe(false);
    expect(check('badexample.net', '10.0.0.7')).toBe(false);
  });

  it('keeps the local address allowed with allowedOrigins (probes and scrapers by IP)', () => {
    const check = compileHostCheck({ ...machine, allowedOrigins: ['https://chat.example.com'] });
    expect(check('10.0.0.7:8000', '10.0.0.7')).toBe(true);
    expect(check('localhost:8000', '127.0.0.1')).toBe(true);
    expect(check('evil.com', '127.0.0.1')).toBe(false);
  });

  it('allows any Host with `*`', () => {
    expect(compileHostCheck({ ...machine, allowedOrigins: ['*'] })('evil.com', '127.0.0.1')).toBe(
      true,
    );
  });

  it('throws on a malformed allowedOrigins entry', () => {
    expect(() => compileHostCheck({ allowedOrigins: ['http://'] })).toThrow(TypeError);
    expect(() => compileHostCheck({ allowedOrigins: ['a/b'] })).toThrow(TypeError);
  });

  it('defaults to this machine’s hostname and interface addresses', () => {
    const check = compileHostCheck();
    expect(check('127.0.0.1:8000', '10.0.0.7')).toBe(true);
  });

  it('reads the socket’s local address only for a Host it must compare with it', () => {
    let reads = 0;
    const socket = {
      get localAddress(): string {
        reads++;
        return '127.0.0.1';
      },
    };
    expect(own('chat-box:8000', socket)).toBe(true);
    expect(own('chat-box:8000', socket)).toBe(true);
    expect(reads).toBe(0);
    expect(own('localhost:8000', socket)).toBe(true);
    expect(own('evil.example', socket)).toBe(false);
    expect(reads).toBe(2);
  });
});
