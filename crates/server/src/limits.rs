//! Connection limits: a global permit taken *before* `accept()` (so a flood
//! waits in the kernel's backlog instead of in our memory) and a per-IP
//! count checked right after.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    global: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
    max: usize,
}

/// Held for the life of a connection; releases both counts on drop.
pub struct ConnectionPermit {
    _global: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_connections: usize, max_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            global: Arc::new(Semaphore::new(max_connections.max(1))),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            max_per_ip: max_per_ip.max(1),
            max: max_connections.max(1),
        }
    }

    /// Connections open now (the administration's counters).
    pub fn in_use(&self) -> usize {
        self.max - self.global.available_permits()
    }

    /// Waits for a global slot.
    pub async fn acquire_global(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.global)
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Adds the per-IP count; `None` when `ip` already has its maximum.
    pub fn admit(&self, global: OwnedSemaphorePermit, ip: IpAddr) -> Option<ConnectionPermit> {
        let mut map = self.per_ip.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionPermit {
            _global: global,
            per_ip: Arc::clone(&self.per_ip),
            ip,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Ok(mut map) = self.per_ip.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_ip_limit_and_release() {
        let l = ConnectionLimits::new(10, 2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = l.admit(l.acquire_global().await, ip).unwrap();
        let _b = l.admit(l.acquire_global().await, ip).unwrap();
        assert!(l.admit(l.acquire_global().await, ip).is_none());
        let other: IpAddr = "::1".parse().unwrap();
        assert!(l.admit(l.acquire_global().await, other).is_some());
        drop(a);
        assert!(l.admit(l.acquire_global().await, ip).is_some());
    }
}
