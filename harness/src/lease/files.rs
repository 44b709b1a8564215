//! File leases: one file `<dir>/<board>.lease` per board, shared by every user of the host.
//!
//! The file is both the lock and the record. Every step opens it (never through a
//! symlink), takes an `flock` on that descriptor, and reads or rewrites it in place: the
//! record is written over offset 0 and the file cut to its length; a release cuts it to
//! nothing, and an empty file is a free board. Nothing is ever renamed over or unlinked,
//! because in a sticky (1777) directory a user may do neither to another user's file: a
//! lease left behind by a crashed run of one user must stay replaceable by every other.
//! For the same reason the file is made mode 0666 when it is created.
//!
//! What a file holds is checked before it is believed: unreadable JSON, or times and a
//! time to live no live holder could have written, are [`LeaseError::Corrupt`], never a
//! free board, so a damaged or forged file stops runs instead of letting two share a board
//! or keeping the board busy forever.
//!
//! The directory is accepted only if it is a real directory owned by root or by this user,
//! and not writable by others without the sticky bit: whoever owns it could swap any lease
//! file in it.

mod queue;
mod service;

use super::queue::{not_your_turn, Spot, Waiter};
use super::{now, LeaseError, Leases, Owner, Record, DEFAULT_DIR};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a lease step waits for the board's lease file lock. The critical sections
/// under it are a read and a small in-place write (milliseconds), so this only bounds a
/// stuck peer.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The longest time to live a record may claim; longer is a forged or broken file. The
/// board files refuse a `ttl_s` or `up_ttl_s` over the same bound.
const MAX_TTL_S: u64 = 7 * 24 * 3600;

/// How far ahead of this host's clock a record's times may be (another process's clock
/// read a moment later, a small step of NTP).
const CLOCK_SLACK_S: f64 = 60.0;

/// A lease file larger than this cannot be a record; it is not read into memory whole.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Mode of a lease file: every user of the host must be able to lock and rewrite it.
const FILE_MODE: u32 = 0o666;

/// Mode of a lease directory hil creates: shared by every user, each user's files theirs.
const DIR_MODE: u32 = 0o1777;

/// The lease directory.
#[derive(Debug, Clone)]
pub struct FileLeases {
    pub dir: PathBuf,
}

/// A board's lease file, open and locked (closing it releases the lock); or another file
/// of the board, opened the same way while the lease file's lock is held.
pub(super) struct LeaseFile {
    file: File,
    path: PathBuf,
    board: String,
}

impl FileLeases {
    /// `HIL_LEASE_DIR`, else [`DEFAULT_DIR`].
    pub fn from_env() -> FileLeases {
        let dir = std::env::var_os("HIL_LEASE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        FileLeases { dir }
    }

    pub(super) fn io(&self, e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Io {
            dir: self.dir.display().to_string(),
            err: e.to_string(),
        }
    }

    /// The directory, created (mode 1777) if missing, else checked as [`Self::check_dir`].
    fn ensure_dir(&self) -> Result<(), LeaseError> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(meta) => self.check_dir(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.create_dir(),
            Err(e) => Err(self.io(e)),
        }
    }

