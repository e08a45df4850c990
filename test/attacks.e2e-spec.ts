import { MiB } from './support/attackers';
import { describeAttacks } from './support/attack-suite';

/**
 * Issue 15's attacks, short: each runs for seconds against `node dist/main.js` on loopback, with
 * the bounds that take long to reach at their defaults lowered (total history, rooms kept,
 * connections, and the two deadlines), so that the refusals are shown within a CI run. The
 * heavier versions, at the defaults and for longer, are `npm run attack`.
 */
describeAttacks({
  seconds: 6,
  historySockets: 300,
  tinyRooms: 3000,
  fullRoomJoiners: 300,
  pingFlooders: 6,
  silentAddresses: 50,
  fragments: 100,
  cpuAttackers: 5,
  env: {
    MAX_HISTORY_BYTES: String(16 * MiB),
    MAX_ROOMS: '1000',
    HANDSHAKE_TIMEOUT_MS: '1000',
    MESSAGE_TIMEOUT_MS: '1000',
  },
  connectionEnv: { MAX_CONNECTIONS: '300', MAX_CONNECTIONS_PER_ADDRESS: '20' },
  // ~90 MiB idle. With the bounds the history attack peaked at 277 MiB (16 MiB of history kept,
  // the rest garbage of 200 MiB posted in 6 s); without them at 419 MiB, the ping flood at 815.
  rssBoundMiB: 350,
});
