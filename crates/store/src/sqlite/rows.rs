//! Rows to domain types: column lists and `*_from_row` readers.

use crate::model::*;

pub(super) fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageSummary> {
    Ok(MessageSummary {
        uid: Uid(r.get::<_, i64>(0)? as u32),
        modseq: ModSeq(r.get::<_, i64>(1)? as u64),
        flags: Flags::from_bits(r.get(2)?),
        keywords: crate::rules::keywords_vec(r.get_ref(3)?.as_str().unwrap_or("")),
        internaldate: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
    })
}

pub(super) const ACCOUNT_COLS: &str = "id, address, quota_bytes, used_bytes";

pub(super) fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: AccountId(r.get(0)?),
        address: r.get(1)?,
        quota_bytes: r.get::<_, Option<i64>>(2)?.map(|q| q as u64),
        used_bytes: r.get::<_, i64>(3)? as u64,
    })
}

pub(super) const MAILBOX_COLS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use";

pub(super) fn mailbox_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    let special: Option<String> = r.get(6)?;
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        uidvalidity: UidValidity(r.get::<_, i64>(3)? as u32),
        uidnext: Uid(r.get::<_, i64>(4)? as u32),
        highestmodseq: ModSeq(r.get::<_, i64>(5)? as u64),
        special_use: special.and_then(|s| crate::rules::special_use_from_stored(&s)),
    })
}
