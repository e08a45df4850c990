import type { ChannelMessage } from '../channel-layer/channel-layer.js';
import { HOST_FRAME, wireFrame } from './chat.protocol.js';
import { TextFrame } from './outbox.js';

/**
 * The wire frame of the room message being fanned out, serialized and encoded once for all its
 * members: the layer hands every member of one groupSend the same message object, so it is
 * memoized on that object's identity.
 */
export class FanOutFrame {
  private message?: ChannelMessage;
  private frame?: TextFrame;
  /** The channel the message leaves out (an event's `exceptSelf`), if any. */
  except?: string;

  /** The message's frame; undefined for a type with no frame. */
  of(message: ChannelMessage): TextFrame | undefined {
    if (message !== this.message) {
      if (message.type === HOST_FRAME && typeof message.text === 'string') {
        this.frame = new TextFrame(message.text);
        this.except = typeof message.except === 'string' ? message.except : undefined;
      } else {
        const frame = wireFrame(message);
        if (!frame) return undefined;
        this.frame = new TextFrame(JSON.stringify(frame));
        this.except = undefined;
      }
      this.message = message;
    }
    return this.frame;
  }
}
