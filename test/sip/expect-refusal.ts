import assert from 'node:assert/strict';
import { SipParseError, parseMessage } from '../../src/sip/parser.js';

/** The SipParseError that parsing `buf` must end in; anything else fails the test. */
export function parseError(buf: Buffer): SipParseError {
  try {
    parseMessage(buf);
  } catch (error) {
    assert.ok(error instanceof SipParseError, `expected a SipParseError, got ${String(error)}`);
    return error;
  }
  assert.fail('parsed a message that should have been refused');
}
