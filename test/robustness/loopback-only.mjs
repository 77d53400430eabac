// Preloaded into a Parley process under fuzzing (node --import): whatever address a fuzz case names,
// the process reaches nothing but this machine. Names other than localhost do not resolve (as on a host
// without DNS), and datagrams to addresses outside loopback are dropped (as by a firewall).
// Plain JavaScript, so that it loads before tsx.
import dgram from 'node:dgram';
import process from 'node:process';
import dns from 'node:dns';
import { isIP } from 'node:net';
import { syncBuiltinESMExports } from 'node:module';

const isLoopback = (address) => {
  const host = String(address).replace(/^\[|\]$/g, '').toLowerCase();
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || host.startsWith('::ffff:127.');
  return host === 'localhost';
};
const notFound = (hostname) => Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname} (loopback only under fuzzing)`), { code: 'ENOTFOUND', hostname });

const lookup = dns.lookup;
dns.lookup = function loopbackLookup(hostname, options, callback) {
  const done = typeof options === 'function' ? options : callback;
  if (!isLoopback(hostname)) return process.nextTick(done, notFound(hostname));
  return lookup.call(this, hostname, options, callback);
};
const promisesLookup = dns.promises.lookup;
dns.promises.lookup = (hostname, options) => (isLoopback(hostname) ? promisesLookup(hostname, options) : Promise.reject(notFound(hostname)));
// Every other query goes to a DNS server: none is reachable here.
for (const target of [dns, dns.Resolver.prototype]) {
  for (const name of Object.keys(target)) {
    if (!name.startsWith('resolve') || typeof target[name] !== 'function') continue;
    target[name] = function refused(hostname, ...rest) {
      const callback = rest.find((arg) => typeof arg === 'function');
      process.nextTick(callback, notFound(hostname));
    };
  }
}
for (const target of [dns.promises, dns.promises.Resolver.prototype]) {
  for (const name of Object.keys(target)) {
    if (name.startsWith('resolve') && typeof target[name] === 'function') target[name] = (hostname) => Promise.reject(notFound(hostname));
  }
}

const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function loopbackSend(...args) {
  const address = args.slice(1).find((arg) => typeof arg === 'string');
  if (address !== undefined && isIP(address) !== 0 && !isLoopback(address)) {
    const callback = args.find((arg) => typeof arg === 'function');
    if (callback) process.nextTick(callback, null, 0);
    return;
  }
  return send.apply(this, args);
};

syncBuiltinESMExports();
