// A Kamailio imc database as kamdbctl creates it (imc-create.sql of db_sqlite and db_postgres),
// with rooms whose flags cover every case the import handles, and a room name and a member user
// that their URIs escape, as Kamailio keeps them.
export const IMC_TABLES = { rooms: 'imc_rooms', members: 'imc_members' };

/** The SQL script creating the tables and their rows. */
export function kamailioImcScript(driver: 'sqlite' | 'postgres', tables = IMC_TABLES): string {
  const id = driver === 'sqlite' ? 'INTEGER PRIMARY KEY NOT NULL' : 'SERIAL PRIMARY KEY NOT NULL';
  // Flags of imc_mng.h: member owner 1, admin 2, invited 4; room private 1.
  const rooms: Array<[string, number]> = [['chat-team', 0], ['chat-secret', 1], ['chat-orphan', 0], ['chat-existing', 0], ['chat-two%20words', 0]];
  const members: Array<[string, string, number]> = [
    ['alice', 'chat-team', 1], ['bob', 'chat-team', 2], ['carol', 'chat-team', 0], ['dave', 'chat-team', 4],
    ['erin', 'chat-secret', 1], ['frank', 'chat-secret', 4],
    ['gina', 'chat-orphan', 0],
    ['harry', 'chat-existing', 1],
    ['dora%40home', 'chat-two%20words', 1],
  ];
  return `
    CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL);
    CREATE TABLE ${tables.rooms} (
      id ${id}, name VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, flag INTEGER NOT NULL,
      CONSTRAINT ${tables.rooms}_name_domain_idx UNIQUE (name, domain));
    INSERT INTO version (table_name, table_version) VALUES ('${tables.rooms}', 1);
    CREATE TABLE ${tables.members} (
      id ${id}, username VARCHAR(64) NOT NULL, domain VARCHAR(64) NOT NULL, room VARCHAR(64) NOT NULL,
      flag INTEGER NOT NULL, CONSTRAINT ${tables.members}_account_room_idx UNIQUE (username, domain, room));
    INSERT INTO version (table_name, table_version) VALUES ('${tables.members}', 1);
    ${rooms.map(([name, flag]) => `INSERT INTO ${tables.rooms} (name, domain, flag) VALUES ('${name}', 'localhost', ${flag});`).join('\n')}
    ${members.map(([user, room, flag]) => `INSERT INTO ${tables.members} (username, domain, room, flag) VALUES ('${user}', 'localhost', 'sip:${room}@localhost', ${flag});`).join('\n')}
  `;
}
