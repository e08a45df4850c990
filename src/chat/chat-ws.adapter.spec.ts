import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import type { MessageMappingProperties } from '@nestjs/websockets';
import { of } from 'rxjs';
import type { WebSocket } from 'ws';
import { ChatWsAdapter, RAW_FRAME_EVENT } from './chat-ws.adapter.js';

/** Just what `bindMessageHandlers` touches of a ws client. */
class FakeClient extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly sent: string[] = [];
  send(data: string): void {
    this.sent.push(data);
  }
}

/** A client bound to one handler; Nest's handler callbacks return a promise, tests may not. */
function bind(callback: (data: unknown) => unknown): FakeClient {
  const client = new FakeClient();
  const handler = {
    message: RAW_FRAME_EVENT,
    methodName: 'onFrame',
    callback,
    isAckHandledManually: false,
  } as MessageMappingProperties;
  new ChatWsAdapter().bindMessageHandlers(client as unknown as WebSocket, [handler]);
  return client;
}

/** Lets the handler's promise and the reply settle. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ChatWsAdapter.bindMessageHandlers (one listener per client)', () => {
  it('hands a text frame to the handler as a string, a binary frame as its Buffer', () => {
    const seen: unknown[] = [];
    const client = bind((data: unknown) => void seen.push(data));
    client.emit('message', Buffer.from('{"message":"hi"}'), false);
    client.emit('message', Buffer.from([1, 2]), true);
    expect(seen).toEqual(['{"message":"hi"}', Buffer.from([1, 2])]);
  });

  it("sends a handler's non-nil result as JSON, as Nest's adapter does", async () => {
    const client = bind(async () => ({ ok: true }));
    client.emit('message', Buffer.from('x'), false);
    await settle();
    expect(client.sent).toEqual(['{"ok":true}']);
  });

  it('sends each value of an Observable result', async () => {
    const client = bind(async () => of(1, 2));
    client.emit('message', Buffer.from('x'), false);
    await settle();
    expect(client.sent).toEqual(['1', '2']);
  });

  it('sends nothing for an undefined result, or once the socket is no longer open', async () => {
    const client = bind(async (data: unknown) => (data === 'late' ? 'reply' : undefined));
    client.emit('message', Buffer.from('quiet'), false);
    client.emit('message', Buffer.from('late'), false);
    client.readyState = 2;
    await settle();
    expect(client.sent).toEqual([]);
  });

  it('ignores a frame whose handler throws synchronously, and goes on with the next', async () => {
    let calls = 0;
    const client = bind(() => {
      calls++;
      if (calls === 1) throw new Error('boom');
      return Promise.resolve('second');
    });
    client.emit('message', Buffer.from('a'), false);
    client.emit('message', Buffer.from('b'), false);
    await settle();
    expect(client.sent).toEqual(['"second"']);
  });
});

describe('ChatWsAdapter on an HTTP server the host passed in', () => {
  it('routes its upgrades while in use, and takes its listener off the server on dispose', async () => {
    const httpServer = createServer();
    const before = httpServer.listenerCount('upgrade');
    const adapter = new ChatWsAdapter(httpServer);
    const wsServer = adapter.create(0, { path: '/ws/socket-server' });
    expect(httpServer.listenerCount('upgrade')).toBe(before + 1);
    await adapter.close(wsServer);
    await adapter.dispose();
    // The host's server lives on without our listener: a later upgrade is the host's to answer.
    expect(httpServer.listenerCount('upgrade')).toBe(before);
  });
});
