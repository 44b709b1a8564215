//! Runtime files of one hil process (QMP sockets and the like), and the processes hil
//! may signal.
//!
//! A lab host is shared: a file with a fixed or guessable name in a directory others can
//! write to (`/tmp`) can be made by someone else first. So runtime files live in one
//! private directory per hil process: mode 0700, owned by the user, a random name, made
//! under `$XDG_RUNTIME_DIR` when that is usable (absolute, owned by the user, not writable
//! by group or others), else under `<cache>/run` (the cache root, created 0700 likewise).
//! There is no fall back to `/tmp`: hil stops with an error naming what to set. The
//! directory is removed when the process ends ([`cleanup`]).
//!
//! A process hil did not start is never signalled: a pid read back from a file is
//! signalled only when the process still has the start time (field 22 of
//! `/proc/PID/stat`) and the executable (`/proc/PID/exe`) recorded when hil started it
//! ([`ProcId`]); pids <= 1 and values that are no pid are refused.

use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);

/// Unix socket paths (sun_path) hold at most 107 bytes and a NUL.
pub const SOCKET_PATH_MAX: usize = 107;

/// `p` is a directory (not a symlink) of this user that no one else may write to.
pub fn check_not_shared(p: &Path) -> Result<(), String> {
    let m = std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !m.file_type().is_dir() {
        return Err(format!("{} is not a directory", p.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to this user (uid {me})",
            p.display(),
            m.uid()
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o})",
            p.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// `p` is a private directory: [`check_not_shared`], and mode 0700 exactly.
pub fn check_private(p: &Path) -> Result<(), String> {
    check_not_shared(p)?;
    let mode = std::fs::symlink_metadata(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by group or others (mode {:o}); expected 0700",
            p.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// A socket hil may connect to: a socket of this user, in a directory no one else may
/// write to (so no one else could have put it there or renamed another in its place).
pub fn check_socket(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("{} has no directory", path.display()))?;
    check_not_shared(dir).map_err(|e| {
        format!(
            "not connecting to {}: its directory is not private: {e}",
            path.display()
        )
    })?;
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    use std::os::unix::fs::FileTypeExt;
    if !m.file_type().is_socket() {
        return Err(format!("{} is not a socket", path.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(format!(
            "not connecting to {}: it belongs to uid {}, not to this user",
            path.display(),
            m.uid()
        ));
    }
    Ok(())
}

/// Where the per-process directories go: `xdg` ($XDG_RUNTIME_DIR) when usable, else
/// `<cache>/run`, made 0700. `cache` is hil's cache root, or why there is none.
pub fn base_dir(
    xdg: Option<OsString>,
    cache: Result<PathBuf, String>,
) -> Result<PathBuf, RuntimeError> {
    if let Some(x) = xdg.filter(|x| !x.is_empty()).map(PathBuf::from) {
        if x.is_absolute() && check_not_shared(&x).is_ok() {
            return Ok(x);
        }
    }
    let cache = cache.map_err(|e| {
        RuntimeError(format!(
            "no private directory for runtime files: $XDG_RUNTIME_DIR is unset or unusable and {e}; \
             set XDG_RUNTIME_DIR or HIL_CACHE (hil does not fall back to /tmp)"
        ))
    })?;
    let run = cache.join("run");
    std::fs::create_dir_all(&run)
        .map_err(|e| RuntimeError(format!("cannot create {}: {e}", run.display())))?;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| RuntimeError(format!("cannot make {} private: {e}", run.display())))?;
    check_private(&run).map_err(|e| RuntimeError(format!("runtime files: {e}")))?;
    Ok(run)
}

/// A new private directory (0700, random name) under `base`.
pub fn create_in(base: &Path) -> Result<tempfile::TempDir, RuntimeError> {
    let d = tempfile::Builder::new()
        .prefix("hil-")
        .tempdir_in(base)
        .map_err(|e| {
            RuntimeError(format!(
                "cannot create a directory in {}: {e}",
                base.display()
            ))
        })?;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| RuntimeError(format!("{}: {e}", d.path().display())))?;
    check_private(d.path()).map_err(RuntimeError)?;
    Ok(d)
}

static DIR: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

/// This process's private runtime directory, made on first use.
pub fn dir() -> Result<PathBuf, RuntimeError> {
    let mut d = DIR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(t) = d.as_ref() {
        return Ok(t.path().to_path_buf());
    }
    let base = base_dir(
        std::env::var_os("XDG_RUNTIME_DIR"),
        crate::lab::cache_root().map_err(|e| e.to_string()),
    )?;
    let t = create_in(&base)?;
    let p = t.path().to_path_buf();
    *d = Some(t);
    Ok(p)
}

/// Removes this process's runtime directory (at the end of the run).
pub fn cleanup() {
    let t = DIR.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(t);
}

/// A Unix socket path for `name` in the runtime directory; an error when it would be
/// longer than a socket path may be.
pub fn socket_path(name: &str) -> Result<PathBuf, RuntimeError> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let p = dir()?.join(format!("{safe}.sock"));
    if p.as_os_str().len() > SOCKET_PATH_MAX {
        return Err(RuntimeError(format!(
            "socket path {} is longer than {SOCKET_PATH_MAX} bytes; set XDG_RUNTIME_DIR or HIL_CACHE to a shorter directory",
            p.display()
        )));
    }
    Ok(p)
}

/// A process as hil started it: its pid, start time (clock ticks since boot, field 22 of
/// `/proc/PID/stat`) and executable. A pid alone may be reused by any process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    pub start_time: u64,
    pub exe: PathBuf,
}

/// A pid that may be signalled on its own: > 1 and within pid_t (0 and -1 would mean
/// the caller's process group and every process).
pub fn valid_pid(pid: u64) -> Result<i32, String> {
    match i32::try_from(pid) {
        Ok(p) if p > 1 => Ok(p),
        _ => Err(format!("pid {pid} is not a process hil may signal")),
    }
}

/// Field 22 (starttime) of a `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and `)`: fields are counted after its last `)`.
pub fn stat_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state): field 22 is the 20th word.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl ProcId {
    /// The running process `pid` as it is now; `None` when there is none (or it is not
    /// a pid hil may signal).
    pub fn of(pid: u32) -> Option<ProcId> {
        valid_pid(pid.into()).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(ProcId {
            pid,
            start_time: stat_start_time(&stat)?,
            exe,
        })
    }

    /// `Ok` when `pid` is still this process; else why not (gone, or another process).
    pub fn check(&self) -> Result<(), String> {
        valid_pid(self.pid.into())?;
        match ProcId::of(self.pid) {
            None => Err(format!("pid {} is not running", self.pid)),
            Some(now) if now == *self => Ok(()),
            Some(now) => Err(format!(
                "pid {} is now another process ({}, started at tick {}; hil started {} at tick {})",
                self.pid,
                now.exe.display(),
                now.start_time,
                self.exe.display(),
                self.start_time
            )),
        }
    }

    /// Sends `sig` to this process only, after checking that the pid is still it. A small
    /// window remains between check and kill(2); pidfds would close it, but the process
    /// is not hil's child here, and a pid is reused only after its process is gone.
    pub fn signal(&self, sig: i32) -> Result<(), String> {
        self.check()?;
        let pid = valid_pid(self.pid.into())?;
        // SAFETY: kill(2) of one checked pid (> 1, so never a group or every process).
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(format!("kill {pid}: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn the_runtime_dir_is_private_random_and_not_in_tmp() {
        let d = dir().unwrap();
        check_private(&d).unwrap();
        assert_ne!(
            d.parent(),
            Some(std::env::temp_dir().as_path()),
            "{}",
            d.display()
        );
        let name = d.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("hil-") && name.len() > "hil-".len() + 4,
            "{name}"
        );
        let s = socket_path("sim board/x").unwrap();
        assert_eq!(s.parent(), Some(d.as_path()));
        assert_eq!(s.file_name().unwrap(), "sim_board_x.sock");
    }

    #[test]
    fn base_dir_takes_a_usable_xdg_dir_else_the_cache_and_never_tmp() {
        let t = tempfile::tempdir().unwrap();
        let xdg = t.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cache = t.path().join("cache");
        assert_eq!(
            base_dir(Some(xdg.clone().into()), Ok(cache.clone())).unwrap(),
            xdg
        );
        // Writable by others (as /tmp is): not used; the cache's run dir instead, 0700.
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let b = base_dir(Some(xdg.clone().into()), Ok(cache.clone())).unwrap();
        assert_eq!(b, cache.join("run"));
        check_private(&b).unwrap();
        // Relative: not used either.
        assert_eq!(
            base_dir(Some("rel".into()), Ok(cache.clone())).unwrap(),
            cache.join("run")
        );
        // Neither: an error that says what to set, not /tmp.
        let e = base_dir(None, Err("HOME is unset".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("XDG_RUNTIME_DIR") && e.contains("HIL_CACHE"),
            "{e}"
        );
        let d = create_in(&b).unwrap();
        check_private(d.path()).unwrap();
        let p = d.path().to_path_buf();
        drop(d);
        assert!(!p.exists(), "removed at the end");
    }

    #[test]
    fn a_socket_in_a_shared_dir_or_not_a_socket_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let planted = shared.join("qmp.sock");
        let _l = std::os::unix::net::UnixListener::bind(&planted).unwrap();
        let e = check_socket(&planted).unwrap_err();
        assert!(e.contains("not private"), "{e}");
        let private = t.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = private.join("qmp.sock");
        std::fs::write(&file, "").unwrap();
        assert!(check_socket(&file).unwrap_err().contains("not a socket"));
        std::fs::remove_file(&file).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(&file).unwrap();
        check_socket(&file).unwrap();
    }

    #[test]
    fn pids_that_are_groups_or_out_of_range_are_refused() {
        for p in [0u64, 1, u64::from(u32::MAX), i32::MAX as u64 + 1] {
            assert!(valid_pid(p).is_err(), "{p}");
        }
        assert_eq!(valid_pid(4242).unwrap(), 4242);
        let bad = ProcId {
            pid: u32::MAX,
            start_time: 1,
            exe: "/bin/sleep".into(),
        };
        assert!(bad.signal(0).is_err());
        assert!(ProcId::of(0).is_none() && ProcId::of(1).is_none());
    }

    #[test]
    fn stat_start_time_counts_fields_after_the_command_name() {
        let line =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(stat_start_time(line), Some(987654));
    }

    #[test]
    fn a_reused_pid_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let id = ProcId::of(child.id()).unwrap();
        id.check().unwrap();
        // Same pid, another start time: what a reused pid looks like.
        let other = ProcId {
            start_time: id.start_time + 1,
            ..id.clone()
        };
        let e = other.signal(libc::SIGKILL).unwrap_err();
        assert!(e.contains("another process"), "{e}");
        assert!(child.try_wait().unwrap().is_none(), "still running");
        id.signal(libc::SIGKILL).unwrap();
        child.wait().unwrap();
    }
}
