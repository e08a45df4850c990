/**
 * Imported first by `main.ts`, so that an unsupported Node stops here with a message naming the
 * versions rather than later with an error from deep inside Nest. The floor is Nest 12's and the
 * one CommonJS hosts need to `require()` our ES module dependencies: 20.19, 22.12, or newer.
 */
export const SUPPORTED_NODE = '^20.19.0 || ^22.12.0 || >=23.0.0';

export function supportsNode(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major === 20) return minor >= 19;
  if (major === 22) return minor >= 12;
  return major >= 23;
}

if (!supportsNode(process.versions.node)) {
  process.stderr.write(
    `nest-channels-chat needs Node ${SUPPORTED_NODE}; this is Node ${process.versions.node}.\n`,
  );
  process.exit(1);
}
