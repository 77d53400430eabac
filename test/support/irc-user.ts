// An IRC user for tests: an irc-framework client on the test ngIRCd that records every line the
// server sends it, as sent (CTCP and formatting codes included), so tests see exactly what arrived.
import { Client, type IrcMessage } from 'irc-framework';
import { eventually } from './eventually.js';
import type { Ngircd } from './ngircd.js';

export class IrcUser {
  readonly lines: IrcMessage[] = [];

  private constructor(
    private readonly client: Client,
    readonly nick: string,
  ) {
    client.connection.on('message', (message: IrcMessage) => this.lines.push(message));
  }

  /** Connects and resolves once the server welcomed the nick. */
  static async connect(ngircd: Ngircd, nick: string, password?: string): Promise<IrcUser> {
    const client = new Client();
    const user = new IrcUser(client, nick);
    const registered = new Promise<void>((resolve, reject) => {
      client.once('registered', () => resolve());
      client.once('socket close', () => reject(new Error(`${nick}: connection closed before registration`)));
    });
    client.connect({ host: ngircd.host, port: ngircd.port, nick, username: nick, gecos: nick, password, auto_reconnect: false });
    await registered;
    return user;
  }

  /** Writes one line as it is. */
  raw(line: string): void {
    this.client.raw(line);
  }

  say(target: string, text: string): void {
    this.raw(`PRIVMSG ${target} :${text}`);
  }

  /** The texts of the PRIVMSGs `from` sent to `target`, in order. */
  privmsgs(from: string, target = this.nick): string[] {
    return this.lines.filter((m) => m.command === 'PRIVMSG' && m.nick === from && m.params[0] === target).map((m) => m.params.at(-1)!);
  }

  /** Resolves with the first line received that matches `test`. */
  waitFor(test: (message: IrcMessage) => boolean, what: string, timeoutMs = 10_000): Promise<IrcMessage> {
    return eventually(() => this.lines.find(test), `${this.nick}: ${what}`, timeoutMs);
  }

  /** Joins a channel and resolves once the server confirmed it. */
  async join(channel: string): Promise<void> {
    const since = this.lines.length;
    this.raw(`JOIN ${channel}`);
    await eventually(() => this.lines.slice(since).find((m) => m.command === 'JOIN' && m.nick === this.nick && m.params[0] === channel), `${this.nick} in ${channel}`);
  }

  close(): void {
    this.client.quit('bye');
  }
}
