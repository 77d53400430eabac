// Presence (RFC 3856): PUBLISH (RFC 3903), SUBSCRIBE/NOTIFY (RFC 6665) and PIDF (RFC 3863) for the
// users of Parley's domains, served by the `presence` handler.
//
// For gateways, the agent (the PRESENCE service of presence/plugin.ts, server.presence once started) is a PresenceService:
//
//   const presence: PresenceService = context.find(PRESENCE)!;
//   // (a) presence learnt elsewhere reaches SIP watchers of that address
//   presence.publishFrom('xmpp', 'juliet@xmpp.example.org', { basic: 'open', notes: ['Gone fishing'], activities: ['away'] });
//   presence.publishFrom('xmpp', 'juliet@xmpp.example.org', null);            // she went offline: withdrawn
//   // (b) presence of SIP users, to pass on; leave out the changes the gateway made itself
//   presence.on('change', (aor, state, source) => { if (source !== 'xmpp') forward(aor, state); });
//   // who on the SIP side watches an address, e.g. to subscribe to it on the other network
//   presence.on('watch', (presentity, watcher) => ...).on('unwatch', (presentity, watcher) => ...);
//
// SIP users reach a gateway's addresses through the routing table: a gateway plugin routes SUBSCRIBE
// for its domain to the `presence` handler, e.g. { methods: ['SUBSCRIBE'], domain: { names: ['xmpp.example.org'] }, handler: 'presence' }.
export { PresenceAgent, PRESENCE_METHODS, type PresenceOptions } from './agent.js';
export { type PresenceService, type PresenceEvents, type PresenceListener, SIP_PUBLICATION, REGISTRATION } from './service.js';
export { type PresenceState, type BasicStatus, OPEN, CLOSED, PIDF_TYPE, PidfError, parsePidf, buildPidf, composeStates, sameState } from './pidf.js';
