//! What the process uses of the machine: open files against their limit, memory.
//! Read from `/proc/self` (Linux); elsewhere the figures are `None`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// File descriptors one account holds at most: its session store, message store and
/// webhook outbox (each with its log and shared memory), and its WebSocket.
pub const FDS_PER_ACCOUNT: u64 = 10;

/// Raises the soft limit on open files to the hard limit (a thousand accounts need
/// about ten thousand); returns the limit now in force.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => return Some(hard),
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the limit on open files")
            }
        }
    }
    Some(soft)
}

/// The limit on open files now in force.
pub fn fd_limit() -> Option<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// How many files this process has open.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// Room for `accounts` more accounts under the limit on open files: `Err` with
/// the figures when there is none.
pub fn room_for_accounts(accounts: u64) -> Result<(), String> {
    let (Some(open), Some(limit)) = (open_fds(), fd_limit()) else {
        return Ok(());
    };
    let needed = accounts * FDS_PER_ACCOUNT;
    // A margin for requests, uploads and webhook connections.
    let margin = 64 + limit / 20;
    if open + needed + margin > limit {
        return Err(format!(
            "the server is near its limit of open files ({open} open, limit {limit}; an \
             account needs up to {FDS_PER_ACCOUNT}): raise it (ulimit -n, or the \
             container's nofile limit)"
        ));
    }
    Ok(())
}

/// The process's resident memory and its peak, in bytes.
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let bytes = |name| status_kb(&status, name).map(|kb| kb * 1024);
    Some((bytes("VmRSS:")?, bytes("VmHWM:")?))
}

/// The field `name` (with its colon) of a `/proc/PID/status` text, in kB.
fn status_kb(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// glibc's malloc gives threads that allocate at the same moment arenas of their
/// own (up to eight per core), and keeps what is freed in them for later. After a
/// burst, a hundred blocking-pool threads had spread a few megabytes over sixteen
/// arenas, and the memory stayed. With one arena per core (unless the operator set
/// `MALLOC_ARENA_MAX`) and [`return_free_memory`] now and then, a burst's memory
/// goes back. Call before any other thread starts.
pub fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a parameter of the allocator.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// Hands the allocator's free pages back to the system (glibc keeps them
/// otherwise: its own trimming only ever shrinks the top of the main heap).
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How often [`return_free_memory`] runs: a burst's memory is back within this.
pub const RETURN_FREE_MEMORY_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_come_from_this_process() {
        let before = open_fds().unwrap();
        let files: Vec<_> = (0..5).map(|_| tempfile::tempfile().unwrap()).collect();
        assert_eq!(open_fds().unwrap(), before + 5);
        drop(files);
        let limit = raise_fd_limit().unwrap();
        assert_eq!(fd_limit(), Some(limit));
        assert!(room_for_accounts(1).is_ok());
        let err = room_for_accounts(limit).unwrap_err();
        assert!(err.contains("limit of open files"), "{err}");
        let (rss, peak) = memory().unwrap();
        assert!(rss > 1_000_000 && peak >= rss, "{rss} {peak}");
    }

    fn anonymous_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status_kb(&status, "RssAnon:").unwrap()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        // 64 MiB in small blocks, freed but for a block on top that pins the heap:
        // glibc keeps the freed pages until they are handed back.
        let blocks: Vec<Box<[u8; 4096]>> = (0..16_384).map(|_| Box::new([1u8; 4096])).collect();
        let pin = Box::new([1u8; 4096]);
        let before_free = anonymous_kb();
        drop(blocks);
        let freed = anonymous_kb();
        return_free_memory();
        let returned = anonymous_kb();
        drop(pin);
        // Other tests run beside this one: the margins are wide.
        assert!(
            before_free > 60_000,
            "{before_free} kB with 64 MiB allocated"
        );
        assert!(
            freed + 32_000 > before_free,
            "glibc kept the freed pages until asked ({before_free} → {freed} kB)"
        );
        assert!(
            returned + 32_000 < freed,
            "the freed pages went back ({freed} → {returned} kB)"
        );
    }
}
