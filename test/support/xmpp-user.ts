// An XMPP user for tests: an @xmpp/client session on the test Prosody that records the messages it
// gets. It sends its initial presence each time it comes online, as Prosody hands a user the
// messages stored while it was away only then; the client reconnects by itself when the server
// goes away and comes back.
import { StringDecoder } from 'node:string_decoder';
import { client, type Client } from '@xmpp/client';
import xml from '@xmpp/xml';
import type { Prosody } from './prosody.js';

export class XmppUser {
  readonly messages: xml.Element[] = [];
  /** Presence stanzas received (the user's own, reflected by its server, included). */
  readonly presences: xml.Element[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(
    private readonly session: Client,
    readonly jid: string,
  ) {
    session.on('stanza', (stanza: xml.Element) => {
      if (stanza.is('presence')) this.presences.push(stanza);
      else if (stanza.is('message')) this.messages.push(stanza);
      else return;
      for (const wake of this.waiters.splice(0)) wake();
    });
    session.on('online', () => void session.send(xml('presence')));
    // @xmpp/connection decodes each TCP chunk on its own, garbling a character split between two.
    const onData = session._onData.bind(session);
    let decoder = new StringDecoder('utf8');
    session.on('connect', () => (decoder = new StringDecoder('utf8')));
    session._onData = (data) => onData(decoder.write(data));
    // Connection errors while Prosody restarts are expected; the client retries.
    session.on('error', () => {});
  }

  static async connect(prosody: Prosody, username: string, password = 'password'): Promise<XmppUser> {
    const session = client({
      service: prosody.service,
      domain: prosody.domain,
      resource: 'test',
      // PLAIN, which the client would not pick over plain TCP itself: its SCRAM, in JavaScript, takes seconds.
      credentials: (authenticate) => authenticate({ username, password }, 'PLAIN'),
    });
    const user = new XmppUser(session, `${username}@${prosody.domain}`);
    await session.start();
    return user;
  }

  get online(): boolean {
    return this.session.status === 'online';
  }

  /** Sends a message (type chat unless `attrs` says otherwise) with the given body and children. */
  async send(to: string, body: string, attrs: Record<string, string> = {}, ...children: xml.Element[]): Promise<void> {
    await this.session.send(xml('message', { to, type: 'chat', ...attrs }, xml('body', {}, body), ...children));
  }

  /** Sends a stanza as it is (chat states, receipts: messages without a body). */
  async sendStanza(stanza: xml.Element): Promise<void> {
    await this.session.send(stanza);
  }

  /**
   * Asks for the roster, which makes this session an "interested resource" (RFC 6121 §2.1.6): only
   * those get subscription answers (subscribed, unsubscribed) and probe results from the server.
   */
  async fetchRoster(): Promise<void> {
    await this.session.send(xml('iq', { type: 'get', id: `roster-${Date.now()}` }, xml('query', { xmlns: 'jabber:iq:roster' })));
  }

  /** Sends a presence stanza: broadcast presence without `to`, a subscription request or answer with `type`. */
  async sendPresence(attrs: Record<string, string> = {}, ...children: xml.Element[]): Promise<void> {
    await this.session.send(xml('presence', attrs, ...children));
  }

  /** Resolves with the first presence stanza matching `test` among those received from index `since` on. */
  async waitForPresence(test: (stanza: xml.Element) => boolean, since = 0, timeoutMs = 10_000): Promise<xml.Element> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.presences.slice(since).find(test);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.jid}: no matching presence within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves with the received messages once `count` match `test` (those already received count). */
  async waitForMessages(count: number, test: (stanza: xml.Element) => boolean = () => true, timeoutMs = 10_000): Promise<xml.Element[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const matching = this.messages.filter(test);
      if (matching.length >= count) return matching;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.jid}: ${matching.length} of ${count} messages within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async waitForMessage(test: (stanza: xml.Element) => boolean, timeoutMs?: number): Promise<xml.Element> {
    return (await this.waitForMessages(1, test, timeoutMs))[0]!;
  }

  async stop(): Promise<void> {
    await this.session.stop().catch(() => {});
  }
}
