import { isValidGroupName } from '../channel-layer/channel-names.js';
import { isRecordId } from '../rooms/room-state.js';
import { ErrorCode, ProtocolError, RESERVED_GROUP_PREFIX } from './chat.protocol.js';

/** Where a socket chats and as whom, from its handshake URL. */
export interface ChatSession {
  /** The room, which is also the socket's group. */
  room: string;
  /** `?name=`, when given. */
  name?: string;
  /** `?since=`: the last record id the client saw, to resume from. */
  since?: string;
}

/** 1–32 characters, none of them control, format or unassigned code points. */
const NAME = /^[^\p{C}]{1,32}$/u;

/**
 * What shows nothing: white space, default-ignorable code points (the Hangul fillers U+115F,
 * U+1160, U+3164 and U+FFA0 among them) and the blank Braille pattern.
 */
const BLANK = /[\p{White_Space}\p{Default_Ignorable_Code_Point}\u2800]/gu;

/** Something that shows on its own: a letter, digit, punctuation or symbol. */
const VISIBLE = /[\p{L}\p{N}\p{P}\p{S}]/u;

/**
 * `name`, NFKC-normalized (full-width and other compatibility forms become their plain letters),
 * or undefined when it may not be shown: not 1–32 printable characters, nothing but blanks, or
 * Latin letters mixed with Cyrillic or Greek ones (`аnn` with a Cyrillic `а`, to pass for `ann`).
 */
export function normalizeName(name: string): string | undefined {
  const normalized = name.normalize('NFKC').trim();
  if (!NAME.test(normalized) || !VISIBLE.test(normalized.replace(BLANK, ''))) return undefined;
  const latin = /\p{Script=Latin}/u.test(normalized);
  if (latin && /[\p{Script=Cyrillic}\p{Script=Greek}]/u.test(normalized)) return undefined;
  return normalized;
}

/**
 * Reads the room (`/ws/socket-server/?room=NAME` or `<roomPath>/NAME/`), the display name and
 * the resume point from the upgrade URL. Never throws: a bad value is a `ProtocolError`.
 */
export function parseSession(
  url: URL,
  paths: { roomPath: string; defaultRoom: string },
): ChatSession | ProtocolError {
  const prefix = `${paths.roomPath}/`;
  let room = url.searchParams.get('room') ?? paths.defaultRoom;
  if (url.pathname.startsWith(prefix)) {
    try {
      room = decodeURIComponent(url.pathname.slice(prefix.length).replace(/\/$/, ''));
    } catch {
      room = '';
    }
  }
  if (!isValidGroupName(room) || room.startsWith(RESERVED_GROUP_PREFIX)) {
    return new ProtocolError(
      ErrorCode.InvalidRoom,
      `invalid room ${JSON.stringify(room)}: use ASCII letters, digits, '-', '_' or '.', fewer than 100, not beginning with __`,
    );
  }
  const session: ChatSession = { room };
  const name = url.searchParams.get('name');
  if (name !== null) {
    const shown = normalizeName(name);
    if (shown === undefined) {
      return new ProtocolError(
        ErrorCode.InvalidName,
        'invalid name: use 1 to 32 printable characters, not only blanks, in one script',
      );
    }
    session.name = shown;
  }
  const since = url.searchParams.get('since');
  if (since !== null && since !== '') {
    if (!isRecordId(since)) {
      return new ProtocolError(ErrorCode.InvalidSince, 'invalid since: use a chat frame id');
    }
    session.since = since;
  }
  return session;
}

/** A readable name for a guest: `guest-` and four letters. */
export function guestName(): string {
  const letters = 'abcdefghijkmnpqrstuvwxyz';
  let suffix = '';
  for (let i = 0; i < 4; i++) suffix += letters[Math.floor(Math.random() * letters.length)];
  return `guest-${suffix}`;
}
