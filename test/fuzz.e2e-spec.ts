import { RunningChatApp, startChatApp } from './support/chat-app.js';
import { expectNoneOf, nextOf } from './support/frames.js';

/**
 * Fuzzing the frame handler: thousands of random and malformed frames, each answered as
 * docs/protocol.md says (a chat frame, an error frame with its code, or a documented close),
 * nobody else affected.
 * Seeded, so a failure replays: FUZZ_SEED=<seed> npm test -- test/fuzz.e2e-spec.ts
 */
const SEED = Number(process.env.FUZZ_SEED ?? 0xc0ffee);
const FRAMES = 10_000;
const BATCH = 500;

type Case = { data: string | Buffer; binary: boolean };

/** mulberry32: small, fast, good enough to fuzz with. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rand = prng(SEED);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)];

const ATOMS = [
  'a',
  'Z',
  '0',
  ' ',
  '"',
  '\\',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  'é',
  '😀',
  '\u0000',
  '\u0007',
  '\u2028',
  '\ud800',
  '\udfff',
  '\ufeff',
  'null',
  'true',
  '1e999',
  '-0',
  '__proto__',
];

function randomText(max: number): string {
  let text = '';
  for (let i = int(max); i > 0; i--) text += pick(ATOMS);
  return text;
}

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'];

function randomJsonValue(depth = 0): string {
  switch (depth > 3 ? int(5) : int(8)) {
    case 0:
      return JSON.stringify(randomText(12));
    case 1:
      return pick(['0', '-0', '1e999', '-1e999', '123e-999999', `1${'0'.repeat(400)}`, '0.1']);
    case 2:
      return pick(['true', 'false', 'null']);
    case 3:
      return String(rand() * 1e6);
    case 4:
      return '""';
    case 5:
      return `[${Array.from({ length: int(4) }, () => randomJsonValue(depth + 1)).join(',')}]`;
    default: {
      const keys = Array.from({ length: int(4) }, () =>
        rand() < 0.5 ? pick(HOSTILE_KEYS) : randomText(6),
      );
      return `{${keys.map((key) => `${JSON.stringify(key)}:${randomJsonValue(depth + 1)}`).join(',')}}`;
    }
  }
}

function mutate(text: string): string {
  let out = text;
  for (let edits = 1 + int(3); edits > 0; edits--) {
    const at = int(out.length + 1);
    const op = int(3);
    if (op === 0) out = out.slice(0, at) + out.slice(at + 1);
    else if (op === 1) out = out.slice(0, at) + pick(ATOMS) + out.slice(at);
    else out = out.slice(0, at) + pick(ATOMS) + out.slice(at + 1);
  }
  return out;
}

function deep(depth: number): string {
  return rand() < 0.5
    ? '['.repeat(depth) + ']'.repeat(depth)
    : `{"message":"deep","n":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
}

function randomCase(): Case {
  const text = (data: string): Case => ({ data, binary: false });
  const roll = rand();
  if (roll < 0.2) return text(JSON.stringify({ message: randomText(40) }));
  if (roll < 0.3) {
    const junk = HOSTILE_KEYS.map((key) => `${JSON.stringify(key)}:${randomJsonValue()}`);
    return text(
      `{${junk.slice(0, 1 + int(4)).join(',')},"message":${JSON.stringify(randomText(10))}}`,
    );
  }
  if (roll < 0.55) return text(mutate(JSON.stringify({ message: randomText(20) })));
  if (roll < 0.7) return text(randomText(60));
  if (roll < 0.8) return text(randomJsonValue());
  if (roll < 0.9) return text(`{"message":${randomJsonValue()}}`);
  if (roll < 0.93) return text(deep(1000 + int(20_000)));
  if (roll < 0.98) {
    return { data: Buffer.from(Array.from({ length: int(64) }, () => int(256))), binary: true };
  }
  return text('');
}

/**
 * What docs/protocol.md promises for a frame the server receives as `received`: the chat frame's
 * message, or the error code.
 */
