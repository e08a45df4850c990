import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ChannelLayer } from '../channel-layer/channel-layer.js';
import { InMemoryRoomState } from '../rooms/in-memory-room-state.js';
import { RoomState } from '../rooms/room-state.js';
import type { AdmissionRefusal } from './admission.js';
import type { GuardDrop } from './connection-guard.js';
import type { RateLimitKind } from './rate-limiter.js';

/** Layer calls whose latency is observed. */
export type LayerOperation = 'group_send' | 'group_add' | 'group_discard';

/** Why the server ended a connection. */
export type ServerCloseReason =
  | 'rate_limited'
  | 'heartbeat_timeout'
  | 'layer_unavailable'
  | 'invalid_session'
  | 'message_timeout'
  | 'unfinished_budget';

/** Why a handshake was refused. */
export type HandshakeRefusal =
  AdmissionRefusal | 'origin' | 'auth' | 'auth_timeout' | 'host' | 'room';

/**
 * The chat's numbers, in a Prometheus registry of its own (`registry`; `GET /metrics` serves it).
 *
 * The hot path pays one integer increment per socket write, on a plain field: the counters below
 * are turned into Prometheus samples only when scraped. Deliveries are counted per socket written,
 * not per `groupSend` times its member count, so skipped members never count as delivered.
 */
@Injectable()
export class ChatMetrics {
  /** Frames received from clients, bad and rate-limited ones included. */
  framesReceived = 0;
  /** `chat` frames written to sockets: one per receiving socket per message. */
  deliveries = 0;
  /** `chat` frames not written because the socket's send buffer was over `maxBufferedBytes`. */
  dropped = 0;
  /** Frames other than `chat` written to sockets: greetings, errors, drop notices. */
  controlFramesSent = 0;
  /** Pings not answered because the socket's send buffer was over `maxBufferedBytes`. */
  pongsSkipped = 0;
  /** Error frames not sent because the socket's send buffer was over `maxBufferedBytes`. */
  errorsSkipped = 0;
  /** Acks and event replies not sent because the socket's send buffer was over the limit. */
  repliesSkipped = 0;
  /** History records left out of a join's history frame to keep it within the send budget. */
  joinHistoryTrimmed = 0;
  /** Room records given again to sockets after the layer lost their deliveries for a while. */
  caughtUp = 0;
  /** Catch-ups that could not read the room's history: those sockets may have missed messages. */
  catchUpsFailed = 0;

  /** Every metric below, and nothing else (no process metrics: the app adds those). */
  readonly registry = new Registry();

  private connections = 0;
  private connectionsOpened = 0;
  /** Local sockets per room. */
  private readonly rooms = new Map<string, number>();
  private sendBuffers: () => number = () => 0;
  private addresses: () => number = () => 0;
  private sendLimit: () => number = () => 0;
  private unfinished: () => number = () => 0;
  private readonly errors: Counter<'code'>;
  private readonly refused: Counter<'reason'>;
  private readonly closed: Counter<'reason'>;
  private readonly rateLimited: Record<RateLimitKind, Counter.Internal>;
  private readonly tcpDropped: Counter<'reason'>;
  private readonly layerLatency: Histogram<'operation'>;
  private readonly layerTimers: Record<LayerOperation, Histogram.Internal<'operation'>>;

