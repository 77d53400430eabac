import { after } from 'node:test';
import { roomsSuite } from './rooms-suite.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';

let postgres: PostgresServer | undefined;
after(() => postgres?.stop());
roomsSuite('postgresql', async () => {
  postgres = await startPostgres();
  return postgres.createDatabase('parley_rooms');
});
