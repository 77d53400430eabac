// The registrar as a plugin: REGISTER for the served domains, the location service other plugins
// require (REGISTRAR), registrar.lookup, and the count of addresses-of-record with bindings.
import { serviceKey, type ParleyPlugin } from '../plugin/index.js';
import { Registrar } from './registrar.js';
import { registrarMethods } from './rpc.js';

export const REGISTRAR = serviceKey<Registrar>('registrar');

export function registrarPlugin(): ParleyPlugin {
  let registrar: Registrar | undefined;
  const started = (): Registrar => registrar!;
  return {
    name: 'registrar',
    provides: [REGISTRAR],
    // The pipeline let only REGISTERs for served domains, at served domains, through.
    routes: () => [{ methods: ['REGISTER'], domain: { served: true }, handler: 'registrar' }],
    handlers: [
      {
        name: 'registrar',
        methods: ['REGISTER'],
        handle: (request) => {
          const to = request.message.toUri;
          return started().handle(request, `${to.user}@${to.host}`);
        },
      },
    ],
    async start(context) {
      const config = context.config.registrar;
      const transports = context.transports;
      registrar = new Registrar(
        context.store.locations,
        { minExpires: config.min_expires, maxExpires: config.max_expires, defaultExpires: config.default_expires, maxContacts: config.max_contacts },
        (id) => transports.isConnected(id),
        context.log,
      );
      const bindings = registrar;
      transports.on('connectionClosed', (id) => bindings.connectionClosed(id));
      context.provide(REGISTRAR, registrar);
      await registrar.start();
    },
    stop: () => registrar?.stop(),
    rpc: () => registrarMethods(started),
    metrics: () => [{ kind: 'gauge', name: 'parley_registrar_aors', help: 'Addresses-of-record with bindings.', read: () => started().aorCount }],
    status: () => ({ aors: started().aorCount }),
  };
}
