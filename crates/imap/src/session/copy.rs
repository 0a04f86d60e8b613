//! COPY and MOVE (RFC 9051 §6.4.7, RFC 6851 MOVE, RFC 4315 COPYUID).

use std::sync::Arc;

use postamt_store::{Uid, blocking};
use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn copy(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        moving: bool,
    ) -> Result<String, String> {
        let verb = if moving { "MOVE" } else { "COPY" };
        let sel = self.selected.as_ref().expect("selected");
        if moving && sel.read_only {
            return Err("NO [READ-ONLY] mailbox is read-only".into());
        }
        let idx = sel.resolve(set, uid).map_err(|e| format!("BAD {e}"))?;
        let uids: Vec<Uid> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        let from = sel.mailbox.id;
        let name = self.name_in(raw)?;
        let target = match self.find_mailbox(&name) {
            Ok(m) => m,
            Err(_) => return Err("NO [TRYCREATE] no such mailbox".into()),
        };
        if uids.is_empty() {
            return Ok(format!("OK {verb} completed (nothing to do)"));
        }
        let store = Arc::clone(self.store);
        let to = target.id;
        let pairs = blocking(move || store.copy_messages(from, &uids, to, moving))
            .await
            .map_err(|e| store_no(&e))?;
        let src: Vec<u32> = pairs.iter().map(|p| p.0.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1.0).collect();
        let code = format!(
            "COPYUID {} {} {}",
            target.uidvalidity.0,
            SequenceSet::compact(&src),
            SequenceSet::compact(&dst)
        );
        if to == from
            && let Some(sel) = &mut self.selected
        {
            sel.dirty = true;
        }
        if moving {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            self.untagged(&format!("OK [{code}] moved"));
            let removed: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
            self.forget(&removed, false);
            Ok("OK MOVE completed".into())
        } else {
            Ok(format!("OK [{code}] COPY completed"))
        }
    }
}
