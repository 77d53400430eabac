// A prepared message (a room post to its members): each copy is written from the bytes its copies
// share, and is on the wire exactly what the message forwarded on its own would be.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { FakeClock, SipStack, TimerQueue, createResponse, parseMessage, type Peer } from '../../src/sip/index.js';
import type { TransportLayer } from '../../src/sip/transport/layer.js';
import { Relay, type RelayOptions } from '../../src/relay/index.js';
import type { Registrar } from '../../src/registrar/registrar.js';
import type { DeliveryStore, OfflineStore } from '../../src/store/index.js';

const member: Peer = { proto: 'udp', host: '127.0.0.2', port: 5070 };

/** `paths`: the Path of each member's binding, by AOR; `outboundProxy`: relay.outbound_proxy. */
function setup({ paths = {}, outboundProxy }: { paths?: Record<string, string>; outboundProxy?: string } = {}) {
  const sent: Buffer[] = [];
  const transport = Object.assign(new EventEmitter(), {
    bound: [{ proto: 'udp', host: '127.0.0.1', port: 5060 }],
    sendOrReport: (data: Buffer) => sent.push(data),
    local: () => ({ proto: 'udp', host: '127.0.0.1', port: 5060 }),
    has: () => false,
  });
  const stack = new SipStack(transport as unknown as TransportLayer, new TimerQueue(new FakeClock()), {
    t1: 500, t2: 4000, mtu: 1300, userAgent: 'Parley test', maxTransactions: 100,
  });
  const binding = (aor: string) => ({ aor, contact: `sip:${aor.split('@')[0]}@127.0.0.2:5070;ob`, source: member, path: paths[aor] });
  // Every member has one registered phone.
  const registrar = Object.assign(new EventEmitter(), {
    destinationOf: (uri: { user: string; host: string }) => ({ aor: `${uri.user}@${uri.host}` }),
    lookup: (aor: string) => [binding(aor)],
    flowsByDevice: (bindings: Array<ReturnType<typeof binding>>) => bindings.map((b) => [{ binding: b, peer: b.source }]),
  });
  const options = {
    domains: new Set(['localhost']), realms: new Set(['localhost']), foreignDomainStatus: 403, maxBody: 65536, isKnownUser: () => Promise.resolve(true),
    forkTimeout: 32, offline: { enabled: false, maxPerUser: 10, expires: 3600 }, deliveryWindow: { stream: 32, udp: 4 }, devices: { remember: 3600, acceptTimeout: 5, redeliveryBackoff: 30 },
    syncSent: { enabled: false, domains: {} }, outboundProxy,
  } as unknown as RelayOptions;
  const relay = new Relay(stack, registrar as unknown as Registrar, {} as OfflineStore, {} as DeliveryStore, options, pino({ enabled: false }));
  return { relay, stack, transport, sent };
}

test('each copy of a prepared message is what forwarding the message to the member on its own writes, but for its From tag, To and Call-ID', async () => {
  const { relay, stack, transport, sent } = setup();
  const content = {
    from: '"ally" <sip:chat-x@localhost>',
    body: Buffer.from('<ally> héllo'),
    contentType: 'text/plain;charset=utf-8',
    headers: [{ name: 'x-room', value: 'parley' }, { name: 'p-asserted-identity', value: '<sip:chat-x@localhost>' }],
    date: new Date(1_700_000_000_000),
  };
  const prepared = relay.prepare(content);
  const members = ['bob@localhost', 'carol@localhost'];
  const results = members.map((aor, i) => relay.sendPrepared(prepared, { to: `sip:${aor}`, fromTag: `tag${i}`, callId: `call${i}@parley` }));
  assert.equal(sent.length, members.length);
  for (const [i, aor] of members.entries()) {
    const wire = sent[i]!.toString('utf8');
    // The same request built and forwarded the long way: created, Max-Forwards decremented, Parley's Via on top.
    const expected = stack.createRequest({
      method: 'MESSAGE', uri: `sip:${aor.split('@')[0]}@127.0.0.2:5070;ob`, from: `${content.from};tag=tag${i}`, to: `sip:${aor}`, callId: `call${i}@parley`, cseq: 1,
      headers: [content.headers[0]!, { name: 'date', value: content.date.toUTCString() }], body: content.body, contentType: content.contentType,
    });
    expected.set('max-forwards', '69');
    expected.prepend('via', parseMessage(sent[i]!).get('via')!);
    assert.equal(wire, expected.toString());
    transport.emit('message', createResponse(parseMessage(sent[i]!), 200), member);
  }
  for (const result of await Promise.all(results)) assert.equal(result.status, 200);
});

test('a copy that goes another way than from the shared bytes is the message forwarded the long way: to a device with a Path, and to a foreign domain', async () => {
  const edge = '<sip:edge.localhost:5099;lr>';
  const { relay, stack, transport, sent } = setup({ paths: { 'bob@localhost': edge }, outboundProxy: 'sip:127.0.0.3:5080' });
  const content = { from: '"ally" <sip:chat-x@localhost>', body: Buffer.from('<ally> via the edge'), contentType: 'text/plain;charset=utf-8' };
  const prepared = relay.prepare(content);
  const expected = (uri: string, to: string, i: number) => {
    const request = stack.createRequest({
      method: 'MESSAGE', uri, from: `${content.from};tag=tag${i}`, to, callId: `call${i}@parley`, cseq: 1, body: content.body, contentType: content.contentType,
    });
    request.set('max-forwards', '69');
    return request;
  };

  // Bob's phone registered through an edge proxy: its copy carries the Path as its Route.
  const toBob = relay.sendPrepared(prepared, { to: 'sip:bob@localhost', fromTag: 'tag0', callId: 'call0@parley' });
  assert.equal(sent.length, 1);
  const bob = expected('sip:bob@127.0.0.2:5070;ob', 'sip:bob@localhost', 0);
  bob.prepend('route', edge);
  bob.prepend('via', parseMessage(sent[0]!).get('via')!);
  assert.equal(sent[0]!.toString('utf8'), bob.toString());
  transport.emit('message', createResponse(parseMessage(sent[0]!), 200), member);
  assert.equal((await toBob).status, 200);

  // A member of another domain: the copy goes through the outbound proxy, routed to it, Max-Forwards as created.
  const toDave = relay.sendPrepared(prepared, { to: 'sip:dave@elsewhere.example', fromTag: 'tag1', callId: 'call1@parley' });
  await new Promise<void>((resolve) => {
    const poll = () => (sent.length > 1 ? resolve() : setImmediate(poll));
    poll();
  });
  const dave = expected('sip:dave@elsewhere.example', 'sip:dave@elsewhere.example', 1);
  dave.set('max-forwards', '70');
  dave.prepend('route', '<sip:127.0.0.3:5080;lr>');
  dave.prepend('via', parseMessage(sent[1]!).get('via')!);
  assert.equal(sent[1]!.toString('utf8'), dave.toString());
  transport.emit('message', createResponse(parseMessage(sent[1]!), 202), { proto: 'udp', host: '127.0.0.3', port: 5080 });
  assert.equal((await toDave).status, 202);
});
