import { Injectable } from '@nestjs/common';
import { ChatEvent, type ChatEventContext } from './chat/chat-events.js';

/**
 * The lobby's typing indicator, built on the public custom-event API only: a client's
 * `{"type":"typing"}` becomes `{"type":"typing","user":<name>}` to the rest of its room, on every
 * process. The lobby sends one every few seconds while its user types; clients hide the hint
 * when none came for a while, so nothing needs a "stopped typing" frame.
 */
@Injectable()
export class TypingEvents {
  @ChatEvent('typing')
  async typing(event: ChatEventContext): Promise<void> {
    await event.emit({ type: 'typing', user: event.userName }, { exceptSelf: true });
  }
}
