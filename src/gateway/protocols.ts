// Network ids of the account map, with the names Kamailio's purple and jabber seeds use.
export type NetworkId = 'xmpp' | 'irc';

const ALIASES: Readonly<Record<string, NetworkId>> = {
  xmpp: 'xmpp',
  jabber: 'xmpp',
  'prpl-jabber': 'xmpp',
  gtalk: 'xmpp',
  irc: 'irc',
  'prpl-irc': 'irc',
};

/** The network a protocol name (ours or a seed's, any case) stands for. */
export function networkOf(protocol: string): NetworkId | undefined {
  return ALIASES[protocol.toLowerCase()];
}
