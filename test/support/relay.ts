// A relay that takes every MESSAGE at once, for tests of what a feature sends into SIP without a network.
import type { MessageContent, OutgoingMessage, Relay } from '../../src/relay/index.js';

/** The relay, answering 200 to everything, and what it was given, in order. */
export function recordingRelay(): { relay: Relay; sent: OutgoingMessage[] } {
  const sent: OutgoingMessage[] = [];
  const send = (message: OutgoingMessage) => {
    sent.push(message);
    return Promise.resolve({ status: 200, reason: 'OK', stored: false });
  };
  const relay = {
    send,
    // A prepared message is what it says, and each of its copies is recorded as one message.
    prepare: (content: MessageContent) => content,
    sendPrepared: (content: MessageContent, recipient: Pick<OutgoingMessage, 'to'>) => send({ ...content, ...recipient }),
    trackOutbox: () => {},
    // Nobody here has other devices to copy what they send to.
    sentCopies: { copy: () => undefined },
  } as unknown as Relay;
  return { relay, sent };
}
