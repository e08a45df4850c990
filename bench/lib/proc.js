'use strict';
/** Process accounting from /proc and child-process plumbing for the benchmark. */
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');

/** Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of one process in seconds; 0 once it is gone. @param {number} pid */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // fields 14 and 15 of stat(5)
  } catch {
    return 0;
  }
}

/**
 * CPU time of all a process's threads in ns (`/proc/<pid>/task/<tid>/schedstat`): finer than stat's
 * clock ticks, and it includes the JIT's compiler threads. 0 once the process is gone.
 * @param {number} pid
 */
function cpuNanos(pid) {
  let total = 0;
  let tasks;
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const task of tasks) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread exited between the listing and the read
    }
  }
  return total;
}

/** Resident set size in KiB (VmRSS). @param {number} pid */
function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** CPU-seconds all cores have been busy since boot (/proc/stat: everything but idle and iowait). */
function machineBusySeconds() {
  const f = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}

/** @param {number[]} pids */
const sumCpu = (pids) => pids.reduce((a, p) => a + cpuSeconds(p), 0);
/** @param {number[]} pids */
const sumCpuNanos = (pids) => pids.reduce((a, p) => a + cpuNanos(p), 0);
/** @param {number[]} pids */
const sumRss = (pids) => pids.reduce((a, p) => a + rssKiB(p), 0);

/** A free TCP port on 127.0.0.1. @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawns `cmd args` through bash with the soft fd limit raised to the hard one, so 10k sockets
 * fit; `exec` keeps the pid, so /proc readings are of the process itself.
 * @param {string} cmd @param {string[]} args @param {import('node:child_process').SpawnOptions} opts
 */
function spawnWithFdLimit(cmd, args, opts) {
  return spawn(
    'bash',
    ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bash', cmd, ...args],
    opts,
  );
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

module.exports = {
  CLK_TCK,
  machineBusySeconds,
  cpuSeconds,
  rssKiB,
  sumCpu,
  sumCpuNanos,
  sumRss,
  freePort,
  spawnWithFdLimit,
  sleep,
};
