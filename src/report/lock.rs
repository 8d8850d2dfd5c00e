//! The lock of a results directory: `DIR.lock` beside it, made with create-new (atomic on every
//! local file system) by the process that writes `DIR`, holding its pid and when it started. A
//! second run, merge or report rebuild into `DIR` is refused with the holder's pid and start;
//! a lock whose process is gone (killed, crashed, its machine rebooted) is taken over with a line
//! saying so. Held from before the staging directory is made until after publishing, so two
//! processes never clean up, stage or publish the same directory at once.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is being written by another aimc process (pid {pid}{what}, since {started}; lock file {lock}); wait for it to finish, or choose another --out (if no such process runs, delete {lock})"
    )]
    Held { dir: PathBuf, lock: PathBuf, pid: u32, what: String, started: String },
    #[error("cannot make the lock file {lock} of the results directory: {source}; choose a writable --out")]
    Io { lock: PathBuf, source: std::io::Error },
}

/// A held lock, released (its file removed) on drop.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    token: String,
}

/// The lock file of results directory `dir`.
pub fn path_for(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
    dir.with_file_name(format!("{name}.lock"))
}

/// What a lock file says about its holder.
struct Holder {
    pid: u32,
    /// The kernel's start time of the process (Linux: /proc/PID/stat field 22), to tell a live
    /// holder from a new process that got the same pid after the holder died.
    proc_start: Option<u64>,
    started: String,
    command: String,
}

fn parse(text: &str) -> Option<Holder> {
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')).map(str::trim));
    Some(Holder {
        pid: field("pid")?.parse().ok()?,
        proc_start: field("proc_start").and_then(|s| s.parse().ok()),
        started: field("started").unwrap_or("an unknown time").to_string(),
        command: field("command").unwrap_or("").to_string(),
    })
}

/// The start time of process `pid` in clock ticks since boot (Linux), if it can be read.
fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (the command) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` runs (and, where the start time is known, is the one that took the lock).
fn alive(h: &Holder) -> bool {
    if h.pid == std::process::id() {
        return true;
    }
    if h.pid == 0 || h.pid > i32::MAX as u32 {
        return false;
    }
    #[cfg(unix)]
    {
        // Signal 0 checks existence and permission without sending anything; EPERM: it exists.
        let exists = unsafe { libc::kill(h.pid as libc::pid_t, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        match (exists, h.proc_start, proc_start(h.pid)) {
            (false, ..) => false,
            (true, Some(a), Some(b)) => a == b,
            (true, ..) => true,
        }
    }
    #[cfg(not(unix))]
    {
        // Without a portable liveness check a lock is taken as held; the message says how to clear it.
        true
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (the civil-from-days algorithm of
/// H. Hinnant's date library, so no date crate is needed for one timestamp).
pub fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Now, as [`utc`] writes it.
pub fn now_utc() -> String {
    utc(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

impl DirLock {
    /// Takes the lock of results directory `dir`; `say` gets the line about a stale lock taken over.
    pub fn acquire(dir: &Path, say: &mut dyn FnMut(String)) -> Result<DirLock, LockError> {
        let path = path_for(dir);
        let io = |source| LockError::Io { lock: path.clone(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let pid = std::process::id();
        let command: Vec<String> = std::env::args().collect();
        let token = format!(
            "pid={pid}\nproc_start={}\nstarted={}\ncommand={}\n",
            proc_start(pid).map_or_else(String::new, |s| s.to_string()),
            now_utc(),
            command.join(" ").replace('\n', " ")
        );
        // Two tries: the second after removing a stale lock (another process may win that race,
        // and is then the holder the second try reports).
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(token.as_bytes()).and_then(|_| f.sync_all()).map_err(io)?;
                    return Ok(DirLock { path, token });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    match parse(&text) {
                        Some(h) if alive(&h) => {
                            let what = match (h.pid == pid, h.command.is_empty()) {
                                (true, _) => ", this process".to_string(),
                                (false, true) => String::new(),
                                (false, false) => format!(": {}", h.command),
                            };
                            return Err(LockError::Held { dir: dir.to_path_buf(), lock: path.clone(), pid: h.pid, what, started: h.started });
                        }
                        h => {
                            let who = h.map_or_else(
                                || "an unreadable lock".to_string(),
                                |h| format!("process {} (started {}), which no longer runs", h.pid, h.started),
                            );
                            say(format!("taking over the lock {} left by {who}", path.display()));
                            std::fs::remove_file(&path).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }).map_err(io)?;
                        }
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let h = parse(&text).unwrap_or(Holder { pid: 0, proc_start: None, started: "an unknown time".into(), command: String::new() });
        Err(LockError::Held { dir: dir.to_path_buf(), lock: path, pid: h.pid, what: String::new(), started: h.started })
    }
}

impl Drop for DirLock {
    /// Removes the lock file, if it is still this lock's (a lock taken over as stale by another
    /// process is left to it).
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_342_400 + 3_723), "2026-12-04 01:02:03 UTC");
    }

    #[test]
    fn a_held_lock_is_refused_and_a_dead_holder_taken_over() {
        let root = std::env::temp_dir().join(format!("aimc-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let dir = root.join("run");
        let mut lines = Vec::new();
        let lock = DirLock::acquire(&dir, &mut |m| lines.push(m)).unwrap();
        let err = DirLock::acquire(&dir, &mut |m| lines.push(m)).unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}, this process", std::process::id())) && err.contains("run.lock"), "{err}");
        drop(lock);
        assert!(!path_for(&dir).exists());
        // A lock of a process that no longer runs (above Linux's largest pid_max, 2^22) is taken over.
        std::fs::write(path_for(&dir), "pid=4194305\nstarted=2026-01-01 00:00:00 UTC\n").unwrap();
        let lock = DirLock::acquire(&dir, &mut |m| lines.push(m)).unwrap();
        assert!(lines.iter().any(|l| l.contains("taking over") && l.contains("4194305")), "{lines:?}");
        drop(lock);
        let _ = std::fs::remove_dir_all(&root);
    }
}
