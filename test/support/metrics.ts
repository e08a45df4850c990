import { http } from './hosts.js';

/** Samples of a Prometheus text exposition, keyed `name` or `name{label="value",...}`. */
export type Samples = Map<string, number>;

/** Parses Prometheus' text format (what `GET /metrics` serves). */
export function parseMetrics(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/**
 * `GET /metrics` of the app at `httpUrl`, parsed. On a connection of its own: a kept-alive one
 * from an earlier scrape may have been closed by the server meanwhile (its idle timeout, during a
 * long flood), and reusing it fails with ECONNRESET.
 */
export async function scrape(httpUrl: string): Promise<Samples> {
  const { status, body } = await http('GET', `${httpUrl}/metrics`);
  if (status !== 200) throw new Error(`GET /metrics answered ${status}`);
  return parseMetrics(body);
}

/** One sample's value; 0 when absent (a labelled counter that never counted). */
export function sample(samples: Samples, key: string): number {
  return samples.get(key) ?? 0;
}
