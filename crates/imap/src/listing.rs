//! Listings (UID, flags, size, … of every message) of recently selected big
//! mailboxes, shared by all IMAP sessions of the server and kept current
//! incrementally from the MODSEQ they are at. A repeated SELECT of a
//! 100,000-message mailbox then reads only what changed since, instead of
//! the whole mailbox (Dovecot keeps an index file for the same reason).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use postamt_store::{Mailbox, MailboxId, MessageSummary, ModSeq, Store, StoreError, Uid};

/// Mailboxes smaller than this are listed directly (cheap enough).
pub const MIN_CACHED: usize = 1000;
/// At most this many listings are kept (the least recently used go).
pub const MAX_LISTINGS: usize = 16;

#[derive(Debug)]
pub struct Listing {
    pub uidvalidity: u32,
    /// Up to date with this MODSEQ (or newer).
    pub modseq: u64,
    pub msgs: Vec<MessageSummary>,
}

#[derive(Default)]
pub struct ListingCache {
    inner: Mutex<Inner>,
    kept: Mutex<KeptInner>,
}

/// The SEARCH header values kept at delivery, by UID (UID order), of a
/// recently searched mailbox: values never change for a UID, so a later
/// search reads only the UIDs above the last one kept.
pub type Kept = Arc<Vec<(Uid, Option<postamt_store::SearchHeaders>)>>;

#[derive(Default)]
struct KeptInner {
    map: HashMap<MailboxId, (u64, Kept)>,
    clock: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<MailboxId, (u64, Arc<Listing>)>,
    clock: u64,
}

impl ListingCache {
    fn get(&self, id: MailboxId) -> Option<Arc<Listing>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        inner.map.get_mut(&id).map(|(used, l)| {
            *used = now;
            Arc::clone(l)
        })
    }

    fn put(&self, id: MailboxId, listing: Arc<Listing>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let now = inner.clock;
        inner.map.insert(id, (now, listing));
        while inner.map.len() > MAX_LISTINGS {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => inner.map.remove(&id),
                None => break,
            };
        }
    }

    /// The kept SEARCH header values of `mailbox`'s messages: what the cache
    /// has, with the messages delivered since read from the store. Entries
    /// of expunged messages may stay (a search looks up the UIDs it has).
    pub fn kept_headers(&self, store: &dyn Store, mailbox: MailboxId) -> Result<Kept, StoreError> {
        let cached = self.kept.lock().ok().and_then(|mut k| {
            k.clock += 1;
            let now = k.clock;
            k.map.get_mut(&mailbox).map(|(used, v)| {
                *used = now;
                Arc::clone(v)
            })
        });
        let after = cached
            .as_ref()
            .and_then(|v| v.last().map(|(u, _)| *u))
            .unwrap_or(Uid(0));
        let new = store.search_headers(mailbox, after)?;
        if new.is_empty()
            && let Some(c) = cached
        {
            return Ok(c);
        }
        let mut all: Vec<_> = cached.map(|c| c.as_ref().clone()).unwrap_or_default();
        all.extend(new);
        let all = Arc::new(all);
        if let Ok(mut k) = self.kept.lock() {
            k.clock += 1;
            let now = k.clock;
            k.map.insert(mailbox, (now, Arc::clone(&all)));
            while k.map.len() > MAX_LISTINGS {
                let oldest = k
                    .map
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(id, _)| *id);
                match oldest {
                    Some(id) => k.map.remove(&id),
                    None => break,
                };
            }
        }
        Ok(all)
    }

    /// The listing of `mailbox` (freshly read from the store), at least as
    /// new as `mailbox.highestmodseq`.
    pub fn listing(
        &self,
        store: &dyn Store,
        mailbox: &Mailbox,
    ) -> Result<Arc<Listing>, StoreError> {
        let id = mailbox.id;
        let modseq = mailbox.highestmodseq.0;
        if let Some(l) = self
            .get(id)
            .filter(|l| l.uidvalidity == mailbox.uidvalidity.0)
        {
            if l.modseq >= modseq {
                return Ok(l);
            }
            // Catch up: what changed and what left since the listing.
            let changed = store.messages(id, ModSeq(l.modseq))?;
            let gone = store.expunged_since(id, ModSeq(l.modseq))?;
            let next = Arc::new(Listing {
                uidvalidity: l.uidvalidity,
                modseq,
                msgs: apply(&l.msgs, changed, &gone),
            });
            self.put(id, Arc::clone(&next));
            return Ok(next);
        }
        let msgs = store.messages(id, ModSeq(0))?;
        let listing = Arc::new(Listing {
            uidvalidity: mailbox.uidvalidity.0,
            modseq,
            msgs,
        });
        if listing.msgs.len() >= MIN_CACHED {
            self.put(id, Arc::clone(&listing));
        }
        Ok(listing)
    }
}

/// `old` without the `gone` UIDs, with `changed` messages updated in place
/// or appended (new UIDs are above all old ones).
fn apply(
    old: &[MessageSummary],
    changed: Vec<MessageSummary>,
    gone: &[Uid],
) -> Vec<MessageSummary> {
    let mut gone: Vec<Uid> = gone.to_vec();
    gone.sort_unstable();
    let mut out: Vec<MessageSummary> = old
        .iter()
        .filter(|m| gone.binary_search(&m.uid).is_err())
        .cloned()
        .collect();
    for c in changed {
        match out.binary_search_by_key(&c.uid, |m| m.uid) {
            Ok(i) => out[i] = c,
            Err(i) => out.insert(i, c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use postamt_store::{
        Delivery, DeliveryTarget, Directory, FlagOp, Flags, Mailboxes, Messages, SqliteOptions,
        SqliteStore,
    };

    fn deliver(store: &SqliteStore, account: postamt_store::AccountId, n: usize) {
        let deliveries = (0..n)
            .map(|i| {
                Delivery::new(
                    format!("Subject: {i}\n\nx\n").into_bytes(),
                    1,
                    vec![DeliveryTarget::inbox(account)],
                )
            })
            .collect();
        store.deliver_many(deliveries).unwrap();
    }

    #[test]
    fn a_cached_listing_catches_up_with_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteOptions::new(dir.path().join("db"))).unwrap();
        store.add_domain("example.org").unwrap();
        let a = store.create_account("a@example.org", "pw").unwrap();
        deliver(&store, a.id, MIN_CACHED + 5);
        let cache = ListingCache::default();
        let mb = || store.mailbox(a.id, "INBOX").unwrap().unwrap();
        let first = cache.listing(&store, &mb()).unwrap();
        assert_eq!(first.msgs.len(), MIN_CACHED + 5);
        // Unchanged: the same listing, no store reads.
        assert!(Arc::ptr_eq(&first, &cache.listing(&store, &mb()).unwrap()));
        // Flags, an expunge and a new message.
        let uids: Vec<Uid> = first.msgs.iter().map(|m| m.uid).collect();
        store
            .store_flags(mb().id, &uids[3..4], FlagOp::Add, Flags::SEEN, &[], None)
            .unwrap();
        store.expunge(mb().id, &uids[0..2]).unwrap();
        deliver(&store, a.id, 1);
        let next = cache.listing(&store, &mb()).unwrap();
        assert_eq!(next.msgs, store.messages(mb().id, ModSeq(0)).unwrap());
        assert!(next.msgs[1].flags.contains(Flags::SEEN));
        // A recreated mailbox (new UIDVALIDITY) is listed afresh.
        store.rename_mailbox(a.id, "INBOX", "Old").unwrap();
        let fresh = cache.listing(&store, &mb()).unwrap();
        assert!(fresh.msgs.is_empty());
    }
}
