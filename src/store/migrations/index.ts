// Every schema migration, in order. Names sort alphabetically into execution order,
// so a new migration is a new "NNN_name" entry here; applied ones are never edited.
import type { StoreMigration } from './migration.js';
import { core } from './001_core.js';
import { rooms } from './002_rooms.js';
import { gateway } from './003_gateway.js';
import { offlineSentAt } from './004_offline_sent_at.js';
import { presence } from './005_presence.js';
import { outbox } from './006_outbox.js';
import { offlineOrigin } from './007_offline_origin.js';
import { gatewayRooms } from './008_gateway_rooms.js';
import { presenceGateways } from './009_presence_gateways.js';
import { deviceDeliveries } from './010_device_deliveries.js';
import { originColumnsServerKeys } from './011_origin_columns_server_keys.js';
import { offlineSentCopy } from './012_offline_sent_copy.js';
import { receiptIds } from './013_receipt_ids.js';
import { contactDevices } from './014_contact_devices.js';
import { knownAorsWithoutRowid } from './015_known_aors_without_rowid.js';

export const migrations: Readonly<Record<string, StoreMigration>> = {
  '001_core': core,
  '002_rooms': rooms,
  '003_gateway': gateway,
  '004_offline_sent_at': offlineSentAt,
  '005_presence': presence,
  '006_outbox': outbox,
  '007_offline_origin': offlineOrigin,
  '008_gateway_rooms': gatewayRooms,
  '009_presence_gateways': presenceGateways,
  '010_device_deliveries': deviceDeliveries,
  '011_origin_columns_server_keys': originColumnsServerKeys,
  '012_offline_sent_copy': offlineSentCopy,
  '013_receipt_ids': receiptIds,
  '014_contact_devices': contactDevices,
  '015_known_aors_without_rowid': knownAorsWithoutRowid,
};
