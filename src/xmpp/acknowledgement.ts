// Prompt acknowledgement of what an XMPP peer writes, for every stream Parley has (the component
// link, s2s streams). A stream that mostly carries the peer's stanzas would let our TCP
// acknowledgements of them wait for the delayed-ACK timer, and a peer keeping Nagle's algorithm
// (Prosody does by default) holds its next stanzas until then. What we write carries the
// acknowledgement: when nothing else is written in the turn of the event loop that read the peer's
// data, a whitespace (allowed between stanzas, RFC 6120 §4.6.1) is written at its end.

export class PromptAcknowledgement {
  private scheduled = false;
  private writtenThisTurn = false;

  /** `writeWhitespace` writes ' ' on the stream, if it can carry one now (open, our header out). */
  constructor(private readonly writeWhitespace: () => void) {}

  /** The peer wrote: acknowledged at the end of this turn, by what is written meanwhile or by a whitespace. */
  read(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.writtenThisTurn = false;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.writtenThisTurn) this.writeWhitespace();
    });
  }

  /** Something is written (or queued to be written) in this turn: it carries the acknowledgement. */
  written(): void {
    this.writtenThisTurn = true;
  }
}