    fn create_dir(&self) -> Result<(), LeaseError> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.io(e))?;
        }
        match std::fs::create_dir(&self.dir) {
            Ok(()) => {
                // The mode given to mkdir is cut by the umask; chmod is not.
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| self.io(e))?;
            }
            // Another process created it first: check theirs like any existing one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io(e)),
        }
        let meta = std::fs::symlink_metadata(&self.dir).map_err(|e| self.io(e))?;
        self.check_dir(&meta)
    }

    /// Whoever owns the directory, or may write it without the sticky bit, could replace
    /// any lease file in it (and make a run act on a board someone else holds), so only a
    /// real directory of root or of this user qualifies.
    fn check_dir(&self, meta: &std::fs::Metadata) -> Result<(), LeaseError> {
        let fix = format!(
            "have root create it: install -d -m 1777 {}, or set HIL_LEASE_DIR to a directory of yours",
            self.dir.display()
        );
        if meta.file_type().is_symlink() {
            return Err(self.io(format!("is a symlink, not a directory; {fix}")));
        }
        if !meta.is_dir() {
            return Err(self.io(format!("is not a directory; {fix}")));
        }
        let me = effective_uid();
        if meta.uid() != 0 && meta.uid() != me {
            return Err(self.io(format!(
                "owned by uid {}, neither root nor this user (uid {me}), who could replace any lease in it; {fix}",
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(self.io(format!(
                "mode {mode:04o}: writable by other users without the sticky bit, so they could replace each other's leases; chmod 1777 {}",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// The directory, created or checked as for a lease: where a run publishes the
    /// consoles of the boards it holds (`console::follow`), shared the same way.
    pub fn checked_dir(&self) -> Result<&Path, LeaseError> {
        self.ensure_dir()?;
        Ok(&self.dir)
    }

    pub(super) fn file(&self, board: &str) -> PathBuf {
        self.dir.join(format!("{board}.lease"))
    }

    /// Another file of the board (`<board>.<ext>`), opened and checked as the lease file is.
    pub(super) fn side_file(&self, board: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{board}.{ext}"))
    }

    /// Runs `f` on the board's lease file (created if missing), locked for the duration.
    fn locked<T>(
        &self,
        board: &str,
        f: impl FnOnce(&LeaseFile) -> Result<T, LeaseError>,
    ) -> Result<T, LeaseError> {
        self.ensure_dir()?;
        let lease = self.open_or_create(board, self.file(board))?;
        self.lock(&lease)?;
        f(&lease)
    }

    fn lock(&self, lease: &LeaseFile) -> Result<(), LeaseError> {
        match flock_within(&lease.file, LOCK_WAIT) {
            Ok(true) => Ok(()),
            Ok(false) => Err(LeaseError::LockTimeout {
                path: lease.path.display().to_string(),
                secs: LOCK_WAIT.as_secs(),
            }),
            Err(e) => Err(self.io(format!("{}: flock: {e}", lease.path.display()))),
        }
    }

    pub(super) fn open_or_create(
        &self,
        board: &str,
        path: PathBuf,
    ) -> Result<LeaseFile, LeaseError> {
        loop {
            if let Some(f) = self.open_existing(board, path.clone())? {
                return Ok(f);
            }
            if let Some(f) = self.create(board, path.clone())? {
                return Ok(f);
            }
            // Someone created it between the two attempts: open theirs.
        }
    }

    /// The board's lease file if it exists; never through a symlink, never a device or
    /// pipe, never a file with other names (a hard link to a file outside the directory).
    pub(super) fn open_existing(
        &self,
        board: &str,
        path: PathBuf,
    ) -> Result<Option<LeaseFile>, LeaseError> {
        let file = match open_options().open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.open_error(&path, e)),
        };
        self.check_lease_file(&file, &path)?;
        Ok(Some(LeaseFile {
            file,
            path,
            board: board.into(),
        }))
    }

    /// Creates the lease file; `None` when it exists already. `O_EXCL` never follows a
    /// symlink, so nothing is created through one another user planted.
    fn create(&self, board: &str, path: PathBuf) -> Result<Option<LeaseFile>, LeaseError> {
        let file = match open_options().create_new(true).mode(FILE_MODE).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(self.open_error(&path, e)),
        };
        // fchmod: the creation mode was cut by the umask; every user must write the file.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| self.io(format!("{}: chmod: {e}", path.display())))?;
        Ok(Some(LeaseFile {
            file,
            path,
            board: board.into(),
        }))
    }

    fn check_lease_file(&self, file: &File, path: &Path) -> Result<(), LeaseError> {
        let meta = file
            .metadata()
            .map_err(|e| self.io(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(self.io(format!(
                "{} is not a regular file, not a lease file: remove it",
                path.display()
            )));
        }
        if meta.nlink() != 1 {
            return Err(self.io(format!(
                "{} has {} hard links: it may be another file linked here, not a lease file: remove it",
                path.display(),
                meta.nlink()
            )));
        }
        Ok(())
    }

    /// Why a lease file would not open, and what fixes it.
    fn open_error(&self, path: &Path, e: std::io::Error) -> LeaseError {
        match e.raw_os_error() {
            Some(libc::ELOOP) => self.io(format!(
                "{} is a symlink, not a lease file: remove it",
                path.display()
            )),
            Some(libc::EISDIR) | Some(libc::ENXIO) => self.io(format!(
                "{} is not a regular file, not a lease file: remove it",
                path.display()
            )),
            Some(libc::EACCES) | Some(libc::EPERM) => self.not_writable(path, e),
            _ => self.io(format!("{}: {e}", path.display())),
        }
    }

    fn not_writable(&self, path: &Path, e: std::io::Error) -> LeaseError {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return self.io(format!("{}: {e}", path.display()));
        };
        self.io(format!(
            "{} (mode {:04o}, owner uid {}) is not writable by this user (uid {}), so this user cannot lock it; every user of the host must: chmod 666 {} (as its owner or root)",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid(),
            effective_uid(),
            path.display()
        ))
    }

    /// The current lease of a board, if any (expired ones included). A missing directory
    /// or file is a free board; nothing is created by reading.
    pub fn read(&self, board: &str) -> Result<Option<Record>, LeaseError> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(meta) => self.check_dir(&meta)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        }
        let Some(lease) = self.open_existing(board, self.file(board))? else {
            return Ok(None);
        };
        self.lock(&lease)?;
        lease.record()
    }

    /// Every lease in the directory, by board name; a corrupt or unreadable lease file is
    /// an error naming it, not a board left out.
    pub fn list(&self) -> Result<Vec<Record>, LeaseError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut boards: Vec<String> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "lease"))
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .collect();
        boards.sort();
        let mut v = Vec::new();
        for b in boards {
            v.extend(self.read(&b)?);
        }
        Ok(v)
    }

    /// Takes the board if it is free (or expired) with nobody waiting in its queue, or
    /// already ours. Returns the lease record written and the expired record it replaced,
    /// if any. A corrupt file is refused: it may be a live lease of a run this one cannot
    /// read.
    pub fn try_acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        self.acquire(board, owner, ttl, None)
    }

    /// Joins (or keeps a place in) the board's queue and takes the board if it is free
    /// and this owner is the head of the queue; [`LeaseError::Busy`] otherwise, with the
    /// place kept until [`Self::leave_queue`] or until it lapses.
    pub fn try_acquire_queued(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
        spot: &Spot,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        self.acquire(board, owner, ttl, Some(spot))
    }

    fn acquire(
        &self,
        board: &str,
        owner: &Owner,
        ttl: Duration,
        spot: Option<&Spot>,
    ) -> Result<(Record, Option<Record>), LeaseError> {
        self.locked(board, |lease| {
            let t = now();
            let previous = lease.record()?;
            let mut queue = self.queue_locked(board, spot.is_some(), t)?;
            if let Some(spot) = spot {
                queue.join(owner, spot, t);
            }
            let ours = previous.as_ref().is_some_and(|p| p.owner == *owner);
            let busy = |holder: String| LeaseError::Busy {
                board: board.into(),
                holder,
            };
            if let Some(p) = previous.as_ref().filter(|p| !p.expired(t) && !ours) {
                queue.save(self)?;
                return Err(busy(p.describe(t)));
            }
            let order = queue.in_turn();
            if !ours && order.first().is_some_and(|head| head.owner != *owner) {
                queue.save(self)?;
                return Err(busy(not_your_turn(&order, t)));
            }
            let rec = Record {
                board: board.into(),
                owner: owner.clone(),
                acquired: t,
                heartbeat: t,
                ttl_s: ttl.as_secs().max(1),
                token: previous.as_ref().map_or(0, |p| p.token).saturating_add(1),
            };
            lease.store(&rec).map_err(|e| self.io(e))?;
            queue.leave(owner);
            queue.save(self)?;
            Ok((rec, previous.filter(|p| p.owner != *owner)))
        })
    }

    /// Gives up this owner's place in the board's queue (nothing when it has none).
    pub fn leave_queue(&self, board: &str, owner: &Owner) -> Result<(), LeaseError> {
        self.locked(board, |_| {
            let mut queue = self.queue_locked(board, false, now())?;
            queue.leave(owner);
            queue.save(self)
        })
    }

    /// The board's live waiters in the order they are served; nothing is created by
    /// looking.
    pub fn queue(&self, board: &str) -> Result<Vec<Waiter>, LeaseError> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(meta) => self.check_dir(&meta)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        }
        let Some(lease) = self.open_existing(board, self.file(board))? else {
            return Ok(Vec::new());
        };
        self.lock(&lease)?;
        Ok(self.queue_locked(board, false, now())?.in_turn())
    }

    /// Refreshes the heartbeat; [`LeaseError::Lost`] when the lease is no longer ours (it
    /// expired and someone took it over, or it was released): a lost lease is never
    /// re-created, since someone else may hold the board by now.
    pub fn renew(&self, rec: &mut Record) -> Result<(), LeaseError> {
        self.locked(&rec.board.clone(), |lease| {
            verify(lease, rec)?;
            rec.heartbeat = now();
            lease.store(rec).map_err(|e| self.io(e))
        })
    }

    /// [`verify`] under the board's lock.
    pub fn check_current(&self, rec: &Record) -> Result<(), LeaseError> {
        self.locked(&rec.board, |lease| verify(lease, rec))
    }

    /// `hil lab down`: gives back this user's `lab up` lease of the board.
    pub fn release_lab_up(&self, board: &str) -> Result<(), LeaseError> {
        self.locked(board, |lease| {
            if lease
                .record()?
                .is_some_and(|cur| Leases::is_own_lab_up(&cur))
            {
                lease.clear().map_err(|e| self.io(e))?;
            }
            Ok(())
        })
    }

    /// Gives the board back (only if the lease is still ours).
    pub fn release(&self, rec: &Record) -> Result<(), LeaseError> {
        self.locked(&rec.board, |lease| {
            if lease.record()?.is_some_and(|cur| cur.owner == rec.owner) {
                lease.clear().map_err(|e| self.io(e))?;
            }
            Ok(())
        })
    }

    /// Writes `rec` as the board's lease whatever it holds now, as another process could:
    /// how tests stage expired leases and takeovers.
    #[cfg(test)]
    pub(crate) fn overwrite(&self, rec: &Record) -> Result<(), LeaseError> {
        self.locked(&rec.board, |lease| lease.store(rec).map_err(|e| self.io(e)))
    }
}

