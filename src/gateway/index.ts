// Per-user gateways (Kamailio's jabber and purple modules): SIP users' own accounts on other IM networks.
export { GatewayService, type GatewayStats, type GatewayDependencies } from './service.js';
export { gatewayOptions, networkAliasesOf, gatewayRegistrarOf, xmppAliasOf, type GatewayOptions } from './options.js';
export { SecretBox, sealContext } from './secrets.js';
export { networkOf, type NetworkId } from './protocols.js';
export { createNetworks } from './networks.js';
export { AccountError, accountSummary, checkAccount, prepareAccount, sessionSettings, sipUserOf, testAccount, type AccountRequest, type AccountTestResult } from './accounts.js';
export type { NetworkAdapter, NetworkSession, SessionAccount, SessionState } from './adapter.js';
