// What an operator reads in Parley's log: readable lines at a terminal, JSON for the journal,
// and never a secret in either.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { createLogger } from '../../src/log/index.js';

/** A stream collecting what is written to it; `isTTY` as a terminal's standard output has it. */
function sink(isTTY = false): Writable & { text: () => string; isTTY?: boolean } {
  const chunks: string[] = [];
  const stream = new Writable({ write: (chunk, _encoding, done) => done(void chunks.push(String(chunk))) });
  return Object.assign(stream, { text: () => chunks.join(''), ...(isTTY ? { isTTY } : {}) });
}

function logEvent(format: 'auto' | 'json' | 'pretty', out: ReturnType<typeof sink>): void {
  const log = createLogger('info', out, format).child({ module: 'registrar' });
  log.info({ user: 'alice@localhost', password: 'hunter2', request: { authorization: 'Digest response="abc"' }, note: 'two words' }, 'user registered');
}

describe('log format', () => {
  test('pretty prints HH:MM:SS.mmm LEVEL module: message key=value, secrets redacted', () => {
    const out = sink();
    logEvent('pretty', out);
    assert.match(
      out.text(),
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}registrar: user registered user=alice@localhost password=\[redacted\] request=\{"authorization":"\[redacted\]"\} note="two words"\n$/,
    );
  });

  test('pretty puts an error message on the line and its stack below', () => {
    const out = sink();
    createLogger('info', out, 'pretty').error({ err: new Error('disk full') }, 'store failed');
    const [head, firstFrame] = out.text().split('\n');
    assert.match(head, /^\d\d:\d\d:\d\d\.\d{3} ERROR store failed err="disk full"$/);
    assert.match(firstFrame, /^ {4}Error: disk full$/);
  });

  test('auto writes JSON to a stream that is not a terminal, secrets redacted', () => {
    const out = sink();
    logEvent('auto', out);
    const event = JSON.parse(out.text()) as Record<string, unknown>;
    assert.equal(event.msg, 'user registered');
    assert.equal(event.module, 'registrar');
    assert.equal(event.password, '[redacted]');
    assert.deepEqual(event.request, { authorization: '[redacted]' });
    assert.doesNotMatch(out.text(), /hunter2|abc/);
  });

  test('auto writes readable lines to a terminal', () => {
    const out = sink(true);
    logEvent('auto', out);
    assert.match(out.text(), /^\d\d:\d\d:\d\d\.\d{3} INFO {2}registrar: user registered /);
  });

  test('json stays JSON on a terminal', () => {
    const out = sink(true);
    logEvent('json', out);
    assert.equal((JSON.parse(out.text()) as { password: string }).password, '[redacted]');
  });
});
