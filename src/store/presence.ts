import type { Kysely, Selectable } from 'kysely';
import { GroupCommit, type DeferredSync } from './group-commit.js';
import { deleteExpired } from './rows.js';
import type { Database, PresenceSubscriptionsTable } from './schema.js';
import type {
  DialogId, PresenceStore, PublicationChange, StoredGatewayState, StoredGatewayWatcher, StoredPublication, StoredSubscription,
} from './types.js';

export class PresenceRepository implements PresenceStore {
  /** PUBLISH and SUBSCRIBE are acknowledged once written: a burst of them shares a commit. */
  private readonly commits: GroupCommit;

  constructor(private readonly db: Kysely<Database>, deferredSync?: DeferredSync) {
    this.commits = new GroupCommit(db, deferredSync);
  }

  addPublication(publication: Omit<StoredPublication, 'id'>): Promise<number> {
    return this.commits.run(async (trx) => {
      const { id } = await trx
        .insertInto('presence_publications')
        .values({ presentity: publication.presentity, etag: publication.etag, document: publication.document, expires_at: publication.expiresAt })
        .returning('id')
        .executeTakeFirstOrThrow();
      return id;
    });
  }

  updatePublication(id: number, change: PublicationChange): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx
        .updateTable('presence_publications')
        .set({ etag: change.etag, document: change.document, expires_at: change.expiresAt })
        .where('id', '=', id)
        .execute();
    });
  }

  removePublication(id: number): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx.deleteFrom('presence_publications').where('id', '=', id).execute();
    });
  }

  putSubscription(subscription: StoredSubscription): Promise<void> {
    const row = toSubscriptionRow(subscription);
    return this.commits.run(async (trx) => {
      await trx
        .insertInto('presence_subscriptions')
        .values(row)
        .onConflict((conflict) => conflict.columns(['call_id', 'local_tag', 'remote_tag']).doUpdateSet((eb) => ({
          remote_target: eb.ref('excluded.remote_target'),
          source: eb.ref('excluded.source'),
          remote_cseq: eb.ref('excluded.remote_cseq'),
          local_cseq: eb.ref('excluded.local_cseq'),
          expires_at: eb.ref('excluded.expires_at'),
        })))
        .execute();
    });
  }

  setNotifyCSeq(dialog: DialogId, localCSeq: number): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx.updateTable('presence_subscriptions').set({ local_cseq: localCSeq }).where((eb) => eb.and(dialogMatch(dialog))).execute();
    });
  }

  removeSubscription(dialog: DialogId): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx.deleteFrom('presence_subscriptions').where((eb) => eb.and(dialogMatch(dialog))).execute();
    });
  }

  putGatewayState(source: string, presentity: string, state: string | null): Promise<void> {
    return this.commits.run(async (trx) => {
      if (state === null) {
        await trx.deleteFrom('presence_gateway_states').where('source', '=', source).where('presentity', '=', presentity).execute();
        return;
      }
      await trx
        .insertInto('presence_gateway_states')
        .values({ source, presentity, state })
        .onConflict((conflict) => conflict.columns(['source', 'presentity']).doUpdateSet({ state }))
        .execute();
    });
  }

  putGatewayWatcher(watcher: StoredGatewayWatcher): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx
        .insertInto('presence_gateway_watchers')
        .values(watcher)
        .onConflict((conflict) => conflict.columns(['network', 'presentity', 'watcher']).doUpdateSet({ alias: watcher.alias }))
        .execute();
    });
  }

  removeGatewayWatcher(watcher: Omit<StoredGatewayWatcher, 'alias'>): Promise<void> {
    return this.commits.run(async (trx) => {
      await trx
        .deleteFrom('presence_gateway_watchers')
        .where('network', '=', watcher.network)
        .where('presentity', '=', watcher.presentity)
        .where('watcher', '=', watcher.watcher)
        .execute();
    });
  }

  loadGatewayWatchers(network: string): Promise<StoredGatewayWatcher[]> {
    return this.db.selectFrom('presence_gateway_watchers').selectAll().where('network', '=', network).execute();
  }

  async loadPresence(now: number): Promise<{ publications: StoredPublication[]; subscriptions: StoredSubscription[]; gatewayStates: StoredGatewayState[] }> {
    await deleteExpired(this.db, 'presence_publications', now);
    await deleteExpired(this.db, 'presence_subscriptions', now);
    const publications = await this.db.selectFrom('presence_publications').selectAll().orderBy('id').execute();
    const subscriptions = await this.db.selectFrom('presence_subscriptions').selectAll().execute();
    const gatewayStates = await this.db.selectFrom('presence_gateway_states').selectAll().execute();
    return {
      publications: publications.map((row) => ({ id: row.id, presentity: row.presentity, etag: row.etag, document: row.document, expiresAt: row.expires_at })),
      subscriptions: subscriptions.map(toStoredSubscription),
      gatewayStates,
    };
  }
}

function dialogMatch(dialog: DialogId) {
  return { call_id: dialog.callId, local_tag: dialog.localTag, remote_tag: dialog.remoteTag };
}

function toSubscriptionRow(subscription: StoredSubscription): PresenceSubscriptionsTable {
  return {
    call_id: subscription.callId,
    local_tag: subscription.localTag,
    remote_tag: subscription.remoteTag,
    presentity: subscription.presentity,
    watcher: subscription.watcher,
    local_header: subscription.localHeader,
    remote_header: subscription.remoteHeader,
    event: subscription.event,
    route_set: JSON.stringify(subscription.routeSet),
    contact: subscription.contact,
    remote_target: subscription.remoteTarget,
    source: subscription.source,
    remote_cseq: subscription.remoteCSeq,
    local_cseq: subscription.localCSeq,
    expires_at: subscription.expiresAt,
  };
}

function toStoredSubscription(row: Selectable<PresenceSubscriptionsTable>): StoredSubscription {
  return {
    callId: row.call_id,
    localTag: row.local_tag,
    remoteTag: row.remote_tag,
    presentity: row.presentity,
    watcher: row.watcher,
    localHeader: row.local_header,
    remoteHeader: row.remote_header,
    event: row.event,
    routeSet: JSON.parse(row.route_set) as string[],
    contact: row.contact,
    remoteTarget: row.remote_target,
    source: row.source,
    remoteCSeq: row.remote_cseq,
    localCSeq: row.local_cseq,
    expiresAt: row.expires_at,
  };
}