  constructor(layer: ChannelLayer, rooms: RoomState) {
    const registers = [this.registry];
    const fromField = (name: string, help: string, read: () => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    };
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge('chat_connections', 'Open WebSocket connections.', () => this.connections);
    fromField(
      'chat_connections_opened_total',
      'WebSocket connections accepted.',
      () => this.connectionsOpened,
    );
    gauge('chat_rooms', 'Rooms (groups) with at least one socket on this node.', () => {
      return this.rooms.size;
    });
    fromField('chat_frames_received_total', 'Frames received from clients.', () => {
      return this.framesReceived;
    });
    fromField('chat_frames_sent_total', 'Frames written to clients, of every type.', () => {
      return this.deliveries + this.controlFramesSent;
    });
    fromField(
      'chat_deliveries_total',
      'Frames of room messages (chat, presence, host frames) written to sockets.',
      () => this.deliveries,
    );
    fromField(
      'chat_deliveries_dropped_total',
      'Chat frames not written to a slow socket whose send buffer was full.',
      () => this.dropped,
    );
    fromField(
      'chat_layer_group_send_skipped_full_total',
      'Group members the channel layer skipped because they were full (includes slow sockets).',
      () => layer.stats.groupSendSkippedFull,
    );
    gauge(
      'chat_send_buffer_bytes',
      'Bytes queued in user space for all sockets (bounded by maxBufferedBytes per socket).',
      () => this.sendBuffers(),
    );
    gauge(
      'chat_connection_addresses',
      'Client addresses (IPv6: /64s) with at least one open socket.',
      () => this.addresses(),
    );
    gauge(
      'chat_send_limit_bytes',
      'Bytes one socket may have queued now: maxBufferedBytes, or less while all sockets together hold more than maxTotalBufferedBytes.',
      () => this.sendLimit(),
    );
    gauge(
      'chat_unfinished_bytes',
      'Bytes of messages not yet complete that ws holds for all sockets (bounded by maxUnfinishedBytes).',
      () => this.unfinished(),
    );
    fromField(
      'chat_pongs_skipped_total',
      'Pings not answered because the socket had maxBufferedBytes queued.',
      () => this.pongsSkipped,
    );
    fromField(
      'chat_errors_skipped_total',
      'Error frames not sent because the socket had maxBufferedBytes queued.',
      () => this.errorsSkipped,
    );
    fromField(
      'chat_replies_skipped_total',
      'Acks and event replies not sent because the socket had maxBufferedBytes queued.',
      () => this.repliesSkipped,
    );
    fromField(
      'chat_join_history_trimmed_total',
      "History records left out of a join's history frame to keep it within maxBufferedBytes.",
      () => this.joinHistoryTrimmed,
    );
    fromField(
      'chat_caught_up_messages_total',
      'Room messages given to sockets from history after the layer lost their live delivery.',
      () => this.caughtUp,
    );
    fromField(
      'chat_catch_ups_failed_total',
      "Catch-ups after a lost delivery that could not read the room's history.",
      () => this.catchUpsFailed,
    );
    fromField(
      'chat_history_rooms_evicted_total',
      'Rooms whose history was deleted to keep within maxRooms or maxHistoryBytes.',
      () => rooms.stats.historyRoomsEvicted,
    );
    fromField(
      'chat_resends_deduplicated_total',
      'Chat messages resent with an id the room had stored already: acknowledged, not stored again.',
      () => rooms.stats.resendsDeduplicated ?? 0,
    );
    fromField(
      'chat_history_records_trimmed_total',
      "Records dropped from a room's history to keep it within historyLimit and historyBytes.",
      () => rooms.stats.historyRecordsTrimmed,
    );
    if (rooms instanceof InMemoryRoomState) {
      gauge('chat_history_rooms', 'Rooms whose history is kept in memory.', () => {
        return rooms.historySize.rooms;
      });
      gauge('chat_history_bytes', 'Bytes of history kept in memory (recordBytes).', () => {
        return rooms.historySize.bytes;
      });
      gauge('chat_resend_ids', 'Client message ids remembered in memory to catch resends.', () => {
        return rooms.resendIds;
      });
    }
    const rateLimited = new Counter({
      name: 'chat_rate_limited_total',
      help: 'Frames (data and control) refused by the rate limit, by the budget that refused them.',
      labelNames: ['limit'],
      registers,
    });
    // Bound once: a flood's refusals cost no label lookup.
    this.rateLimited = { frames: rateLimited.labels('frames'), bytes: rateLimited.labels('bytes') };
    this.tcpDropped = new Counter({
      name: 'chat_tcp_connections_dropped_total',
      help: 'TCP connections dropped before their first request head, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.errors = new Counter({
      name: 'chat_errors_total',
      help: 'Error frames sent to clients, by code.',
      labelNames: ['code'],
      registers,
    });
    this.refused = new Counter({
      name: 'chat_handshakes_refused_total',
      help: 'WebSocket handshakes refused, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.closed = new Counter({
      name: 'chat_connections_closed_by_server_total',
      help: 'Connections the server ended for cause, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.layerLatency = new Histogram({
      name: 'chat_layer_operation_seconds',
      help: 'Latency of channel layer calls that succeeded, by operation.',
      labelNames: ['operation'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    // Bound once: observing then costs no label lookup.
    this.layerTimers = {
      group_send: this.layerLatency.labels('group_send'),
      group_add: this.layerLatency.labels('group_add'),
      group_discard: this.layerLatency.labels('group_discard'),
    };
  }

  /** A socket was accepted. */
  connectionOpened(): void {
    this.connections++;
    this.connectionsOpened++;
  }

  /** A socket closed, for any reason. */
  connectionClosed(): void {
    this.connections--;
  }

  /** A socket on this node joined `room`. */
  roomJoined(room: string): void {
    this.rooms.set(room, (this.rooms.get(room) ?? 0) + 1);
  }

  /** Sockets of this node in `room`. */
  socketsIn(room: string): number {
    return this.rooms.get(room) ?? 0;
  }

  /** A socket on this node left `room`. */
  roomLeft(room: string): void {
    const left = (this.rooms.get(room) ?? 0) - 1;
    if (left > 0) this.rooms.set(room, left);
    else this.rooms.delete(room);
  }

  /** An error frame with `code` was sent. */
  errorSent(code: string): void {
    this.controlFramesSent++;
    this.errors.inc({ code });
  }

  /** A handshake was refused (`origin`, `auth`, ...). */
  handshakeRefused(reason: HandshakeRefusal): void {
    this.refused.inc({ reason });
  }

  /** The server closed or terminated a connection for `reason`. */
  closedByServer(reason: ServerCloseReason): void {
    this.closed.inc({ reason });
  }

  /** A layer call took `ms` milliseconds. */
  layerOperation(operation: LayerOperation, ms: number): void {
    this.layerTimers[operation].observe(ms / 1000);
  }

  /** A frame was refused by the `limit` budget of the rate limit. */
  rateLimitRefused(limit: RateLimitKind): void {
    this.rateLimited[limit].inc();
  }

  /** The connection guard dropped a TCP connection. */
  tcpConnectionDropped(reason: GuardDrop): void {
    this.tcpDropped.inc({ reason });
  }

  /** Where `chat_unfinished_bytes` comes from: called at scrape time only. */
  measureUnfinished(read: () => number): void {
    this.unfinished = read;
  }

  /** Where `chat_send_limit_bytes` comes from: called at scrape time only. */
  measureSendLimit(read: () => number): void {
    this.sendLimit = read;
  }

  /** Where `chat_connection_addresses` comes from: called at scrape time only. */
  measureAddresses(read: () => number): void {
    this.addresses = read;
  }

  /** Where `chat_send_buffer_bytes` comes from: called at scrape time only. */
  measureSendBuffers(read: () => number): void {
    this.sendBuffers = read;
  }

  /** The registry in Prometheus' text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
