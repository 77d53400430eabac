// The assembled server and the handler-plugin interface modules implement.
export { ParleyServer, createServer, type ServerOptions } from './server.js';
export { Router, RouterError, type RequestHandler } from './router.js';
