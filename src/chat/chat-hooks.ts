import type { Logger } from '@nestjs/common';
import { errorText } from '../error-text.js';
import type { ChatConnectionInfo, ChatModuleOptions, ConnectionHook } from './chat.options.js';
import { ChatMessageRejected, ErrorCode } from './chat.protocol.js';

/** Why `onMessage` kept a message back: what the sender is told. */
export interface MessageRefusal {
  code: ErrorCode | string;
  message: string;
}

/**
 * The host's hooks. A hook that throws costs only its own socket: `onMessage`'s failure becomes an
 * error frame to the sender, the connection hooks' failures are logged.
 */
export class ChatHooks {
  /** Whether any hook is set, and so whether connections keep their info (the upgrade request). */
  readonly any: boolean;
  /** Whether `onMessage` is set: without it a message goes out as sent, with no await. */
  readonly checksMessages: boolean;

  constructor(
    private readonly hooks: Pick<ChatModuleOptions, 'onMessage' | 'onConnect' | 'onDisconnect'>,
    private readonly logger: Logger,
  ) {
    this.checksMessages = hooks.onMessage !== undefined;
    this.any = Boolean(hooks.onMessage ?? hooks.onConnect ?? hooks.onDisconnect);
  }

  /** The text to send as `onMessage` returned it, or why it must not be sent. */
  async message(info: ChatConnectionInfo, text: string): Promise<string | MessageRefusal> {
    const hook = this.hooks.onMessage;
    if (!hook) return text;
    try {
      const message = await hook({ ...info, message: text });
      if (typeof message !== 'string') throw new TypeError('onMessage must return a string');
      return message;
    } catch (error) {
      if (error instanceof ChatMessageRejected) return error;
      this.logger.error(`onMessage hook failed: ${errorText(error)}`);
      return { code: ErrorCode.InternalError, message: 'message not sent: server error' };
    }
  }

  /** `onConnect`: the socket has joined and been greeted. */
  connected(info: ChatConnectionInfo | undefined): Promise<void> {
    return this.notify(this.hooks.onConnect, info);
  }

  /** `onDisconnect`: a joined socket has left. */
  disconnected(info: ChatConnectionInfo | undefined): Promise<void> {
    return this.notify(this.hooks.onDisconnect, info);
  }

  private async notify(
    hook: ConnectionHook | undefined,
    info: ChatConnectionInfo | undefined,
  ): Promise<void> {
    if (!hook) return;
    try {
      await hook(info as ChatConnectionInfo);
    } catch (error) {
      this.logger.error(`connection hook failed: ${errorText(error)}`);
    }
  }
}
