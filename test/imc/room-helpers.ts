// Small helpers shared by the room tests: talking to a room or the manager as a user would.
import assert from 'node:assert/strict';
import type { SipMessage } from '../../src/sip/index.js';
import type { TestUA } from '../support/ua.js';

/** The user part of a request's From. */
export const fromUser = (m: SipMessage): string | undefined => /sip:([^@>]+)@/.exec(m.get('from') ?? '')?.[1];

/** Whether a request is a reply or notice of the room service (plain text, not a room message or an event). */
export const isReplyFrom = (target: string) => (m: SipMessage): boolean =>
  m.method === 'MESSAGE' &&
  fromUser(m) === target &&
  !(m.get('content-type') ?? '').toLowerCase().startsWith('message/cpim') &&
  !m.body.toString().startsWith('***') &&
  !m.body.toString().startsWith('<');

/** The user part of the address a command's reply comes from: the one written to, or the room a #create or #join makes. */
export function repliers(to: string, text: string): string[] {
  const named = /^#(?:create|join)\s+(?:sip:)?([^\s@]+)/.exec(text)?.[1];
  return [/^sip:([^@]+)@/.exec(to)![1]!, ...(named ? [named] : [])];
}

/** Sends a command (answered 200) and resolves with the reply MESSAGE the room or manager sends back. */
export async function commandMessage(agent: TestUA, to: string, text: string): Promise<SipMessage> {
  const from = repliers(to, text);
  const reply = agent.waitForRequest((m) => from.some((user) => isReplyFrom(user)(m)));
  const response = await agent.message(to, text);
  assert.equal(response.status, 200, `${text} -> ${response.status} ${response.reason}`);
  return reply;
}

/** Sends a command and resolves with the text of the reply. */
export async function command(agent: TestUA, to: string, text: string): Promise<string> {
  return (await commandMessage(agent, to, text)).body.toString();
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Bodies of the MESSAGEs an agent received from `index` on that contain `text`. */
export function receivedWith(agent: TestUA, text: string, index = 0): SipMessage[] {
  return agent.received.slice(index).filter((m) => m.method === 'MESSAGE' && m.body.toString().includes(text));
}
