//! How both backends' SEARCH indexers keep out of the way of a burst of
//! deliveries: before each batch they look at what the change feed
//! brought, and while messages keep arriving they wait ([`QUIET`]) —
//! unless more than [`MAX_DEFERRED`] have been put off, so the index never
//! falls behind without bound.

use std::time::Duration;

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::Change;

/// How long deliveries must pause before the indexer works.
pub(crate) const QUIET: Duration = Duration::from_millis(100);
/// New messages the indexer lets wait for a quiet moment.
pub(crate) const MAX_DEFERRED: usize = 10_000;

/// The indexer's view of the feed.
pub(crate) struct Burst {
    feed: broadcast::Receiver<Change>,
    deferred: usize,
}

/// What one look at the feed found.
pub(crate) struct Look {
    /// A burst is going on: sleep [`QUIET`] instead of indexing.
    pub(crate) wait: bool,
    /// Content may have been removed (an expunge, a change from outside,
    /// or events lost to a lagging feed).
    pub(crate) removed: bool,
}

impl Burst {
    pub(crate) fn new(feed: broadcast::Receiver<Change>) -> Burst {
        Burst { feed, deferred: 0 }
    }

    /// Reads what the feed brought since the last look.
    pub(crate) fn look(&mut self) -> Look {
        let mut added = 0usize;
        let mut removed = false;
        loop {
            match self.feed.try_recv() {
                Ok(Change::MessageAdded { .. }) => added += 1,
                Ok(Change::Expunged { .. } | Change::External) => removed = true,
                Ok(_) => {}
                Err(TryRecvError::Lagged(n)) => {
                    added += n as usize;
                    removed = true;
                }
                Err(_) => break,
            }
        }
        self.deferred += added;
        let wait = added > 0 && self.deferred < MAX_DEFERRED;
        if !wait {
            self.deferred = 0;
        }
        Look { wait, removed }
    }
}
