// The push parameters a device puts in its Contact URI (RFC 8599 §4.1): which provider wakes it
// (pn-provider), its token there (pn-prid) and what the provider needs besides (pn-param). Linphone
// also sends them in its own forms, read the way Flexisip (the server Linphone is made for) reads
// them: APNs with two tokens in one binding, `pn-prid=<remote>:remote&<voip>:voip` with
// `pn-param=<team>.<bundle>.remote&voip`, and the older `pn-type`, `app-id`, `pn-tok`.
import { formatNameAddr, parseNameAddr } from '../sip/headers.js';
import { formatUri, parseUri, type SipUri } from '../sip/uri.js';

/** An Apple device: the topics are the bundle ID (remote notifications) and `<bundle>.voip` (PushKit). */
export interface ApnsTarget {
  provider: 'apns';
  /** pn-provider apns.dev: the device runs a development build, served by APNs' sandbox. */
  sandbox: boolean;
  /** The team ID pn-param starts with; '' in the legacy form, which has none. */
  teamId: string;
  bundleId: string;
  /** Token for alert and background notifications. */
  remoteToken?: string;
  /** Token for PushKit (voip) notifications. */
  voipToken?: string;
  /** Linphone's pn-msg-str: the localisation key of the alert text in the app. */
  messageKey?: string;
  /** Linphone's pn-msg-snd: the sound file the alert plays. */
  messageSound?: string;
}

/** An Android (or other Firebase) device. */
export interface FcmTarget {
  provider: 'fcm';
  token: string;
  /** pn-param: the Firebase project (its ID or sender ID) the app belongs to. */
  project: string;
}

/** Any other pn-provider: the generic webhook's. */
export interface OtherTarget {
  provider: 'other';
  /** The pn-provider as the device wrote it. */
  name: string;
  token: string;
  param: string;
}

export type PushTarget = ApnsTarget | FcmTarget | OtherTarget;

/** The provider that sends to a target, as metrics and logs name it. */
export type ProviderName = 'apns' | 'fcm' | 'webhook';

export function providerOf(target: PushTarget): ProviderName {
  return target.provider === 'other' ? 'webhook' : target.provider;
}

/** Push parameters a device sent that cannot be used; the message says which and why. */
export class PushParamsError extends Error {
  override name = 'PushParamsError';
}

const APNS_PROVIDERS = new Set(['apns', 'apns.dev']);
/** Linphone's legacy pn-type values for Firebase devices. */
const LEGACY_FCM_TYPES = new Set(['firebase', 'android', 'google', 'fcm']);
/** Linphone's legacy parameter that names the app; only a push parameter when pn-tok is there. */
const LEGACY_APP_ID = 'app-id';

/**
 * The push target of a contact URI (or its parameters); undefined when it carries no push
 * parameters. Throws PushParamsError when they are there but incomplete or malformed.
 */
export function parsePushTarget(contact: string | SipUri): PushTarget | undefined {
  const params = (typeof contact === 'string' ? parseUri(contact) : contact).params;
  const value = (name: string): string | undefined => {
    const text = params.get(name);
    return text === null || text === undefined || text === '' ? undefined : text;
  };
  const provider = value('pn-provider')?.toLowerCase();
  if (provider !== undefined) {
    const prid = required(value('pn-prid'), 'pn-prid', `pn-provider=${provider}`);
    const param = value('pn-param');
    if (APNS_PROVIDERS.has(provider)) {
      return apnsTarget(provider === 'apns.dev', required(param, 'pn-param', `pn-provider=${provider}`), prid, value);
    }
    if (provider === 'fcm') return { provider: 'fcm', token: prid, project: required(param, 'pn-param', 'pn-provider=fcm') };
    return { provider: 'other', name: provider, token: prid, param: param ?? '' };
  }
  const legacyToken = value('pn-tok');
  if (legacyToken === undefined) return undefined;
  const type = required(value('pn-type'), 'pn-type', 'pn-tok').toLowerCase();
  const appId = required(value(LEGACY_APP_ID), LEGACY_APP_ID, 'pn-tok');
  if (type === 'apple') {
    // app-id is the bundle ID, ".dev" or ".prod" at its end saying which APNs serves the build.
    const sandbox = appId.endsWith('.dev');
    const bundle = sandbox || appId.endsWith('.prod') ? appId.slice(0, appId.lastIndexOf('.')) : appId;
    return apnsTarget(sandbox, `.${bundle}`, legacyToken, value);
  }
  if (LEGACY_FCM_TYPES.has(type)) return { provider: 'fcm', token: legacyToken, project: appId };
  return { provider: 'other', name: type, token: legacyToken, param: appId };
}

