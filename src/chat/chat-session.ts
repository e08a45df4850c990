import { isValidGroupName } from '../channel-layer/channel-names';
import { isRecordId } from '../rooms/room-state';
import { ErrorCode, ProtocolError } from './chat.protocol';

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
  if (!isValidGroupName(room)) {
    return new ProtocolError(
      ErrorCode.InvalidRoom,
      `invalid room ${JSON.stringify(room)}: use ASCII letters, digits, '-', '_' or '.', fewer than 100`,
    );
  }
  const session: ChatSession = { room };
  const name = url.searchParams.get('name');
  if (name !== null) {
    const trimmed = name.trim();
    if (!NAME.test(trimmed)) {
      return new ProtocolError(
        ErrorCode.InvalidName,
        'invalid name: use 1 to 32 printable characters',
      );
    }
    session.name = trimmed;
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
