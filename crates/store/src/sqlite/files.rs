//! Large message content in files beside the database.
//!
//! SQLite in WAL mode writes every byte twice (into the WAL, then again at
//! the checkpoint), in page-sized frames, all on the one writer thread. For
//! content of `min_size` bytes or more the store writes it outside the
//! database instead, on the delivering thread, so that big messages are
//! written once and in parallel, and the writer thread only commits a small
//! row naming where the content is.
//!
//! **Pack files** (the default). Content is appended to the process's
//! current pack (`blobs/packs/ID.pack`) at an offset aligned to the file
//! system block, and named `p/ID/OFFSET/LEN` in the database. Concurrent
//! deliveries share one `fdatasync` (a group sync, like the database's group
//! commit), and no inode is created per message: on ext4 a file per message
//! costs an inode allocation (slow right after mass deletions), a
//! `fdatasync` and a directory `fsync` each. Deleted content is given back
//! to the file system by punching a hole (`FALLOC_FL_PUNCH_HOLE`); a pack
//! with no data left is unlinked. A pack takes writes only from the process
//! that made it, which holds an exclusive `flock` on it meanwhile, so a pack
//! is never unlinked while it may still grow. A pack is rotated when it
//! reaches `pack_size` bytes. Where the file system cannot punch holes (or
//! with `pack_size = 0`) each content gets its own file, `XX/NAME`, as
//! before; both kinds are read back whichever is configured now.
//!
//! **Durability order.** The content is written and `fdatasync`ed (for a
//! new file or pack, its directory too) *before* the transaction that
//! references it is committed. So a committed row never points at missing
//! content. After a failed `fdatasync` a pack takes no more writes (what the
//! kernel reports after such a failure cannot be trusted).
//!
//! **What can be left over after a crash** and how it is cleaned up:
//! - content written but never referenced (crash or failure before the
//!   commit): [`BlobFiles::sweep`], run when the server starts, removes
//!   such files and punches such ranges out of packs once they are an hour
//!   old (a younger one may belong to a `postamt deliver` still running
//!   beside it) and the pack is not locked by a writer;
//! - content whose last reference was deleted: the deleting transaction
//!   moves its name into the `blob_trash` table; the writer removes the
//!   content after that commit and deletes the trash rows in its next
//!   transaction, and [`super::SqliteStore::open`] empties the trash left by
//!   a crash.
//!
//! Layout: `blobs/XX/NAME` (256 fan-out directories made at open) and
//! `blobs/packs/`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug)]
pub(super) struct BlobFiles {
    dir: PathBuf,
    min_size: usize,
    counter: AtomicU64,
    /// Largest pack before a new one is started; `None`: a file per content.
    pack_size: Option<u64>,
    /// Offsets in packs are multiples of this (the file system block), so
    /// that punching a deleted range frees whole blocks.
    align: u64,
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    pack: Arc<Pack>,
    /// Where the next content goes.
    next: u64,
}

/// A pack that takes writes: this process holds an exclusive `flock` on
/// `file` for as long as the pack lives.
#[derive(Debug)]
struct Pack {
    id: String,
    file: File,
    /// Bumped at the start of each group sync.
    epoch: AtomicU64,
    sync: Mutex<SyncState>,
    poisoned: AtomicBool,
    /// `fdatasync` calls made (for the tests of the group sync).
    syncs: AtomicU64,
    /// End of the highest range handed out for writing.
    end: AtomicU64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The epoch a finished `fdatasync` started: it covers every write that
    /// completed while the epoch was still below this value.
    synced: u64,
    /// The page cache was told to drop the pack up to here.
    dropped: u64,
}

/// How much of a pack's most recent content stays in the page cache after
/// it is synced (mail just delivered is what IMAP IDLE clients fetch next);
/// older content is dropped from the cache (see [`Pack::drop_behind`]).
const CACHE_BEHIND: u64 = 16 << 20;

