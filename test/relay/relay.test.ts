import { relaySuite } from './relay-suite.js';

relaySuite('sqlite', async () => undefined);
