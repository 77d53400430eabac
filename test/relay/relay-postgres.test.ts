import { after } from 'node:test';
import { relaySuite } from './relay-suite.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';

let postgres: PostgresServer | undefined;
after(() => postgres?.stop());
relaySuite('postgresql', async () => {
  postgres = await startPostgres();
  return postgres.createDatabase('parley_relay');
});
