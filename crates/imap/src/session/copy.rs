//! COPY and MOVE (RFC 9051 §6.4.7, RFC 6851 MOVE, RFC 4315 §3 COPYUID).

use postamt_store::Uid;
use tokio::io::{AsyncRead, AsyncWrite};

use super::expunge::read_only;
use super::{Reply, Session};
use crate::sequence::SequenceSet;
use crate::status::{Code, Status};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn copy(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        moving: bool,
    ) -> Reply {
        let verb = if moving { "MOVE" } else { "COPY" };
        let sel = self.selected.as_ref().expect("selected");
        if moving && sel.read_only {
            return Err(read_only());
        }
        let idx = sel.resolve(set, uid)?;
        let uids: Vec<Uid> = idx
            .iter()
            .filter(|&&i| !sel.msgs[i].gone)
            .map(|&i| sel.msgs[i].uid)
            .collect();
        let from = sel.mailbox.id;
        let name = self.name_in(raw)?;
        let target = self.find_target(&name, Code::TryCreate)?;
        if uids.is_empty() {
            return Ok(Status::ok(format!("{verb} completed (nothing to do)")));
        }
        let to = target.id;
        let pairs = self.store.write_copy(from, uids, to, moving).await?;
        let code = Code::CopyUid {
            uidvalidity: target.uidvalidity.0,
            source: pairs.iter().map(|p| p.0.0).collect(),
            destination: pairs.iter().map(|p| p.1.0).collect(),
        };
        if to == from
            && let Some(sel) = &mut self.selected
        {
            sel.dirty = true;
        }
        if moving {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            self.untagged_status(Status::ok("moved").with_code(code));
            let removed: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
            self.forget(&removed, false);
            Ok(Status::ok("MOVE completed"))
        } else {
            Ok(Status::ok("COPY completed").with_code(code))
        }
    }
}
