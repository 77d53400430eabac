// A plugin written only against the documented interface (what src/index.ts exports): MESSAGEs to
// echo@<a served domain> are answered 200 and their body is sent back to the sender through the
// relay; `echo.count` and parley_echo_messages_total count them.
import { RELAY, type ParleyPlugin } from '../../src/index.js';

export function echoPlugin(): ParleyPlugin {
  let echoed = 0;
  let send: ((to: string, from: string, body: Buffer) => Promise<unknown>) | undefined;
  return {
    name: 'echo',
    requires: [RELAY],
    routes: () => [{ methods: ['MESSAGE'], domain: { served: true }, user: { names: ['echo'] }, handler: 'echo' }],
    handlers: [
      {
        name: 'echo',
        methods: ['MESSAGE'],
        async handle(request) {
          const message = request.message;
          request.reply(200, 'OK');
          echoed++;
          await send!(`sip:${message.fromUri.user}@${message.fromUri.host}`, `sip:echo@${message.requestUri.host}`, message.body);
        },
      },
    ],
    start(context) {
      const relay = context.require(RELAY);
      send = (to, from, body) => relay.send({ to, from, body });
    },
    rpc: () => ({ 'echo.count': { params: [], call: () => echoed } }),
    metrics: () => [{ kind: 'counter', name: 'parley_echo_messages_total', help: 'Messages echoed back to their sender.', read: () => echoed }],
    health: () => ({ status: 'ok' }),
  };
}
