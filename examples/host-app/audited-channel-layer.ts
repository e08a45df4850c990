import { ChannelMessage, InMemoryChannelLayer } from '../../src/index.js';

/** The host's custom layer: in memory, and it counts the chat messages sent to each group. */
export class AuditedChannelLayer extends InMemoryChannelLayer {
  readonly sentByGroup = new Map<string, number>();

  override async groupSend(group: string, message: ChannelMessage): Promise<void> {
    await super.groupSend(group, message);
    if (message.type === 'chat.message') {
      this.sentByGroup.set(group, (this.sentByGroup.get(group) ?? 0) + 1);
    }
  }
}
