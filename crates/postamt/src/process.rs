//! Process-wide settings made once at start: the allocator's thresholds and
//! trimming, and the open-files limit. The only `unsafe` code of postamt
//! (libc calls, each with its SAFETY note).

/// glibc raises its mmap threshold each time a large block is freed, after
/// which large buffers (a RETR of a big message, a 100,000-entry maildrop)
/// come from the heap and are never given back: the benchmark left a server
/// at 135-190 MB after its sessions ended. Fixed thresholds keep large blocks
/// in mmap and trim the heap, so memory returns to ~13 MB (bench/README.md).
/// The thresholds are 1 MiB (mmap) and 32 MiB (trim), not glibc's initial
/// 128 KiB: with 128 KiB every 100 KB message's buffers were mmapped or
/// trimmed away and faulted in again, 23 page faults and 20 % of the SMTP
/// server's CPU per message (bench/README.md, "SMTP"). A trim threshold of
/// 2 MiB still trimmed and refaulted the heap top as 32 sessions' DATA
/// buffers came and went (6.6 page faults per 100 KB message; 32 MiB: 0.06).
/// What stays free at the top, and blocks below 1 MiB freed in the middle
/// of the heap, go back with the periodic `malloc_trim` (30 s).
#[allow(unsafe_code)]
pub fn tune_malloc() {
    const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
    const TRIM_THRESHOLD: libc::c_int = 32 * 1024 * 1024;
    // SAFETY: mallopt only sets allocator parameters; it is called once,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        // Fewer per-thread arenas: less memory held in free lists that
        // only one thread can reuse.
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Memory freed by ended sessions (10,000 IDLE connections closing) sits
/// in the allocator's free lists of every arena; the trim threshold only
/// covers the top of the main heap. Hand free pages back to the system
/// every 30 s, in the background.
#[allow(unsafe_code)]
pub fn spawn_memory_trimmer() {
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(30));
                // SAFETY: malloc_trim only releases free memory of the
                // allocator; it takes the arena locks itself.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
}

/// Each connection needs a descriptor (two with a transcript) and the store
/// a few more; the usual soft limit of 1024 is below `max_connections`.
/// Raise the soft limit to the hard limit, as Postfix and Dovecot do.
#[allow(unsafe_code)]
pub fn raise_open_files_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(1 << 20);
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