function required(text: string | undefined, name: string, because: string): string {
  if (text === undefined) throw new PushParamsError(`${name} is missing (required with ${because})`);
  return text;
}

const APNS_SERVICES = ['remote', 'voip'] as const;
type ApnsService = (typeof APNS_SERVICES)[number];

/**
 * pn-param is `<team>.<bundle>` with the services the tokens are for after a last dot
 * (`.remote`, `.voip` or `.remote&voip`); none means remote, and a bundle ID ending in `.voip` is
 * the PushKit topic of the bundle before it. pn-prid holds one token per service, each as
 * `<token>:<service>`; a single token may go without its service. So `<team>.<bundle>.voip`, the
 * PushKit topic as RFC 8599 §9.3 writes it, is the voip service of <bundle>.
 */
function apnsTarget(sandbox: boolean, param: string, prid: string, value: (name: string) => string | undefined): ApnsTarget {
  const firstDot = param.indexOf('.');
  if (firstDot < 0 || firstDot === param.length - 1) throw new PushParamsError(`pn-param "${param}" is not <team-id>.<bundle-id>`);
  const teamId = param.slice(0, firstDot);
  let bundleId = param.slice(firstDot + 1);
  let services: ApnsService[] = ['remote'];
  const lastDot = bundleId.lastIndexOf('.');
  const suffix = lastDot >= 0 ? bundleId.slice(lastDot + 1).split('&') : [];
  if (suffix.length > 0 && suffix.every((service) => (APNS_SERVICES as readonly string[]).includes(service))) {
    services = [...new Set(suffix as ApnsService[])];
    bundleId = bundleId.slice(0, lastDot);
  }
  if (bundleId === '') throw new PushParamsError(`pn-param "${param}" names no bundle ID`);
  const target: ApnsTarget = { provider: 'apns', sandbox, teamId, bundleId };
  const tokens = prid.split('&');
  if (tokens.length !== services.length) {
    throw new PushParamsError(`pn-param names ${services.length} service(s) (${services.join(', ')}) but pn-prid holds ${tokens.length} token(s)`);
  }
  for (const entry of tokens) {
    const colon = entry.lastIndexOf(':');
    const named = colon >= 0 ? entry.slice(colon + 1) : undefined;
    if (named !== undefined && !(APNS_SERVICES as readonly string[]).includes(named)) {
      throw new PushParamsError(`pn-prid names the service "${named}"; expected remote or voip`);
    }
    if (named === undefined && tokens.length > 1) throw new PushParamsError('pn-prid holds several tokens, each must end in :remote or :voip');
    const service = (named as ApnsService | undefined) ?? services[0]!;
    if (!services.includes(service)) throw new PushParamsError(`pn-prid has a ${service} token but pn-param names only ${services.join(', ')}`);
    const token = colon >= 0 ? entry.slice(0, colon) : entry;
    if (!/^[0-9A-Fa-f]+$/.test(token)) throw new PushParamsError('pn-prid holds an APNs token that is not hexadecimal');
    if (service === 'voip') target.voipToken = token;
    else target.remoteToken = token;
  }
  const messageKey = value('pn-msg-str');
  const messageSound = value('pn-msg-snd');
  if (messageKey !== undefined) target.messageKey = messageKey;
  if (messageSound !== undefined) target.messageSound = messageSound;
  return target;
}

/** Whether a URI parameter is a push parameter: every `pn-*`, and Linphone's app-id beside its pn-tok. */
function isPushParam(name: string, params: ReadonlyMap<string, string | null>): boolean {
  return name.startsWith('pn-') || (name === LEGACY_APP_ID && params.has('pn-tok'));
}

/**
 * The URI without its push parameters, as it may be forwarded: the tokens are for the provider
 * alone (RFC 8599 §4.1.2). A URI without any comes back as it was written.
 */
export function stripPushParams(uri: string): string {
  const parsed = parseUri(uri);
  const names = [...parsed.params.keys()];
  if (!names.some((name) => isPushParam(name, parsed.params))) return uri;
  const kept = new Map([...parsed.params].filter(([name]) => !isPushParam(name, parsed.params)));
  return formatUri({ ...parsed, params: kept });
}

/**
 * A Contact header value (name-addr or addr-spec) without push parameters, in its URI or, where
 * a client put them after an addr-spec, among the header's parameters. One without any comes
 * back as it was written.
 */
export function stripContactPushParams(contact: string): string {
  const addr = parseNameAddr(contact);
  const uri = stripPushParams(addr.uri);
  const names = [...addr.params.keys()];
  if (uri === addr.uri && !names.some((name) => isPushParam(name, addr.params))) return contact;
  return formatNameAddr({ ...addr, uri, params: new Map([...addr.params].filter(([name]) => !isPushParam(name, addr.params))) });
}
