/**
 * One registry per process under `name`, whichever of the package's builds (ESM, CommonJS) a
 * module came from: an app that loaded both still has one router and one guard per HTTP server.
 */
export function processRegistry<T extends object>(name: string, make: () => T): T {
  const key = Symbol.for(`nest-channels-chat/${name}`);
  const registry = globalThis as unknown as Record<symbol, T | undefined>;
  return (registry[key] ??= make());
}
