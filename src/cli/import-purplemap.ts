// `parley import-purplemap`: copies the linked accounts of a Kamailio purple account map (purplemap:
// id, sip_user, ext_user, ext_prot, ext_pass in the clear) into Parley's, sealing each password.
import { readFileSync } from 'node:fs';
import { SQL_TABLE_NAME } from '../config/index.js';
import { redactUrlPassword } from '../log/index.js';
import type { GatewayAccountStore, KamailioAccountRow, NewGatewayAccount } from '../store/index.js';
import { gatewayTools, type GatewayTools } from './accounts.js';
import { count, parseCommandLine, printHelp, UsageError, type Command } from './args.js';
import { loadStoreConfig, STORE_OPTIONS, withForeignDatabase, withStore } from './store.js';

const USAGE = `Usage: parley import-purplemap --from SOURCE [--table NAME] [--config FILE] [--db URL]

Copies the linked accounts of a Kamailio purple account map (its purplemap table: sip_user,
ext_user, ext_prot, ext_pass) into Parley's (gateway.db_table), each password sealed with the
gateway key. Protocols are mapped to networks (prpl-jabber, gtalk, jabber: xmpp; prpl-irc: irc).
Rows of unknown protocols, of networks this server does not serve, of users of other domains or
without a password are left out, and so are accounts Parley has already (same SIP user, network and
account); each is reported, never with its password. The source is only read.

Options:
      --from SOURCE         the Kamailio database: sqlite:PATH, postgres://USER:PASSWORD@HOST/DB,
                            or dump:FILE.sql, a mysqldump of it (INSERT INTO purplemap VALUES ...)
      --table NAME          its table (the purple seed's db_table; default purplemap)
  -c, --config FILE         configuration file, for the domains, gateway.secret_key (or the
                            environment's PARLEY_GATEWAY_KEY), gateway.db_table and the database
      --db URL              Parley's database, instead of the configuration's
  -h, --help                show this help
`;

const OPTIONS = {
  ...STORE_OPTIONS,
  from: { type: 'string' },
  table: { type: 'string', default: 'purplemap' },
} as const;

async function readSource(from: string, table: string): Promise<KamailioAccountRow[]> {
  // Loaded only here so that the other commands do not load the database drivers.
  const { readPurplemapDump, readPurplemapTable } = await import('../store/index.js');
  if (!from.startsWith('dump:')) return withForeignDatabase(from, (db) => readPurplemapTable(db, table));
  const path = from.slice('dump:'.length);
  let sql: string;
  try {
    sql = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the dump ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    return readPurplemapDump(sql, table);
  } catch (error) {
    throw new Error(`the dump ${path} cannot be read: ${(error as Error).message}`);
  }
}

interface ImportReport {
  imported: number;
  /** One line per row left out, saying why. */
  skipped: string[];
}

async function importAccounts(rows: KamailioAccountRow[], target: GatewayAccountStore, tools: GatewayTools): Promise<ImportReport> {
  const { gateway, options, networks, box } = tools;
  const keyOf = (a: { sipUser: string; extProt: string; extUser: string }) => `${a.sipUser}\n${gateway.networkOf(a.extProt) ?? a.extProt}\n${a.extUser}`;
  const existing = new Map((await target.list()).map((account) => [keyOf(account), account.id]));
  const report: ImportReport = { imported: 0, skipped: [] };
  for (const row of rows) {
    const which = `row ${row.id} (${row.sipUser} ${row.extProt} ${row.extUser})`;
    let account: NewGatewayAccount;
    try {
      const sipUser = gateway.sipUserOf(row.sipUser, options.localDomains);
      ({ account } = gateway.prepareAccount(sipUser, { network: row.extProt, extUser: row.extUser, password: row.extPass ?? '' }, networks, box));
    } catch (error) {
      if (!(error instanceof gateway.AccountError)) throw error;
      report.skipped.push(`${which}: ${error.message}`);
      continue;
    }
    const duplicate = existing.get(keyOf(account));
    if (duplicate !== undefined) {
      report.skipped.push(`${which}: Parley has this account already, as number ${duplicate}`);
      continue;
    }
    const stored = await target.put(account);
    existing.set(keyOf(stored), stored.id);
    report.imported++;
  }
  return report;
}

export const importPurplemapCommand: Command = {
  name: 'import-purplemap',
  summary: "copy a Kamailio purple account map's linked accounts into Parley's",
  async run(args) {
    const { values } = parseCommandLine({ args, options: OPTIONS }, USAGE);
    if (values.help) return printHelp(USAGE);
    if (values.from === undefined) throw new UsageError('missing --from SOURCE', USAGE);
    if (!SQL_TABLE_NAME.test(values.table)) throw new UsageError(`--table expects an SQL table name, got "${values.table}"`, USAGE);
    const config = loadStoreConfig(values);
    const tools = await gatewayTools(config);
    const rows = await readSource(values.from, values.table);
    const report = await withStore(config, async (store) => importAccounts(rows, await store.gatewayAccountsIn(config.gateway.db_table), tools));
    const lines = [
      `imported ${count(report.imported, 'account')} of ${count(rows.length, 'row')} from ${redactUrlPassword(values.from)}; skipped ${count(report.skipped.length, 'row')}`,
      ...report.skipped.map((reason) => `skipped ${reason}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
