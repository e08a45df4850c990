import { describeAttacks } from './support/attack-suite.js';

/**
 * Issue 15's attacks, heavier: `npm run attack` (not part of `npm test`: the name matches no
 * `testRegex`). Every bound at its default, as `npm start` ships; ATTACK_SECONDS (default 60) is
 * how long each timed attack lasts, ATTACK_SCALE (default 1) multiplies the attackers.
 */
const seconds = Number(process.env.ATTACK_SECONDS ?? 60);
const scale = Number(process.env.ATTACK_SCALE ?? 1);

describeAttacks({
  seconds,
  historySockets: 200 * scale,
  tinyRooms: 20_000 * scale,
  fullRoomJoiners: 1000 * scale,
  pingFlooders: 8 * scale,
  silentAddresses: 40 * scale,
  fragments: 2000 * scale,
  cpuAttackers: 10 * scale,
  env: {
    // The defaults, except a deadline short enough that the attacks below finish in time.
    MESSAGE_TIMEOUT_MS: '10000',
    HANDSHAKE_TIMEOUT_MS: '10000',
  },
  connectionEnv: {},
  // The issue: "must not grow RSS past a few hundred MiB however long it runs". 64 MiB of history
  // at most, ~90 MiB idle, 1 MiB of send budget per never-reading socket.
  rssBoundMiB: 512,
});
