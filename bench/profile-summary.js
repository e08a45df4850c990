'use strict';
/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time
 * grouped by where the code lives (our dist/, a package in node_modules, node: internals, V8).
 *
 * Usage: `node bench/profile-summary.js <file.cpuprofile> [topN]`
 */
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

/**
 * @typedef {{ id: number, callFrame: { functionName: string, url: string, lineNumber: number },
 *   children?: number[] }} ProfileNode
 */

/** Where a frame's code lives. @param {string} url */
function origin(url) {
  if (!url) return '(v8/native)';
  if (url.startsWith('node:')) return 'node internals';
  const file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  return path.relative(ROOT, file).split('/').slice(0, 2).join('/');
}

/** @param {string} file @param {number} top @returns {string} a plain-text report */
function summarize(file, top = 20) {
  /** @type {{ nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }} */
  const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  /** @type {Map<number, number>} self microseconds per node id */
  const self = new Map();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));

  const total = [...self.values()].reduce((a, b) => a + b, 0);
  let idle = 0;
  /** @type {Map<string, number>} */
  const fns = new Map();
  /** @type {Map<string, number>} */
  const origins = new Map();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = /** @type {ProfileNode} */ (byId.get(id)).callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = url
      ? `${path.relative(ROOT, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}`
      : '';
    const key = `${functionName || '(anonymous)'}  ${where}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
    const o = functionName.startsWith('(') ? functionName : origin(url);
    origins.set(o, (origins.get(o) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (/** @type {number} */ us) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const lines = [
    `busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled (idle ${(idle / 1e6).toFixed(2)} s); shares of busy time:`,
    'by origin:',
    ...[...origins]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([k, us]) => `  ${pct(us)}  ${k}`),
    `top ${top} functions by self time:`,
    ...[...fns]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => `  ${pct(us)}  ${k}`),
  ];
  return lines.join('\n');
}

module.exports = { summarize };

if (require.main === module) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/profile-summary.js <file.cpuprofile> [topN]');
    process.exit(2);
  }
  console.log(summarize(file, Number(top ?? 20)));
}
