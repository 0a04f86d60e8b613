//! IDLE (RFC 2177, RFC 9051 §6.3.13): the session waits on its account's
//! signal (only this account's sessions wake) and announces changes as
//! they come, until DONE, the IDLE maximum, or shutdown.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, shutting_down};
use crate::frame::Event;
use crate::status::Status;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<'_, S> {
    pub(super) async fn idle(&mut self, tag: &str) -> Flow {
        self.continuation("idling");
        let deadline = tokio::time::Instant::now() + self.config.idle_max;
        loop {
            self.sync(true).await;
            if !self.flush().await {
                return Flow::Close;
            }
            let Some(signal) = &mut self.signal else {
                return Flow::Close;
            };
            let waited = tokio::select! {
                biased;
                _ = self.ctx.shutdown.recv() => {
                    self.untagged_status(shutting_down());
                    return Flow::Close;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.untagged_status(Status::bye("autologout: IDLE for too long"));
                    return Flow::Close;
                }
                c = signal.changed() => Some(c),
                r = self.conn.fill_buf() => {
                    match r {
                        Ok(b) if !b.is_empty() => None,
                        _ => return Flow::Close,
                    }
                }
            };
            match waited {
                // The account changed: the sync at the top of the loop reads
                // what (only this account's sessions wake).
                Some(Ok(())) => {}
                // The store is going away (shutdown).
                Some(Err(_)) => return Flow::Close,
                None => {
                    // Client data: the line must be DONE (RFC 2177).
                    let line = match self.next_event(self.config.idle_timeout).await {
                        Ok(Some(Event::Command(l))) => l,
                        Err(bye) => {
                            self.untagged_status(bye);
                            return Flow::Close;
                        }
                        _ => return Flow::Close,
                    };
                    if let Some(t) = &self.transcript {
                        let mut l = line.clone();
                        l.extend_from_slice(b"\r\n");
                        t.client(&l);
                    }
                    self.sync(true).await;
                    if line.eq_ignore_ascii_case(b"DONE") {
                        return self.complete(tag, Status::ok("IDLE terminated"));
                    }
                    return self.complete(tag, Status::bad("expected DONE to end IDLE"));
                }
            }
        }
    }
}