/// The fencing check: the lease file still holds this very grant (same owner, same
/// token) and it has not expired.
fn verify(lease: &LeaseFile, rec: &Record) -> Result<(), LeaseError> {
    let lost = |why: String| LeaseError::Lost {
        board: rec.board.clone(),
        why,
    };
    match lease.record()? {
        Some(cur) if cur.owner == rec.owner && cur.token == rec.token => {
            if cur.expired(now()) {
                Err(lost(format!(
                    "it expired {:.0} s ago (heartbeats stopped or the clock jumped)",
                    now() - cur.expires()
                )))
            } else {
                Ok(())
            }
        }
        Some(cur) => Err(lost(format!("now {}", cur.describe(now())))),
        None => Err(lost("the lease was released".into())),
    }
}

impl LeaseFile {
    /// What the file holds: `None` when empty (free), [`LeaseError::Corrupt`] when it is
    /// not a record a live holder of this board could have written.
    fn record(&self) -> Result<Option<Record>, LeaseError> {
        let text = self.text()?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let rec: Record = serde_json::from_str(&text).map_err(|e| self.corrupt(e))?;
        check_record(&rec, &self.board, now()).map_err(|why| self.corrupt(why))?;
        Ok(Some(rec))
    }

    pub(super) fn text(&self) -> Result<String, LeaseError> {
        let mut f = &self.file;
        let mut bytes = Vec::new();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| self.corrupt(format!("read: {e}")))?;
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(self.corrupt(format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        String::from_utf8(bytes).map_err(|e| self.corrupt(e))
    }

    /// Rewrites the record in place. The text is padded with spaces to the old length, so
    /// that a crash between the write and the truncation leaves a readable record (JSON
    /// ignores trailing whitespace), never the new record followed by a tail of the old.
    fn store(&self, rec: &Record) -> std::io::Result<()> {
        self.store_json(rec)
    }

    /// [`Self::store`] for any of the board's files.
    pub(super) fn store_json(&self, value: &impl serde::Serialize) -> std::io::Result<()> {
        let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        text.push('\n');
        let len = text.len() as u64;
        let old = self.file.metadata()?.len();
        if old > len {
            text.extend(std::iter::repeat_n(' ', (old - len) as usize));
        }
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.file.set_len(len)?;
        self.file.sync_data()
    }

    /// Frees the board: an empty file.
    pub(super) fn clear(&self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()
    }

    pub(super) fn corrupt(&self, why: impl std::fmt::Display) -> LeaseError {
        LeaseError::Corrupt {
            path: self.path.display().to_string(),
            why: why.to_string(),
        }
    }
}

/// Why `rec` cannot be a lease of `board` written by a live holder on a sane clock: a
/// time in the far future or a huge TTL would keep the board busy forever.
fn check_record(rec: &Record, board: &str, now: f64) -> Result<(), String> {
    if rec.board != board {
        return Err(format!(
            "board is {:?}, but the file is that of board {board:?}",
            rec.board
        ));
    }
    if rec.ttl_s > MAX_TTL_S {
        return Err(format!(
            "ttl_s is {} s, more than the 7 days ({MAX_TTL_S} s) any lease may last",
            rec.ttl_s
        ));
    }
    let latest = now + rec.ttl_s as f64 + CLOCK_SLACK_S;
    for (field, t) in [("acquired", rec.acquired), ("heartbeat", rec.heartbeat)] {
        // Debug keeps 1e300 short and NaN readable.
        if !t.is_finite() || t < 0.0 {
            return Err(format!("{field} is {t:?}, not a time"));
        }
        if t > latest {
            return Err(format!(
                "{field} is {t:?}, more than its ttl_s ({} s) + {CLOCK_SLACK_S:.0} s ahead of this host's clock ({now:.0}): a forged file, or a clock that was wrong",
                rec.ttl_s
            ));
        }
    }
    Ok(())
}

/// Lease files are opened read-write, never through a symlink (`O_NOFOLLOW`), never
/// inherited by the commands hil runs (`O_CLOEXEC`), and without side effects of opening
/// a device or pipe planted in their place (`O_NOCTTY`, `O_NONBLOCK`) before the check
/// that refuses them.
fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK);
    o
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Takes an exclusive `flock` within `wait` (polled: a blocking flock cannot time out).
/// `Ok(false)` when it stayed taken.
fn flock_within(f: &File, wait: Duration) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        // SAFETY: the fd is valid for the life of `f`.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => {}
            _ => return Err(e),
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A test owner; `pid` tells owners apart.
    pub(in crate::lease) fn owner(pid: u32) -> Owner {
        Owner {
            job: "42".into(),
            user: "ci".into(),
            host: "lab1".into(),
            pid,
            run_id: format!("run-{pid}"),
        }
    }

    /// File leases in a fresh temporary directory (kept while the first value lives).
    pub(in crate::lease) fn dir() -> (tempfile::TempDir, FileLeases) {
        let t = tempfile::tempdir().unwrap();
        let l = FileLeases {
            dir: t.path().join("leases"),
        };
        (t, l)
    }

    const MIN: Duration = Duration::from_secs(60);

    fn corrupt_why(e: LeaseError) -> String {
        match e {
            LeaseError::Corrupt { why, .. } => why,
            e => panic!("not Corrupt: {e}"),
        }
    }

    #[test]
    fn second_owner_is_refused_while_the_lease_lives() {
        let (_t, l) = dir();
        let (rec, prev) = l.try_acquire("b1", &owner(1), MIN).unwrap();
        assert!(prev.is_none());
        assert_eq!(l.read("b1").unwrap().unwrap(), rec);
        let e = l.try_acquire("b1", &owner(2), MIN).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("board b1 is busy: held by job 42 (ci@lab1, pid 1, run run-1)"),
            "{msg}"
        );
        assert!(msg.contains("expires in"), "{msg}");
        // Another board is unaffected; the owner may re-take its own.
        l.try_acquire("b2", &owner(2), MIN).unwrap();
        let (again, _) = l.try_acquire("b1", &owner(1), MIN).unwrap();
        assert_eq!(
            again.token,
            rec.token + 1,
            "every grant gets the next token"
        );
        assert_eq!(l.list().unwrap().len(), 2);
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_reported() {
        let (_t, l) = dir();
        let (mut rec, _) = l
            .try_acquire("b1", &owner(1), Duration::from_secs(5))
            .unwrap();
        // The holder stopped renewing (killed) long ago.
        rec.heartbeat -= 10.0;
        l.overwrite(&rec).unwrap();
        let (mine, prev) = l
            .try_acquire("b1", &owner(2), Duration::from_secs(5))
            .unwrap();
        assert_eq!(mine.owner.pid, 2);
        assert_eq!(prev.unwrap().owner.pid, 1);
        // The old holder's heartbeat now fails instead of stealing it back.
        let e = l.renew(&mut rec).unwrap_err().to_string();
        assert!(e.contains("lease of board b1 lost: now held by"), "{e}");
        assert!(l.check_current(&rec).is_err());
        l.check_current(&mine).unwrap();
        assert_eq!(mine.token, rec.token + 1, "a takeover gets the next token");
        // Release by a non-holder leaves the lease alone; by the holder empties the file.
        l.release(&rec).unwrap();
        assert!(l.read("b1").unwrap().is_some());
        l.release(&mine).unwrap();
        assert!(l.read("b1").unwrap().is_none());
    }

    #[test]
    fn a_released_lease_file_is_empty_and_the_board_free_for_the_next() {
        let (_t, l) = dir();
        let (mut rec, _) = l.try_acquire("b1", &owner(1), MIN).unwrap();
        l.release(&rec).unwrap();
        assert_eq!(std::fs::metadata(l.file("b1")).unwrap().len(), 0);
        assert!(l.read("b1").unwrap().is_none());
        // The released holder's heartbeat never re-creates its lease.
        let e = l.renew(&mut rec).unwrap_err();
        assert!(
            e.to_string().contains("lost: the lease was released"),
            "{e}"
        );
        assert_eq!(std::fs::metadata(l.file("b1")).unwrap().len(), 0);
        let (next, prev) = l.try_acquire("b1", &owner(2), MIN).unwrap();
        assert!(prev.is_none());
        assert_eq!(next.owner.pid, 2);
        l.check_current(&next).unwrap();
    }

    #[test]
    fn a_removed_lease_is_lost_and_never_recreated() {
        let (_t, l) = dir();
        let (mut rec, _) = l.try_acquire("b1", &owner(1), MIN).unwrap();
        std::fs::remove_file(l.file("b1")).unwrap();
        let e = l.renew(&mut rec).unwrap_err();
        assert!(matches!(e, LeaseError::Lost { .. }), "{e}");
        assert!(
            l.read("b1").unwrap().is_none(),
            "renew re-created the lease"
        );
    }

    #[test]
    fn an_empty_file_is_a_free_board() {
        let (_t, l) = dir();
        l.ensure_dir().unwrap();
        std::fs::write(l.file("b1"), "").unwrap();
        assert!(l.read("b1").unwrap().is_none());
        assert!(l.list().unwrap().is_empty());
        let (rec, prev) = l.try_acquire("b1", &owner(1), MIN).unwrap();
        assert!(prev.is_none());
        assert_eq!(rec.token, 1);
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let (t, l) = dir();
        l.ensure_dir().unwrap();
        let target = t.path().join("precious");
        std::fs::write(&target, "root's file\n").unwrap();
        std::os::unix::fs::symlink(&target, l.file("b1")).unwrap();
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err().to_string();
        let path = l.file("b1").display().to_string();
        assert!(
            e.contains(&format!("{path} is a symlink, not a lease file: remove it")),
            "{e}"
        );
        assert!(l.read("b1").is_err());
        let rec = Record {
            board: "b1".into(),
            owner: owner(1),
            acquired: now(),
            heartbeat: now(),
            ttl_s: 60,
            token: 1,
        };
        assert!(l.release(&rec).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
        assert!(std::fs::symlink_metadata(l.file("b1"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_hard_link_to_another_file_is_refused() {
        let (t, l) = dir();
        l.ensure_dir().unwrap();
        let target = t.path().join("precious");
        std::fs::write(&target, "root's file\n").unwrap();
        std::fs::hard_link(&target, l.file("b1")).unwrap();
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err().to_string();
        assert!(e.contains("has 2 hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's file\n");
    }

    #[test]
    fn a_forged_far_future_heartbeat_is_corrupt_never_busy_forever() {
        let (_t, l) = dir();
        l.ensure_dir().unwrap();
        let forged = format!(
            r#"{{"board":"b1","owner":{},"acquired":{},"heartbeat":1e300,"ttl_s":60,"token":3}}"#,
            serde_json::to_string(&owner(9)).unwrap(),
            now()
        );
        std::fs::write(l.file("b1"), &forged).unwrap();
        let why = corrupt_why(l.read("b1").unwrap_err());
        assert!(why.starts_with("heartbeat is 1e300"), "{why}");
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&l.file("b1").display().to_string())
                && msg.contains("heartbeat")
                && msg.contains("if no run holds the board, remove the file"),
            "{msg}"
        );
        assert!(!matches!(e, LeaseError::Busy { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(l.file("b1")).unwrap(), forged);
        assert!(
            l.list().is_err(),
            "a corrupt file is an error of the listing"
        );
    }

    #[test]
    fn corrupt_json_is_refused_never_free() {
        let (_t, l) = dir();
        l.ensure_dir().unwrap();
        std::fs::write(l.file("b1"), "{\"board\": \"b1\", \"own").unwrap();
        assert!(matches!(l.read("b1"), Err(LeaseError::Corrupt { .. })));
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err();
        assert!(matches!(e, LeaseError::Corrupt { .. }), "{e}");
        assert_eq!(
            std::fs::read_to_string(l.file("b1")).unwrap(),
            "{\"board\": \"b1\", \"own"
        );
    }

    #[test]
    fn records_no_live_holder_could_write_are_corrupt() {
        let t = now();
        let good = Record {
            board: "b1".into(),
            owner: owner(1),
            acquired: t - 5.0,
            heartbeat: t,
            ttl_s: 60,
            token: 1,
        };
        check_record(&good, "b1", t).unwrap();
        let cases: Vec<(Record, &str)> = vec![
            (
                Record {
                    board: "b2".into(),
                    ..good.clone()
                },
                "board is \"b2\"",
            ),
            (
                Record {
                    ttl_s: MAX_TTL_S + 1,
                    ..good.clone()
                },
                "ttl_s is 604801 s",
            ),
            (
                Record {
                    acquired: -1.0,
                    ..good.clone()
                },
                "acquired is -1.0, not a time",
            ),
            (
                Record {
                    heartbeat: f64::NAN,
                    ..good.clone()
                },
                "heartbeat is NaN",
            ),
            (
                Record {
                    acquired: t + 3600.0,
                    ..good.clone()
                },
                "acquired is",
            ),
        ];
        for (rec, want) in cases {
            let why = check_record(&rec, "b1", t).unwrap_err();
            assert!(why.starts_with(want), "{want}: {why}");
        }
    }

    #[test]
    fn a_rewrite_shorter_than_the_old_record_leaves_no_tail() {
        let (_t, l) = dir();
        let long = Owner {
            run_id: "r".repeat(200),
            ..owner(1)
        };
        let (rec, _) = l.try_acquire("b1", &long, MIN).unwrap();
        let mut short = Record {
            owner: owner(1),
            ..rec
        };
        short.token += 1;
        l.overwrite(&short).unwrap();
        assert_eq!(l.read("b1").unwrap().unwrap(), short);
        let text = std::fs::read_to_string(l.file("b1")).unwrap();
        assert!(text.ends_with("}\n"), "{text:?}");
    }

    /// Restores the umask when dropped, also when an assertion fails.
    struct Umask(libc::mode_t);

    impl Drop for Umask {
        fn drop(&mut self) {
            // SAFETY: umask has no preconditions and cannot fail.
            unsafe { libc::umask(self.0) };
        }
    }

    #[test]
    fn the_lease_file_is_0666_and_the_dir_1777_whatever_the_umask() {
        let (_t, l) = dir();
        // SAFETY: umask has no preconditions and cannot fail.
        let _restore = Umask(unsafe { libc::umask(0o022) });
        l.try_acquire("b1", &owner(1), MIN).unwrap();
        let file = std::fs::metadata(l.file("b1")).unwrap().mode() & 0o7777;
        let dir = std::fs::metadata(&l.dir).unwrap().mode() & 0o7777;
        assert_eq!((file, dir), (0o666, 0o1777), "{file:o} {dir:o}");
    }

    #[test]
    fn a_dir_owned_by_another_user_is_refused() {
        if effective_uid() != 0 {
            eprintln!("skipped: giving a directory to another user needs root");
            return;
        }
        let (_t, l) = dir();
        l.ensure_dir().unwrap();
        std::os::unix::fs::chown(&l.dir, Some(65534), Some(65534)).unwrap();
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err().to_string();
        assert!(
            e.contains("owned by uid 65534, neither root nor this user")
                && e.contains(&format!("install -d -m 1777 {}", l.dir.display()))
                && e.contains("HIL_LEASE_DIR"),
            "{e}"
        );
        assert!(!l.file("b1").exists());
        assert!(l.read("b1").is_err());
    }

    #[test]
    fn a_dir_writable_by_others_without_the_sticky_bit_is_refused() {
        let (_t, l) = dir();
        std::fs::create_dir(&l.dir).unwrap();
        std::fs::set_permissions(&l.dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err().to_string();
        assert!(
            e.contains("mode 0775: writable by other users without the sticky bit"),
            "{e}"
        );
        std::fs::set_permissions(&l.dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        l.try_acquire("b1", &owner(1), MIN).unwrap();
    }

    #[test]
    fn a_symlinked_dir_is_refused() {
        let (t, l) = dir();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, &l.dir).unwrap();
        let e = l.try_acquire("b1", &owner(1), MIN).unwrap_err().to_string();
        assert!(e.contains("is a symlink, not a directory"), "{e}");
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    }

    #[test]
    fn a_stuck_lock_is_a_timeout_not_a_hang() {
        let (_t, l) = dir();
        l.try_acquire("b1", &owner(1), MIN).unwrap();
        let f = File::open(l.file("b1")).unwrap();
        // SAFETY: valid fd.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        let other = File::open(l.file("b1")).unwrap();
        let t = std::time::Instant::now();
        assert!(!flock_within(&other, Duration::from_millis(300)).unwrap());
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(f);
        assert!(flock_within(&other, Duration::from_millis(300)).unwrap());
    }

    #[test]
    fn racing_threads_never_both_win() {
        let (_t, l) = dir();
        let winners: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let l = l.clone();
                    s.spawn(move || l.try_acquire("b", &owner(i), MIN).is_ok())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    }
}
