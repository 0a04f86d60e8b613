//! Graceful shutdown as one small primitive (after mini-redis): a watch
//! channel says "stop", and every session holds a [`Shutdown`] whose drop
//! tells the server that one more session has finished.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Owned by the server: triggers shutdown and waits for sessions.
pub struct ShutdownController {
    notify: watch::Sender<bool>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

/// Held by each listener and session.
#[derive(Clone)]
pub struct Shutdown {
    notify: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
}

impl Default for ShutdownController {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownController {
    pub fn new() -> ShutdownController {
        let (notify, _) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel(1);
        ShutdownController {
            notify,
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    pub fn handle(&self) -> Shutdown {
        Shutdown {
            notify: self.notify.subscribe(),
            _done: self.done_tx.clone().expect("handle after shutdown"),
        }
    }

    /// Tells everyone to stop and waits up to `grace` for all handles to be
    /// dropped. Returns whether everyone finished in time.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        let _ = self.notify.send(true);
        self.done_tx.take();
        tokio::time::timeout(grace, self.done_rx.recv())
            .await
            .is_ok()
    }
}

impl Shutdown {
    pub fn is_shutdown(&self) -> bool {
        *self.notify.borrow()
    }

    /// Completes when shutdown has been requested.
    pub async fn recv(&mut self) {
        let _ = self.notify.wait_for(|stop| *stop).await;
    }
}
