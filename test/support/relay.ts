// A relay that takes every MESSAGE at once, for tests of what a feature sends into SIP without a network.
import type { OutgoingMessage, Relay } from '../../src/relay/index.js';

/** The relay, answering 200 to everything, and what it was given, in order. */
export function recordingRelay(): { relay: Relay; sent: OutgoingMessage[] } {
  const sent: OutgoingMessage[] = [];
  const relay = {
    send: (message: OutgoingMessage) => {
      sent.push(message);
      return Promise.resolve({ status: 200, reason: 'OK', stored: false });
    },
    trackOutbox: () => {},
    // Nobody here has other devices to copy what they send to.
    sentCopies: { copy: () => undefined },
  } as unknown as Relay;
  return { relay, sent };
}
