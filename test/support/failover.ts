import type { HistoryFrame } from '../../src/index.js';
import type { ChatTestClient } from '../../src/testing/index.js';

/** What one chat message got back: an ack (in the history and published) or an error. */
type Answer = { type: string; id?: string; code?: string };

/** How chat went through a failover, as {@link chatThroughFailover} saw it. */
export interface FailoverOutcome {
  /** When the kill began (ms since the epoch). */
  killedAt: number;
  /** Sends answered `layer_unavailable` while Redis was away. */
  failed: number;
  /** Milliseconds from the kill to the first ack after a failed send (or the kill, `mayNotFail`). */
  ackedAfterMs: number;
  /** Milliseconds from the kill to the listener hearing a message sent after it. */
  heardAfterMs: number;
  /** Ids of every message the sender was told was sent. */
  acked: string[];
}

/**
 * The failover drill the Cluster and Sentinel tests share: `sender` (on one app) chats while
 * `kill()` takes the Redis primary away (or moves the room's slot); every answer in the gap must
 * be an ack or `layer_unavailable`, and within `resumeWithinMs` of the kill the sender is acked
 * again after a failed send (see `mayNotFail`) and `listener` (on the other app) hears it. On failure the error says where it got stuck, with
 * `describe()`'s view of the Redis side, and both sockets are closed so nothing waits on.
 */
export async function chatThroughFailover(options: {
  sender: ChatTestClient;
  listener: ChatTestClient;
  kill: () => Promise<void>;
  resumeWithinMs: number;
  describe?: () => Promise<string>;
  /**
   * The kill may leave every send acked (a slot moved, not a primary lost): chat then counts as
   * resumed on an ack heard once `kill()` is done, as well as on one after a failed send.
   */
  mayNotFail?: boolean;
}): Promise<FailoverOutcome> {
  const { sender, listener, kill, resumeWithinMs } = options;
  const heard = new Set<string>();
  const answers = new Map<string, Answer>();
  // Why a reader loop stopped early (a closed socket, a long silence), for the failure message.
  const stopped: string[] = [];
  const listening = (async () => {
    for (;;) {
      const frame = await listener.next<{ type: string; message?: string }>(30_000);
      if (frame.type !== 'chat' || frame.message === undefined) continue;
      heard.add(frame.message);
      if (frame.message === 'last') return;
    }
  })().catch((error: Error) => void stopped.push(`listener: ${error.message}`));
  const answered = (async () => {
    for (;;) {
      const frame = await sender.next<Answer>(30_000);
      if ((frame.type === 'ack' || frame.type === 'error') && frame.id)
        answers.set(frame.id, frame);
      if (frame.id === 'stop') return;
    }
  })().catch((error: Error) => void stopped.push(`sender: ${error.message}`));

  let sent = 0;
  const sendOne = (): string => {
    const id = `m${sent++}`;
    sender.send({ message: id, id });
    return id;
  };
  const answerTo = async (id: string): Promise<Answer> => {
    const deadline = Date.now() + 5000;
    while (!answers.has(id)) {
      if (Date.now() > deadline) throw new Error(`no answer to ${id} (${stopped.join('; ')})`);
      await pause(5);
    }
    return answers.get(id) as Answer;
  };

  try {
    for (let i = 0; i < 5; i++) {
      const answer = await answerTo(sendOne());
      if (answer.type !== 'ack') throw new Error(`before the kill: ${JSON.stringify(answer)}`);
    }
    const killedAt = Date.now();
    let killDone = false;
    const killing = kill().then(() => {
      killDone = true;
    });
    let failed = 0;
    let ackedAt = 0;
    let last: Answer | undefined;
    for (;;) {
      const id = sendOne();
      last = await answerTo(id);
      if (last.type === 'error') {
        if (last.code !== 'layer_unavailable') {
          throw new Error(`a send in the gap got ${JSON.stringify(last)}`);
        }
        failed++;
      } else if (failed > 0 || (options.mayNotFail && killDone)) {
        ackedAt ||= Date.now();
        const deadline = Date.now() + 300;
        while (!heard.has(id) && Date.now() < deadline) await pause(10);
        if (heard.has(id)) break;
      }
      if (Date.now() - killedAt > resumeWithinMs) {
        const redis = options.describe ? await options.describe().catch(String) : '';
        throw new Error(
          `chat did not resume within ${resumeWithinMs} ms: ${failed} send(s) failed, ` +
            (ackedAt
              ? `acked again after ${ackedAt - killedAt} ms but not heard`
              : 'no ack since') +
            `, last answer ${JSON.stringify(last)}, listener heard ${heard.size}` +
            (stopped.length ? `, stopped: ${stopped.join('; ')}` : '') +
            (redis ? `; Redis: ${redis}` : ''),
        );
      }
      await pause(50);
    }
    const heardAt = Date.now();
    await killing;
    sender.send({ message: 'last', id: 'stop' });
    await Promise.all([answered, listening]);
    if (stopped.length > 0) throw new Error(`after resuming: ${stopped.join('; ')}`);
    return {
      killedAt,
      failed,
      ackedAfterMs: ackedAt - killedAt,
      heardAfterMs: heardAt - killedAt,
      acked: [...answers]
        .filter(([id, answer]) => answer.type === 'ack' && id !== 'stop')
        .map(([id]) => id),
    };
  } catch (error) {
    await Promise.all([sender.close(), listener.close()]);
    throw error;
  }
}

/**
 * Joins with `join` until it is greeted (a join can meet a room store still reconnecting: 1013,
 * as a client would retry), failing after `deadline`; resolves with the client and its history.
 */
export async function joinAgain(
  join: () => Promise<ChatTestClient>,
  deadline: number,
): Promise<{ client: ChatTestClient; history: HistoryFrame }> {
  for (;;) {
    const client = await join().catch(() => undefined);
    if (client) return { client, history: await client.next<HistoryFrame>() };
    if (Date.now() > deadline) throw new Error('joins did not resume');
    await pause(200);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
