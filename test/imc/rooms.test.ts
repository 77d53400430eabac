import { roomsSuite } from './rooms-suite.js';

roomsSuite('sqlite', async () => undefined);
