// The features a Parley server is made of unless createServer is given its own list. The order is
// the routes' (the plugins' routes go before the configured ones in this order) and, where no
// service decides it, the start order; the admin endpoint comes last, as it gathers from the others.
import { adminPlugin } from '../admin/plugin.js';
import { devicesPlugin } from '../devices/plugin.js';
import { gatewayPlugin } from '../gateway/plugin.js';
import { roomsPlugin } from '../imc/plugin.js';
import { presencePlugin } from '../presence/plugin.js';
import { pushPlugin } from '../push/plugin.js';
import { registrarPlugin } from '../registrar/plugin.js';
import { relayPlugin } from '../relay/plugin.js';
import { xmppPlugin } from '../xmpp/plugin.js';
import type { ParleyPlugin } from '../plugin/index.js';

/** Fresh plugins for one server: each keeps the state of what it serves. */
export function defaultPlugins(): ParleyPlugin[] {
  return [registrarPlugin(), relayPlugin(), devicesPlugin(), presencePlugin(), xmppPlugin(), gatewayPlugin(), roomsPlugin(), pushPlugin(), adminPlugin()];
}
