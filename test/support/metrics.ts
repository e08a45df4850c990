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
 * `GET /metrics` of the app at `httpUrl`, parsed. Once more when the connection is reset: fetch
 * reuses a kept-alive connection from an earlier scrape, which the server may have closed
 * meanwhile (its idle timeout, during a long flood). Reused, so that a scrape leaves no socket or
 * timer of its own behind for the footprint checks to count.
 */
export async function scrape(httpUrl: string): Promise<Samples> {
  const url = `${httpUrl}/metrics`;
  const response = await fetch(url).catch((error: unknown) => {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'ECONNRESET') throw error;
    return fetch(url);
  });
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** One sample's value; 0 when absent (a labelled counter that never counted). */
export function sample(samples: Samples, key: string): number {
  return samples.get(key) ?? 0;
}