impl Pack {
    /// Makes everything written to the pack so far durable, sharing one
    /// `fdatasync` among the threads that ask at about the same time.
    ///
    /// `mine` is the epoch read right after the write completed (later
    /// reads would see epochs that syncs started after that write bumped,
    /// and sync again for nothing).
    fn sync_after_write(&self, mine: u64) -> io::Result<()> {
        let mut state = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(io::Error::other("an earlier fdatasync of this pack failed"));
        }
        if state.synced > mine {
            return Ok(());
        }
        let start = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        match self.file.sync_data() {
            Ok(()) => {
                state.synced = start;
                self.drop_behind(&mut state);
                Ok(())
            }
            Err(e) => {
                self.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Drop-behind: content written and synced long enough ago leaves the
    /// page cache, so a stream of deliveries keeps reusing the same few
    /// megabytes of memory instead of filling the cache with mail that is
    /// read minutes or days later (and evicting the database's pages).
    /// Only clean pages go (`POSIX_FADV_DONTNEED`): this never loses data.
    /// On a VM whose freed memory goes back to the host, it also keeps the
    /// writes off memory that would have to be faulted in again.
    fn drop_behind(&self, state: &mut SyncState) {
        // Whole 2 MiB steps: the page cache keeps large folios (up to 2 MiB,
        // aligned in the file), and one that sticks out of the range stays.
        const STEP: u64 = 2 << 20;
        let upto = self.end.load(Ordering::SeqCst).saturating_sub(CACHE_BEHIND) / STEP * STEP;
        if upto > state.dropped {
            let len = std::num::NonZeroU64::new(upto - state.dropped);
            let _ =
                rustix::fs::fadvise(&self.file, state.dropped, len, rustix::fs::Advice::DontNeed);
            state.dropped = upto;
        }
    }
}

/// Content appended to a pack but not yet synced (see [`BlobFiles::append`]):
/// the pack, and its sync epoch when the write had completed.
pub(super) struct Unsynced(Arc<Pack>, u64);

impl Unsynced {
    /// Makes the content durable; one `fdatasync` serves every write to the
    /// pack that completed before it started.
    pub fn sync(&self) -> io::Result<()> {
        self.0.sync_after_write(self.1)
    }
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

/// `p/ID/OFFSET/LEN` (hex; ID 24 digits): the pack, the offset and the
/// length of a content, or `None` if `name` is not such a name.
fn pack_range(name: &str) -> Option<(&str, u64, u64)> {
    let mut parts = name.split('/');
    let (Some("p"), Some(id), Some(off), Some(len), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let hex = |s: &str, max: usize| {
        (!s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    let valid_id = id.len() == 24 && id.bytes().all(|c| c.is_ascii_hexdigit());
    let (off, len) = (hex(off, 16)?, hex(len, 16)?);
    (valid_id && off.checked_add(len).is_some()).then_some((id, off, len))
}

fn round_up(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Gives the blocks of `[off, off + len)` back to the file system; the file
/// keeps its size and reads zeros there.
fn punch_hole(file: &File, off: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    if len == 0 {
        return Ok(());
    }
    rustix::fs::fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        off,
        len,
    )
    .map_err(io::Error::from)
}

/// Whether `[from, to)` of the file holds any data (per `SEEK_DATA`).
fn has_data(file: &File, from: u64, to: u64) -> io::Result<bool> {
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(from)) {
        Ok(at) => Ok(at < to),
        Err(rustix::io::Errno::NXIO) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the file has no data left (only holes), per `SEEK_DATA`.
fn only_holes(file: &File) -> io::Result<bool> {
    has_data(file, 0, u64::MAX).map(|d| !d)
}

/// Takes the exclusive `flock` without waiting; `false` if another open
/// file (a writer, here or in another process) holds it.
fn try_lock(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether packs work in `dir`: a hole can be punched and is seen as one.
fn packs_supported(dir: &Path, align: u64) -> bool {
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    let result = (|| -> io::Result<bool> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&probe)?;
        f.write_all(&vec![1u8; 2 * align as usize])?;
        punch_hole(&f, 0, 2 * align)?;
        only_holes(&f)
    })();
    let _ = fs::remove_file(&probe);
    match result {
        Ok(true) => true,
        Ok(false) => {
            tracing::info!("the file system does not report punched holes; a file per message");
            false
        }
        Err(e) => {
            tracing::info!(error = %e, "the file system cannot punch holes; a file per message");
            false
        }
    }
}

impl BlobFiles {
    /// Opens (creating) `dir` and its fan-out directories. `pack_size` is
    /// the size at which a pack is rotated; 0 keeps a file per content.
    pub fn open(dir: PathBuf, min_size: usize, pack_size: u64) -> io::Result<BlobFiles> {
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
        let packs = dir.join("packs");
        if !packs.is_dir() {
            fs::create_dir(&packs)?;
            made = true;
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
        let align = fs::metadata(&packs)
            .map(|m| m.blksize())
            .unwrap_or(4096)
            .clamp(4096, 1 << 20);
        let pack_size = (pack_size > 0 && packs_supported(&packs, align)).then_some(pack_size);
        Ok(BlobFiles {
            dir,
            min_size: min_size.max(1),
            counter: AtomicU64::new(seed),
            pack_size,
            align,
            current: Mutex::new(None),
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

    fn pack_path(&self, id: &str) -> PathBuf {
        self.dir.join("packs").join(format!("{id}.pack"))
    }

    fn unique(&self) -> (u64, u64) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Two processes may share the store (server and `postamt
        // deliver`); the pid and a clock reading keep their names apart.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        (n, now)
    }

    /// Writes `content` durably; returns the name to store in the database.
    pub fn write(&self, content: &[u8]) -> io::Result<String> {
        match self.pack_size {
            Some(max) => self.write_packed(content, max),
            None => self.write_file(content),
        }
    }

    /// A file of its own.
    fn write_file(&self, content: &[u8]) -> io::Result<String> {
        let (n, now) = self.unique();
        let name = format!(
            "{:02x}/{n:016x}-{:08x}-{now:016x}",
            n & 0xff,
            std::process::id(),
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

    /// A new pack, locked for this process's writes and durable in its
    /// directory.
    fn new_pack(&self) -> io::Result<Arc<Pack>> {
        let (_, now) = self.unique();
        let id = format!("{now:016x}{:08x}", std::process::id());
        let path = self.pack_path(&id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        if !try_lock(&file)? {
            return Err(io::Error::other(format!("pack {id} is locked")));
        }
        sync_dir(&self.dir.join("packs"))?;
        Ok(Arc::new(Pack {
            id,
            file,
            epoch: AtomicU64::new(0),
            sync: Mutex::new(SyncState::default()),
            poisoned: AtomicBool::new(false),
            syncs: AtomicU64::new(0),
            end: AtomicU64::new(0),
        }))
    }

    /// Reserves `len` bytes in the current pack (starting a new one when it
    /// is full or failed).
    fn reserve(&self, len: u64, max: u64) -> io::Result<(Arc<Pack>, u64)> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let full = match &*cur {
            None => true,
            Some(c) => c.pack.poisoned.load(Ordering::SeqCst) || (c.next > 0 && c.next + len > max),
        };
        if full {
            // The old pack's lock goes with its last writer (its `Arc`).
            *cur = Some(Current {
                pack: self.new_pack()?,
                next: 0,
            });
        }
        let c = cur.as_mut().expect("set above");
        let off = c.next;
        c.next = round_up(off + len, self.align);
        Ok((Arc::clone(&c.pack), off))
    }

    fn write_packed(&self, content: &[u8], max: u64) -> io::Result<String> {
        let (name, unsynced) = self.append_packed(content, max)?;
        match unsynced.sync() {
            Ok(()) => Ok(name),
            Err(e) => {
                self.remove(&name);
                Err(e)
            }
        }
    }

    /// Whether content goes into packs (else into files of its own).
    pub fn packs(&self) -> bool {
        self.pack_size.is_some()
    }

    /// Appends `content` to the current pack *without* making it durable:
    /// the caller must [`Unsynced::sync`] before committing a row that
    /// names it (the store's writer does so once per batch), and remove it
    /// if that commit does not happen. `None` when packs are off.
    pub fn append(&self, content: &[u8]) -> Option<io::Result<(String, Unsynced)>> {
        self.pack_size.map(|max| self.append_packed(content, max))
    }

    fn append_packed(&self, content: &[u8], max: u64) -> io::Result<(String, Unsynced)> {
        let len = content.len() as u64;
        let (pack, off) = self.reserve(len, max)?;
        pack.end.fetch_max(off + len, Ordering::SeqCst);
        match pack.file.write_all_at(content, off) {
            Ok(()) => {
                // Read after the write completed (see `sync_after_write`).
                let epoch = pack.epoch.load(Ordering::SeqCst);
                Ok((
                    format!("p/{}/{off:x}/{len:x}", pack.id),
                    Unsynced(pack, epoch),
                ))
            }
            Err(e) => {
                let _ = punch_hole(&pack.file, off, round_up(len, self.align));
                Err(e)
            }
        }
    }

    /// Appends the content named `name` to `out`.
    pub fn read_into(&self, name: &str, out: &mut Vec<u8>) -> io::Result<()> {
        if let Some((id, off, len)) = pack_range(name) {
            let f = File::open(self.pack_path(id))?;
            let at = out.len();
            let len = usize::try_from(len).map_err(io::Error::other)?;
            out.resize(at + len, 0);
            return f.read_exact_at(&mut out[at..], off).inspect_err(|_| {
                out.truncate(at);
            });
        }
        let mut f = File::open(self.path(name)?)?;
        let len = f.metadata()?.len() as usize;
        out.reserve_exact(len);
        f.read_to_end(out)?;
        Ok(())
    }

    /// Removes content; content already gone is fine.
    pub fn remove(&self, name: &str) {
        let result = match pack_range(name) {
            Some((id, off, len)) => self.remove_range(id, off, len),
            None => self.path(name).and_then(fs::remove_file),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = name, error = %e, "cannot remove message content"),
        }
    }

    /// Punches the range out of its pack, and unlinks the pack when nothing
    /// is left in it and no writer holds it.
    fn remove_range(&self, id: &str, off: u64, len: u64) -> io::Result<()> {
        let path = self.pack_path(id);
        let f = OpenOptions::new().read(true).write(true).open(&path)?;
        punch_hole(&f, off, round_up(len, self.align))?;
        self.unlink_if_empty(&f, &path)
    }

    fn unlink_if_empty(&self, f: &File, path: &Path) -> io::Result<()> {
        if only_holes(f)? && try_lock(f)? {
            fs::remove_file(path)?;
        }
        Ok(())
    }

    /// Removes content that no row references and that is older than
    /// `min_age`: files, and ranges of packs no writer holds (punched out;
    /// a pack left empty is unlinked). Returns how many files and pack
    /// ranges went.
    pub fn sweep(&self, referenced: &HashSet<String>, min_age: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let old_enough = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= min_age)
        };
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
                if entry.metadata().is_ok_and(|m| old_enough(&m)) {
                    self.remove(&name);
                    removed += 1;
                }
            }
        }
        // The ranges each pack still has to keep.
        let mut keep: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
        for (id, off, len) in referenced.iter().filter_map(|n| pack_range(n)) {
            keep.entry(id).or_default().push((off, len));
        }
        let entries = match fs::read_dir(self.dir.join("packs")) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|f| f.strip_suffix(".pack"))
                .filter(|id| id.len() == 24 && id.bytes().all(|c| c.is_ascii_hexdigit()))
                .map(str::to_string)
            else {
                continue;
            };
            let path = entry.path();
            let f = OpenOptions::new().read(true).write(true).open(&path)?;
            let meta = f.metadata()?;
            if !old_enough(&meta) || !try_lock(&f)? {
                continue;
            }
            let mut ranges = keep.remove(id.as_str()).unwrap_or_default();
            ranges.sort_unstable();
            let mut at = 0;
            // The gaps between them that still hold data are orphans.
            // (Up to the end of the last block: a partly punched block stays.)
            ranges.push((round_up(meta.len(), self.align), 0));
            for (off, len) in ranges {
                if off > at && has_data(&f, at, off)? {
                    punch_hole(&f, at, off - at)?;
                    removed += 1;
                }
                at = at.max(round_up(off + len, self.align));
            }
            self.unlink_if_empty(&f, &path)?;
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
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 0).unwrap();
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

    #[test]
    fn pack_names_are_checked_before_use() {
        let id = "0123456789abcdef0000002a";
        assert_eq!(
            pack_range(&format!("p/{id}/1000/2a")),
            Some((id, 0x1000, 0x2a))
        );
        for bad in [
            "p/".to_string(),
            format!("p/{id}/10"),
            format!("p/{id}/10/20/30"),
            format!("p/{id}x/10/20"),
            "p/../../etc/passwd/1/2".to_string(),
            format!("p/{id}//20"),
            format!("p/{id}/ffffffffffffffff/ffffffffffffffff"),
            format!("p/{id}/-1/2"),
            format!("q/{id}/1/2"),
        ] {
            assert!(pack_range(&bad).is_none(), "{bad}");
            assert!(!valid_name(&bad), "{bad}");
        }
    }

    fn packs_in(dir: &Path) -> usize {
        fs::read_dir(dir.join("blobs/packs"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".pack")
            })
            .count()
    }

    #[test]
    fn packed_contents_share_a_file_at_aligned_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap();
        assert!(files.pack_size.is_some(), "ext4/tmpfs can punch holes");
        let contents: Vec<Vec<u8>> = (0..5u8)
            .map(|i| vec![b'a' + i; 5000 + i as usize])
            .collect();
        let names: Vec<String> = contents.iter().map(|c| files.write(c).unwrap()).collect();
        let ids: HashSet<&str> = names.iter().map(|n| pack_range(n).unwrap().0).collect();
        assert_eq!(ids.len(), 1, "{names:?}");
        for (n, c) in names.iter().zip(&contents) {
            let (_, off, len) = pack_range(n).unwrap();
            assert_eq!(off % files.align, 0);
            assert_eq!(len as usize, c.len());
            let mut out = b"x".to_vec();
            files.read_into(n, &mut out).unwrap();
            assert_eq!(&out[1..], &c[..]);
        }
        // Removing everything empties the pack, but the writer still holds
        // it: it stays.
        for n in &names {
            files.remove(n);
            files.remove(n);
        }
        assert_eq!(packs_in(dir.path()), 1);
        drop(files);
        // Nobody holds it now: the sweep finds it empty and unlinks it.
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap();
        assert_eq!(files.sweep(&HashSet::new(), Duration::ZERO).unwrap(), 0);
        assert_eq!(packs_in(dir.path()), 0);
    }

    #[test]
    fn a_full_pack_is_rotated_and_unlinked_when_its_last_content_goes() {
        let dir = tempfile::tempdir().unwrap();
        // Every write beyond the first fills the pack: one pack each.
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 100).unwrap();
        let a = files.write(&[1u8; 300]).unwrap();
        let b = files.write(&[2u8; 300]).unwrap();
        assert_ne!(pack_range(&a).unwrap().0, pack_range(&b).unwrap().0);
        assert_eq!(packs_in(dir.path()), 2);
        files.remove(&a);
        assert_eq!(packs_in(dir.path()), 1, "a's pack is sealed and empty");
        files.remove(&b);
        assert_eq!(packs_in(dir.path()), 1, "b's pack is still the current one");
    }

    #[test]
    fn the_sweep_punches_orphan_ranges_out_of_packs_no_writer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap();
        let kept = files.write(&[7u8; 10_000]).unwrap();
        let orphan = files.write(&[8u8; 10_000]).unwrap();
        let kept2 = files.write(&[9u8; 10_000]).unwrap();
        let referenced: HashSet<String> = [kept.clone(), kept2.clone()].into();
        // The pack is locked by its writer: nothing is touched.
        assert_eq!(files.sweep(&referenced, Duration::ZERO).unwrap(), 0);
        drop(files);
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap();
        // Young packs are kept too (a `postamt deliver` may be committing).
        assert_eq!(
            files.sweep(&referenced, Duration::from_secs(3600)).unwrap(),
            0
        );
        // The orphan in the middle and nothing else.
        assert_eq!(files.sweep(&referenced, Duration::ZERO).unwrap(), 1);
        assert_eq!(files.sweep(&referenced, Duration::ZERO).unwrap(), 0);
        let mut out = Vec::new();
        files.read_into(&orphan, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 0), "punched");
        for (n, b) in [(&kept, 7u8), (&kept2, 9u8)] {
            let mut out = Vec::new();
            files.read_into(n, &mut out).unwrap();
            assert_eq!(out, vec![b; 10_000]);
        }
        // With no reference left the pack goes (one gap: all of it).
        assert_eq!(files.sweep(&HashSet::new(), Duration::ZERO).unwrap(), 1);
        assert_eq!(packs_in(dir.path()), 0);
    }

