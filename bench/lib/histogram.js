'use strict';
/**
 * A latency histogram in microseconds with bounded relative error (~1.6 %): 64 linear
 * sub-buckets per power of two, so millions of samples cost a fixed small array and workers'
 * histograms merge by adding counts.
 */
const SUB = 64;
const SUB_BITS = 6;
const SIZE = SUB * 40;

class Histogram {
  constructor() {
    /** @type {Float64Array} */
    this.counts = new Float64Array(SIZE);
    this.n = 0;
  }

  /** @param {number} micros */
  record(micros) {
    const v = micros < 0 ? 0 : Math.floor(micros);
    this.counts[Histogram.bucket(v)]++;
    this.n++;
  }

  /** @param {number} v a non-negative integer */
  static bucket(v) {
    if (v < SUB) return v;
    // exp >= 1 for v >= SUB; keep the top SUB_BITS + 1 bits of v, the leading one dropped.
    const exp = 31 - Math.clz32(v) - SUB_BITS + 1;
    return Math.min(SIZE - 1, exp * SUB + (v >>> (exp - 1)) - SUB);
  }

  /** Lower bound of a bucket, in microseconds. @param {number} b */
  static lowerBound(b) {
    if (b < SUB) return b;
    const exp = Math.floor(b / SUB);
    return ((b % SUB) + SUB) * 2 ** (exp - 1);
  }

  /** @param {number} q quantile in [0, 1] @returns {number} microseconds, NaN if empty */
  quantile(q) {
    if (this.n === 0) return NaN;
    const target = Math.ceil(q * this.n);
    let seen = 0;
    for (let b = 0; b < SIZE; b++) {
      seen += this.counts[b];
      if (seen >= target && this.counts[b] > 0) {
        return (Histogram.lowerBound(b) + Histogram.lowerBound(b + 1)) / 2;
      }
    }
    return NaN;
  }

  /** @param {{ counts: number[] }} other */
  add(other) {
    for (let b = 0; b < SIZE; b++) this.counts[b] += other.counts[b] ?? 0;
    this.n += other.counts.reduce((a, c) => a + c, 0);
    return this;
  }

  toJSON() {
    return { counts: Array.from(this.counts) };
  }
}

module.exports = { Histogram };
