/**
 * `text` in memory of its own. V8 makes a substring of 13 characters or more a view into the string
 * it was cut from, so a field kept from a parsed request (a binding's Contact, Call-ID, User-Agent,
 * kept as long as the registration lasts) would keep the whole request's text alive, a few hundred
 * bytes to kilobytes more per registered device. The result is cut from a fresh copy one character
 * longer than itself.
 */
export function ownString<T extends string | undefined>(text: T): T {
  return (text === undefined ? text : (' ' + text).slice(1)) as T;
}