    #[test]
    fn concurrent_writers_share_syncs_and_keep_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap());
        let handles: Vec<_> = (0..8u8)
            .map(|t| {
                let files = Arc::clone(&files);
                std::thread::spawn(move || {
                    (0..20u8)
                        .map(|i| {
                            let c = vec![t.wrapping_mul(31).wrapping_add(i); 20_000 + i as usize];
                            (files.write(&c).unwrap(), c)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<(String, Vec<u8>)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let names: HashSet<&String> = all.iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 160);
        // 160 × ~20 KB in 1 MiB packs: several packs, rotated under load.
        assert!(packs_in(dir.path()) >= 3);
        for (n, c) in &all {
            let mut out = Vec::new();
            files.read_into(n, &mut out).unwrap();
            assert_eq!(&out, c, "{n}");
        }
    }

    #[test]
    fn appended_contents_are_made_durable_by_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlobFiles::open(dir.path().join("blobs"), 10, 1 << 20).unwrap();
        let appended: Vec<(String, Unsynced)> = (0..10u8)
            .map(|i| files.append(&[i; 5000]).unwrap().unwrap())
            .collect();
        for (_, u) in &appended {
            u.sync().unwrap();
        }
        let pack = &appended[0].1.0;
        assert_eq!(pack.syncs.load(Ordering::Relaxed), 1);
        // A write after that sync needs a sync of its own.
        let (_, later) = files.append(&[9; 5000]).unwrap().unwrap();
        later.sync().unwrap();
        appended[0].1.sync().unwrap();
        assert_eq!(pack.syncs.load(Ordering::Relaxed), 2);
        for (i, (n, _)) in appended.iter().enumerate() {
            let mut out = Vec::new();
            files.read_into(n, &mut out).unwrap();
            assert_eq!(out, vec![i as u8; 5000]);
        }
    }
}
