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

/** `GET /metrics` of the app at `httpUrl`, parsed. */
export async function scrape(httpUrl: string): Promise<Samples> {
  const response = await fetch(`${httpUrl}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** One sample's value; 0 when absent (a labelled counter that never counted). */
export function sample(samples: Samples, key: string): number {
  return samples.get(key) ?? 0;
}
