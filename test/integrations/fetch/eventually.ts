/** Polling for a condition a loopback test cannot await directly (bytes arriving, a read waiting). */

/** Resolves true once `check` holds, false after `ms`. */
export async function eventually(check: () => boolean, ms = 2000): Promise<boolean> {
  const until = performance.now() + ms;
  while (!check()) {
    if (performance.now() > until) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}