function expected(received: string | Buffer, binary: boolean): { chat: string } | { code: string } {
  if (binary) return { code: 'binary_frame' };
  const data = String(received);
  if (data === '') return { code: 'empty_frame' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return { code: 'invalid_json' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { code: 'not_an_object' };
  }
  if (!Object.prototype.hasOwnProperty.call(parsed, 'message')) return { code: 'missing_message' };
  const message = (parsed as { message: unknown }).message;
  return typeof message === 'string' ? { chat: message } : { code: 'invalid_message' };
}

describe(`Fuzzing the frame handler (seed ${SEED})`, () => {
  let chat: RunningChatApp;

  beforeAll(async () => {
    // The rate limit has its own tests; here every frame must reach the handler.
    chat = await startChatApp({ rateLimit: false, heartbeatIntervalMs: 0 });
  });

  afterAll(async () => {
    await chat.close();
  });

  it(`answers each of ${FRAMES} random and malformed frames as documented, and only its sender`, async () => {
    const [fuzzer, bystander] = await Promise.all([chat.join(), chat.join()]);
    const seen = new Map<string, number>();
    for (let sent = 0; sent < FRAMES; sent += BATCH) {
      const cases = Array.from({ length: BATCH }, randomCase);
      // What the server receives: ws encodes a string as UTF-8, lone surrogates becoming U+FFFD.
      const wanted = cases.map(({ data, binary }) =>
        expected(binary ? data : Buffer.from(data).toString(), binary),
      );
      for (const { data, binary } of cases) fuzzer.socket.send(data, { binary });
      const chats: string[] = [];
      const codes: string[] = [];
      for (let i = 0; i < BATCH; i++) {
        const frame = await nextOf(fuzzer, 'chat', 'error');
        if (frame.type === 'chat') chats.push(frame.message as string);
        else codes.push(frame.code as string);
        const kind = frame.type === 'chat' ? 'chat' : (frame.code as string);
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }
      // Chats and errors each keep their order; the two may interleave differently.
      const wantedChats = wanted.flatMap((want) => ('chat' in want ? [want.chat] : []));
      expect(chats).toEqual(wantedChats);
      expect(codes).toEqual(wanted.flatMap((want) => ('code' in want ? [want.code] : [])));
      for (const message of wantedChats) {
        await expect(nextOf(bystander, 'chat')).resolves.toMatchObject({ message });
      }
    }
    // The generator reached every answer docs/protocol.md lists for a frame.
    expect([...seen.keys()].sort()).toEqual([
      'binary_frame',
      'chat',
      'empty_frame',
      'invalid_json',
      'invalid_message',
      'missing_message',
      'not_an_object',
    ]);
    await expectNoneOf(bystander, 100, 'chat', 'error');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
    bystander.send({ message: 'still serving' });
    await expect(nextOf(fuzzer, 'chat')).resolves.toMatchObject({ message: 'still serving' });
    await Promise.all([fuzzer.close(), bystander.close()]);
  }, 120_000);

  it('closes sockets that send invalid UTF-8 (1007) or oversized frames (1009), and only those', async () => {
    const bystander = await chat.join();
    for (let i = 0; i < 40; i++) {
      const bad = await chat.join();
      if (i % 4 === 0) {
        bad.send({ message: 'x'.repeat(256 * 1024 + int(1024)) });
        await expect(bad.closedByServer()).resolves.toMatchObject({ code: 1009 });
      } else {
        const bytes = Buffer.from([0x7b, ...Array.from({ length: 8 }, () => 0x80 + int(64)), 0xff]);
        bad.socket.send(bytes, { binary: false });
        await expect(bad.closedByServer()).resolves.toMatchObject({ code: 1007 });
      }
    }
    bystander.send({ message: 'unaffected' });
    await expect(nextOf(bystander, 'chat')).resolves.toMatchObject({ message: 'unaffected' });
    await bystander.close();
  });
});
