// Presence documents: PIDF (RFC 3863) with RPID activities (RFC 4480), reduced to the state Parley
// composes and passes on, and built back into the body of a NOTIFY.
import { Element, parse, type Node } from 'ltx';

export const PIDF_TYPE = 'application/pidf+xml';
const PIDF_NS = 'urn:ietf:params:xml:ns:pidf';
const DATA_MODEL_NS = 'urn:ietf:params:xml:ns:pidf:data-model';
const RPID_NS = 'urn:ietf:params:xml:ns:pidf:rpid';

/** The activities RFC 4480 names; any other activity travels as the text of <rpid:other>. */
const RPID_ACTIVITIES = new Set([
  'appointment', 'away', 'breakfast', 'busy', 'dinner', 'holiday', 'in-transit', 'looking-for-work', 'meal', 'meeting',
  'on-the-phone', 'performance', 'permanent-absence', 'playing', 'presentation', 'shopping', 'sleeping', 'spectator',
  'steering', 'travel', 'tv', 'unknown', 'vacation', 'working', 'worship',
]);

/** Far deeper than PIDF with RPID needs (about 6 levels), far shallower than what overflows the stack. */
const MAX_DEPTH = 100;

export type BasicStatus = 'open' | 'closed';

/** What Parley knows of a presentity: what SIP watchers are told, and what a gateway maps (RFC 7248). */
export interface PresenceState {
  /** RFC 3863 <basic>: open when the presentity can be reached for instant messages. */
  readonly basic: BasicStatus;
  /** Free-text notes ("in a meeting"), in document order, without repeats. */
  readonly notes: readonly string[];
  /** RFC 4480 activities ("busy", "meeting", "on-the-phone"...), or free text for other ones. */
  readonly activities: readonly string[];
}

export const OPEN: PresenceState = { basic: 'open', notes: [], activities: [] };
export const CLOSED: PresenceState = { basic: 'closed', notes: [], activities: [] };

/** A document that is not XML or not PIDF; the message says what is wrong. */
export class PidfError extends Error {
  override name = 'PidfError';
}

/**
 * Reads the state a PIDF document publishes. Several tuples (devices) compose as everywhere in
 * Parley: any open one makes the presentity open; a document without any <basic> is closed.
 */
export function parsePidf(xml: string): PresenceState {
  let root: Element;
  try {
    root = parse(xml);
  } catch (error) {
    throw new PidfError(`malformed XML (${(error as Error).message})`);
  }
  if (!root.is('presence', PIDF_NS)) throw new PidfError(`the root element is not <presence xmlns="${PIDF_NS}">`);
  checkDepth(root);
  const basics = root.getChildren('tuple', PIDF_NS).map(basicOf);
  const notes = descendants(root, 'note', [PIDF_NS, DATA_MODEL_NS]).map((note) => note.getText());
  const activities = descendants(root, 'activities', [RPID_NS]).flatMap((list) => list.getChildElements().map(activityOf));
  return {
    basic: basics.includes('open') ? 'open' : 'closed',
    notes: distinctTexts(notes),
    activities: distinctTexts(activities),
  };
}

/** A PIDF document for `entity` (the presentity's URI) stating `state`. */
export function buildPidf(entity: string, state: PresenceState): string {
  const presence = new Element('presence', { xmlns: PIDF_NS, 'xmlns:dm': DATA_MODEL_NS, 'xmlns:rpid': RPID_NS, entity });
  const tuple = presence.c('tuple', { id: 'parley' });
  tuple.c('status').c('basic').t(state.basic);
  for (const note of state.notes) tuple.c('note').t(note);
  if (state.activities.length > 0) {
    const activities = presence.c('dm:person', { id: 'person' }).c('rpid:activities');
    for (const activity of state.activities) {
      if (RPID_ACTIVITIES.has(activity)) activities.c(`rpid:${activity}`);
      else activities.c('rpid:other').t(activity);
    }
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n${presence.toString()}`;
}

/**
 * The one state several publications of a presentity amount to (RFC 3903 leaves the policy to
 * the server): open if any is open, with every note and activity, in publication order.
 */
export function composeStates(states: readonly PresenceState[]): PresenceState {
  return {
    basic: states.some((state) => state.basic === 'open') ? 'open' : 'closed',
    notes: distinctTexts(states.flatMap((state) => state.notes)),
    activities: distinctTexts(states.flatMap((state) => state.activities)),
  };
}

export function sameState(a: PresenceState, b: PresenceState): boolean {
  const sameList = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((item, i) => item === y[i]);
  return a.basic === b.basic && sameList(a.notes, b.notes) && sameList(a.activities, b.activities);
}

function basicOf(tuple: Element): BasicStatus | undefined {
  const text = tuple.getChild('status', PIDF_NS)?.getChild('basic', PIDF_NS)?.getText().trim();
  if (text === undefined || text === 'open' || text === 'closed') return text;
  throw new PidfError(`<basic> must be open or closed, not "${text}"`);
}

/** An activity element's name, or the text of <other>, where RPID puts activities it has no name for. */
function activityOf(element: Element): string {
  const name = element.getName();
  return name === 'other' ? element.getText() : name;
}

/**
 * Refuses a document nested deeper than MAX_DEPTH, walking it without recursion: the searches below
 * and ltx's namespace lookup recurse once per level, and a deep enough document overflows the stack.
 */
function checkDepth(root: Element): void {
  const pending: Array<[Element, number]> = [[root, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [element, depth] = next;
    if (depth > MAX_DEPTH) throw new PidfError(`nested deeper than ${MAX_DEPTH} elements`);
    for (const child of element.getChildElements()) pending.push([child, depth + 1]);
  }
}

/** Elements named `name` in one of `namespaces`, anywhere below `root`, in document order. */
function descendants(root: Element, name: string, namespaces: readonly string[]): Element[] {
  const matches = (node: Node) => node instanceof Element && node.getName() === name && namespaces.includes(node.getNS() ?? '');
  return root.getChildrenByFilter(matches, true) as Element[];
}

function distinctTexts(texts: readonly string[]): string[] {
  return [...new Set(texts.map((text) => text.trim()).filter((text) => text !== ''))];
}
