// The browser's TuneStore: one IndexedDB database, `moec-tuning`, whose object store `load-choices`
// holds one record per adapter and bundle candidates (the key). Feature-detected: Node has no
// IndexedDB, and a page may be denied one (private modes), which is reported, not fatal.
import type { StoredLoadTuning, TuneStore, Warn } from './tune-store.js';

export const TUNING_DATABASE = 'moec-tuning';
const OBJECT_STORE = 'load-choices';

/** The IndexedDB of this context, if it has one. */
export const indexedDbOf = (): IDBFactory | undefined => (globalThis as { indexedDB?: IDBFactory }).indexedDB ?? undefined;

const done = <T>(request: IDBRequest<T>): Promise<T> => new Promise((ok, fail) => {
  request.onsuccess = () => ok(request.result);
  request.onerror = () => fail(request.error ?? new Error('IndexedDB request failed'));
});

export function indexedDbTuneStore(factory: IDBFactory | undefined = indexedDbOf()): TuneStore {
  if (!factory) throw new Error('IndexedDB is not available here: pass load({ tuneStore }) (in Node, nodeTuneStore() from moec/node-tune-store)');
  let opened: Promise<IDBDatabase> | undefined;
  const open = (): Promise<IDBDatabase> => {
    opened ??= new Promise((ok, fail) => {
      const request = factory.open(TUNING_DATABASE, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE);
      request.onsuccess = () => ok(request.result);
      request.onerror = () => fail(request.error ?? new Error(`IndexedDB ${TUNING_DATABASE} could not be opened`));
      request.onblocked = () => fail(new Error(`IndexedDB ${TUNING_DATABASE} is blocked by another tab holding an older version`));
    });
    opened.catch(() => (opened = undefined)); // a later call may try again
    return opened;
  };
  return {
    location: `IndexedDB ${TUNING_DATABASE}`,
    where: (key) => `IndexedDB ${TUNING_DATABASE}/${OBJECT_STORE}/${key}`,
    async get(key: string, warn: Warn) {
      try {
        const db = await open();
        return await done(db.transaction(OBJECT_STORE, 'readonly').objectStore(OBJECT_STORE).get(key));
      } catch (e) {
        warn(`IndexedDB ${TUNING_DATABASE}/${OBJECT_STORE}/${key}: cannot read (${(e as Error).message}); ignored`);
        return undefined;
      }
    },
    async put(key: string, record: StoredLoadTuning) {
      const db = await open();
      const transaction = db.transaction(OBJECT_STORE, 'readwrite');
      transaction.objectStore(OBJECT_STORE).put(record, key);
      await new Promise<void>((ok, fail) => {
        transaction.oncomplete = () => ok();
        transaction.onerror = () => fail(transaction.error ?? new Error('IndexedDB write failed'));
        transaction.onabort = () => fail(transaction.error ?? new Error('IndexedDB write aborted'));
      });
    },
  };
}
