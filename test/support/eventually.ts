// Waiting for something that happens asynchronously, by polling: a log line, a count of messages.

/**
 * Resolves with the first value other than undefined (or false) `probe` returns or resolves to;
 * rejects after `timeoutMs`, naming `what`.
 */
export async function eventually<Value>(
  probe: () => Value | undefined | false | Promise<Value | undefined | false>,
  what: string,
  timeoutMs = 10_000,
): Promise<Value> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
