// Devices registered without +sip.instance are their contact's address (its URI without parameters,
// contactDevice) rather than the whole contact: the rows kept under a whole contact move to its
// address. Two contacts of one address become one device, last seen when the later was; a message
// waiting for both waits once for it.
import type { Kysely } from 'kysely';
import type { StoreMigration } from './migration.js';

/**
 * A contact's address as this migration defines it (contactDevice in store/types.ts when it was
 * written): its own copy, so that what the migration did stays the same whatever that rule becomes.
 */
function addressOf(contact: string): string {
  // A user part may hold ';' and '?' (RFC 3261 user-unreserved): parameters begin after the host.
  for (let i = contact.indexOf('@') + 1; i < contact.length; i++) {
    const code = contact.charCodeAt(i);
    if (code === 59 /* ; */ || code === 63 /* ? */) return contact.slice(0, i);
  }
  return contact;
}

export const contactDevices: StoreMigration = {
  async up(db: Kysely<any>) {
    const devices = await db
      .selectFrom('devices')
      .select(['aor', 'device', 'contact', 'user_agent', 'last_seen'])
      .where('device', 'not like', 'urn:%')
      .where((eb) => eb.or([eb('device', 'like', '%;%'), eb('device', 'like', '%?%')]))
      .execute();
    type DeviceRow = { aor: string; device: string; contact: string; user_agent: string | null; last_seen: number | string };
    for (const { aor, device, contact, user_agent, last_seen } of devices as DeviceRow[]) {
      const address = addressOf(device);
      if (address === device) continue;
      // The latest registration of an address is the one that stays.
      await db
        .insertInto('devices')
        .values({ aor, device: address, contact, user_agent, last_seen })
        .onConflict((conflict) =>
          conflict
            .columns(['aor', 'device'])
            .doUpdateSet((eb) => ({ contact: eb.ref('excluded.contact'), user_agent: eb.ref('excluded.user_agent'), last_seen: eb.ref('excluded.last_seen') }))
            .where((eb) => eb('devices.last_seen', '<', eb.ref('excluded.last_seen'))),
        )
        .execute();
      await db.deleteFrom('devices').where('aor', '=', aor).where('device', '=', device).execute();
    }
    const deliveries = await db
      .selectFrom('message_deliveries')
      .select(['message_id', 'aor', 'device', 'priority'])
      .where('device', 'not like', 'urn:%')
      .where((eb) => eb.or([eb('device', 'like', '%;%'), eb('device', 'like', '%?%')]))
      .execute();
    type DeliveryRow = { message_id: number | string; aor: string; device: string; priority: number };
    for (const { message_id, aor, device, priority } of deliveries as DeliveryRow[]) {
      const address = addressOf(device);
      if (address === device) continue;
      await db
        .insertInto('message_deliveries')
        .values({ message_id, aor, device: address, priority })
        .onConflict((conflict) => conflict.columns(['message_id', 'device']).doNothing())
        .execute();
      await db.deleteFrom('message_deliveries').where('message_id', '=', message_id).where('device', '=', device).execute();
    }
  },
};
