/** One problem found in a configuration, named by the key it concerns (e.g. `routes[1].handler`). */
export interface ConfigIssue {
  key: string;
  reason: string;
}

/**
 * A configuration that cannot be used. Every problem found is listed, one per line of the
 * message, so a user fixes them all in one pass; `key` is the first one's.
 */
export class ConfigError extends Error {
  readonly key: string;
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    if (issues.length === 0) throw new RangeError('ConfigError needs at least one issue');
    super(issues.map(({ key, reason }) => `config: ${key}: ${reason}`).join('\n'));
    this.name = 'ConfigError';
    this.key = issues[0].key;
    this.issues = issues;
  }
}
