// How the tests run the `sidecarless` command as a child process: through the published bin, told
// to load the TypeScript sources. The bin prefers dist/ when it exists, and a checkout's dist/ is
// whatever was built last (`npm test` does not build), so without this the tests could pass or fail
// on stale code.
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/sidecarless.mjs', import.meta.url));

/** The `node` arguments that run `sidecarless ...args`. */
export const cli = (...args: string[]): string[] => [BIN, ...args];

/** The environment of a CLI child: this process's, plus `extra`, with the sources forced. */
export const cliEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, ...extra, SIDECARLESS_FROM_SOURCE: '1' });

/** Resolves as `promise` does, or throws naming `what` after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
