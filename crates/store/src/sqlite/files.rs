//! Large message content in files beside the database.
//!
//! SQLite in WAL mode writes every byte twice (into the WAL, then again at
//! the checkpoint), in page-sized frames, all on the one writer thread. For
//! content of `min_size` bytes or more the store writes a file instead, on
//! the delivering thread, so that big messages are written once and in
//! parallel, and the writer thread only commits a small row.
//!
//! **Durability order.** The file is written and `fdatasync`ed, and its
//! directory is fsynced, *before* the transaction that references it is
//! committed. So a committed row never points at a missing file.
//!
//! **What can be left over after a crash** and how it is cleaned up:
//! - a file written but never referenced (crash or failure before the
//!   commit): [`BlobFiles::sweep`] removes unreferenced files older than an
//!   hour when the server starts (a younger one may belong to a `postamt
//!   deliver` still running beside it);
//! - a file whose last reference was deleted: the deleting transaction moves
//!   its name into the `blob_trash` table; the writer unlinks the file after
//!   that commit and deletes the trash rows in its next transaction, and
//!   [`super::SqliteStore::open`] empties the trash left by a crash.
//!
//! Layout: `blobs/XX/NAME`, 256 fan-out directories made at open.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub(super) struct BlobFiles {
    dir: PathBuf,
    min_size: usize,
    counter: AtomicU64,
}

/// A name is `XX/` and 16 + 8 + 16 hex digits with two dashes: anything
/// else in the database is refused rather than joined to a path.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 3
        && b.len() <= 64
        && b[2] == b'/'
        && b[..2].iter().all(u8::is_ascii_hexdigit)
        && b[3..].iter().all(|c| c.is_ascii_hexdigit() || *c == b'-')
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobFiles {
    /// Opens (creating) `dir` and its fan-out directories.
    pub fn open(dir: PathBuf, min_size: usize) -> io::Result<BlobFiles> {
        let fresh = !dir.exists();
        fs::create_dir_all(&dir)?;
        let mut made = false;
        for i in 0..256u32 {
            let sub = dir.join(format!("{i:02x}"));
            if !sub.is_dir() {
                fs::create_dir(&sub)?;
                made = true;
            }
        }
        if made {
            sync_dir(&dir)?;
        }
        if fresh && let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ok(BlobFiles {
            dir,
            min_size: min_size.max(1),
            counter: AtomicU64::new(seed),
        })
    }

    /// Whether content of `len` bytes goes into a file.
    pub fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if valid_name(name) {
            Ok(self.dir.join(name))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad blob file name {name:?}"),
            ))
        }
    }

    /// Writes `content` to a new file and makes it durable; returns its name.
    pub fn write(&self, content: &[u8]) -> io::Result<String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{:02x}/{n:016x}-{:08x}-{:016x}",
            n & 0xff,
            std::process::id(),
            {
                // Two processes may share the store (server and `postamt
                // deliver`); the pid and a clock reading keep their names apart.
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            }
        );
        let path = self.path(&name)?;
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            f.write_all(content)?;
            f.sync_data()?;
            sync_dir(path.parent().unwrap_or(&self.dir))
        })();
        match result {
            Ok(()) => Ok(name),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Appends the file's content to `out`.
    pub fn read_into(&self, name: &str, out: &mut Vec<u8>) -> io::Result<()> {
        let mut f = File::open(self.path(name)?)?;
        let len = f.metadata()?.len() as usize;
        out.reserve_exact(len);
        f.read_to_end(out)?;
        Ok(())
    }

    /// Removes a file; one that is already gone is fine.
    pub fn remove(&self, name: &str) {
        match self.path(name).and_then(fs::remove_file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = name, error = %e, "cannot remove blob file"),
        }
    }

    /// Removes files that no row references and that are older than
    /// `min_age`; returns how many went.
    pub fn sweep(&self, referenced: &HashSet<String>, min_age: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for i in 0..256u32 {
            let sub = format!("{i:02x}");
            let entries = match fs::read_dir(self.dir.join(&sub)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let name = format!("{sub}/{file}");
                if !valid_name(&name) || referenced.contains(&name) {
                    continue;
                }
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .is_some_and(|age| age >= min_age);
                if old {
                    self.remove(&name);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_use() {
        assert!(valid_name("0a/0123456789abcdef-0000002a-0123456789abcdef"));
        for bad in [
            "",
            "0a",
            "0a/",
            "../x",
            "0a/../../etc",
            "zz/abc",
            "0a/ab/c",
            "/etc/passwd",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn write_read_remove_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path().join("blobs"), 10).unwrap();
        assert!(!files.wants(9) && files.wants(10));
        let a = files.write(b"first file").unwrap();
        let b = files.write(b"second file").unwrap();
        assert_ne!(a, b);
        let mut out = b"prefix:".to_vec();
        files.read_into(&a, &mut out).unwrap();
        assert_eq!(out, b"prefix:first file");
        // Young orphans are kept (a delivery may be about to commit them).
        let keep: HashSet<String> = [a.clone()].into();
        assert_eq!(files.sweep(&keep, Duration::from_secs(3600)).unwrap(), 0);
        assert_eq!(files.sweep(&keep, Duration::ZERO).unwrap(), 1);
        assert!(files.read_into(&b, &mut Vec::new()).is_err());
        files.remove(&a);
        files.remove(&a);
        assert!(files.read_into(&a, &mut Vec::new()).is_err());
    }
}
