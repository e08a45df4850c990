import { MiB } from './support/attackers.js';
import { describeAttacks } from './support/attack-suite.js';

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
  // The server idles near 90 MiB; the history kept is bounded at 16 MiB here, and what an attack
  // posts is garbage the heap may hold for a while: a few hundred MiB is the bound.
  rssBoundMiB: 350,
});
