//! Running a board's `[flash]` step on the lab host, before the board is powered on.
//!
//! The rest of `flash` only reads text; this module does the I/O: it runs `rkdeveloptool`,
//! copies files into the TFTP directory, writes an image onto an SD-mux's block device.
//! Whatever it does goes to `run_dir/flash.log` the moment it happens (command lines,
//! every byte a tool prints, exit statuses), so a flash that hangs or kills the lab host
//! still leaves a log that says how far it got.
//!
//! Errors come back as [`StepError`]s and are classified into outcomes in `crate::error`:
//! lab trouble (no device, USB, a card that does not read back what was written) is
//! [`StepError::Infra`]; a board file that points at the wrong thing is
//! [`StepError::Blocked`] with a message starting `configuration:` (`StepError` has no
//! configuration variant, and this module does not add one).
//!
//! `cfg.timeout_s` bounds the whole flash, not each step: every tool invocation and copy
//! gets what is left of it. The operator sets one number per board for "how long may
//! flashing take" (a 600 s SPI flash, a 30 min SD card image), and hil never spends longer.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant as StdInstant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::rkdeveloptool::{self, classify_step, parse_ld, plan, LdError, RkError, Step};
use super::FlashClass;
use crate::config::flash::{FlashCfg, ImageWriteFlash, RkFlash, TftpFlash};
use crate::error::StepError;

/// What a successful flash did, for the report.
#[derive(Debug, Clone)]
pub struct FlashReport {
    /// The board file's `flash.backend` value (`tftp`, `rkdeveloptool`, `image-write`).
    pub backend: &'static str,
    /// `(name, path, sha256)` of every file flashed or copied. `path` is the source file
    /// hil was given (what a reader of the report can find again); `name` is the key the
    /// runner puts the hash under (`image_sha256.<name>`).
    pub images: Vec<(String, String, String)>,
    /// The same text as this flash appended to `run_dir/flash.log`.
    pub log: String,
    pub duration_s: f64,
}

/// The external programs the backends run. A struct (not a `PATH` lookup at each call) so
/// tests can point at a fake tool without touching the process environment, which tests
/// running in parallel threads share.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `rkdeveloptool`; the default is the bare name, looked up in `PATH`.
    pub rkdeveloptool: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            rkdeveloptool: PathBuf::from("rkdeveloptool"),
        }
    }
}

/// How an operator gets an RK3588 board into the mode `db` needs.
const MASKROM_HINT: &str = "put the board in Maskrom (hold the Maskrom key while powering on)";

/// Copy and read-back buffer: large enough that an SD card sees long sequential writes.
const BUF_SIZE: usize = 1 << 20;

/// Runs the board's `[flash]` step. Every tool invocation and copy is logged to
/// `run_dir/flash.log` as it happens (appended, so repeated flashes in one run stay).
pub async fn flash(
    cfg: &FlashCfg,
    run_dir: &Path,
    tools: &Tools,
) -> Result<FlashReport, StepError> {
    let started = StdInstant::now();
    let timeout_s = cfg.timeout_s();
    let deadline = deadline_after(timeout_s);
    let backend = cfg.backend().name();
    let log = FlashLog::open(run_dir)?;
    log.line(&format!(
        "flash: backend {backend}, flash.timeout_s = {timeout_s} s for the whole flash"
    ));
    let limit = Limit {
        deadline,
        timeout_s,
    };
    let result = match cfg {
        FlashCfg::Tftp(c) => tftp(c, &log, limit).await,
        FlashCfg::Rkdeveloptool(c) => rk_flash(c, tools, &log, limit).await,
        FlashCfg::ImageWrite(c) => image_write(c, &log, limit).await,
        FlashCfg::FlashWriter(c) => super::scif::flash_writer(c, &log, limit).await,
    };
    match result {
        Ok(images) => {
            log.line(&format!(
                "flash: done in {:.1} s",
                started.elapsed().as_secs_f64()
            ));
            let text = log.finish()?;
            Ok(FlashReport {
                backend,
                images,
                log: text,
                duration_s: started.elapsed().as_secs_f64(),
            })
        }
        Err(e) => {
            // The failure itself goes into the log too: flash.log alone must tell the story.
            log.line(&format!("flash: failed: {e}"));
            Err(e)
        }
    }
}

/// `now + timeout_s`, saturating: board validation bounds the value, but an absurd limit
/// from any other caller must mean "no practical limit", not an overflow panic.
fn deadline_after(timeout_s: u64) -> Instant {
    crate::config::limits::deadline_after(std::time::Duration::from_secs(timeout_s))
}

pub(super) type Image = (String, String, String);

/// The flash's time budget, shared by all its steps.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limit {
    pub(super) deadline: Instant,
    pub(super) timeout_s: u64,
}

impl Limit {
    pub(super) fn exceeded(&self, what: &str) -> StepError {
        StepError::Infra(format!(
            "{what} did not finish within flash.timeout_s = {} s (the limit covers the whole flash)",
            self.timeout_s
        ))
    }
}

pub(super) fn configuration(msg: String) -> StepError {
    StepError::Blocked(format!("configuration: {msg}"))
}

// ---- flash.log ------------------------------------------------------------------------

/// `run_dir/flash.log` and an in-memory copy for [`FlashReport::log`]. Cloned into
/// blocking copy threads, hence the `Arc<Mutex>`; the lock is never held across an await.
#[derive(Clone)]
pub(super) struct FlashLog(Arc<Mutex<LogInner>>);

struct LogInner {
    path: PathBuf,
    /// Unbuffered on purpose: each write is a `write(2)`, so the file is current if hil
    /// is killed mid-flash.
    file: File,
    text: String,
    started: StdInstant,
    /// The first failed write. Logging trouble must not abort a flash half-way (the board
    /// would be left half-written), so it is reported when the flash ends.
    error: Option<std::io::Error>,
}

impl FlashLog {
    fn open(run_dir: &Path) -> Result<FlashLog, StepError> {
        let path = run_dir.join("flash.log");
        let file = std::fs::create_dir_all(run_dir)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(&path))
            .map_err(|e| StepError::Infra(format!("cannot open {}: {e}", path.display())))?;
        let log = FlashLog(Arc::new(Mutex::new(LogInner {
            path,
            file,
            text: String::new(),
            started: StdInstant::now(),
            error: None,
        })));
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        log.line(&format!("flash: started {now}"));
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while logging leaves nothing half-updated that matters: keep logging.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Bytes exactly as a tool printed them (escapes and CRs included).
    pub(super) fn raw(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        if inner.error.is_none() {
            if let Err(e) = inner.file.write_all(bytes) {
                inner.error = Some(e);
            }
        }
        inner.text.push_str(&String::from_utf8_lossy(bytes));
    }

    /// One line of hil's own, stamped with the time since the flash started.
    pub(super) fn line(&self, msg: &str) {
        let elapsed = self.lock().started.elapsed().as_secs_f64();
        self.raw(format!("[+{elapsed:8.3}s] {msg}\n").as_bytes());
    }

    fn finish(self) -> Result<String, StepError> {
        let mut inner = self.lock();
        match inner.error.take() {
            Some(e) => Err(StepError::Infra(format!(
                "writing {} failed: {e}",
                inner.path.display()
            ))),
            None => Ok(std::mem::take(&mut inner.text)),
        }
    }
}

// ---- progress -------------------------------------------------------------------------

/// Throttles progress to one report per 10 % step, so a long write does not flood the
/// terminal or CI log: the first figure seen, then the first one at or past each multiple
/// of ten.
#[derive(Debug, Default)]
struct ProgressEcho {
    next: u32,
}

impl ProgressEcho {
    fn update(&mut self, percent: u32) -> Option<u32> {
        if percent < self.next {
            return None;
        }
        self.next = (percent / 10 + 1) * 10;
        Some(percent)
    }
}

/// Finds `Write LBA from file (N%)` in a tool's output as it streams in. A chunk boundary
/// can cut the text in two, so a short tail of what came before is kept and scanned again
/// with the next chunk (seeing a figure twice is harmless: [`ProgressEcho`] only goes up).
#[derive(Debug, Default)]
struct StreamProgress {
    window: Vec<u8>,
    echo: ProgressEcho,
}

/// Longer than any progress text (`Write LBA from file (100%)` plus colour escapes).
const PROGRESS_TAIL: usize = 64;

impl StreamProgress {
    fn feed(&mut self, chunk: &[u8]) -> Option<u32> {
        self.window.extend_from_slice(chunk);
        let last = rkdeveloptool::last_write_progress(&String::from_utf8_lossy(&self.window));
        let cut = self.window.len().saturating_sub(PROGRESS_TAIL);
        self.window.drain(..cut);
        last.and_then(|p| self.echo.update(p))
    }
}

fn show_progress(log: &FlashLog, percent: u32) {
    eprintln!("hil: flash: {percent}%");
    log.line(&format!("progress {percent}%"));
}

fn percent_of(done: u64, total: u64) -> u32 {
    if total == 0 {
        return 100;
    }
    let p = u128::from(done) * 100 / u128::from(total);
    u32::try_from(p.min(100)).unwrap_or(100)
}

// ---- blocking file work ---------------------------------------------------------------

/// Runs file I/O on a blocking thread within the flash's time budget. A thread stuck in
/// the kernel (a USB card reader gone bad) cannot be killed, so on timeout hil stops
/// waiting, sets `cancel` so the thread quits at its next buffer, and reports the timeout.
pub(super) async fn blocking<T, F>(limit: Limit, what: &str, f: F) -> Result<T, StepError>
where
    T: Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, StepError> + Send + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let thread_cancel = Arc::clone(&cancel);
    let task = tokio::task::spawn_blocking(move || f(&thread_cancel));
    match tokio::time::timeout_at(limit.deadline, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(StepError::Harness(format!("{what}: {join}"))),
        Err(_) => {
            cancel.store(true, Ordering::Relaxed);
            Err(limit.exceeded(what))
        }
    }
}

pub(super) fn cancelled() -> StepError {
    // Only seen by `blocking`, which has already returned the timeout error by then.
    StepError::Infra("cancelled: flash.timeout_s passed".into())
}

/// Copies `src` to `dst` through a 1 MiB buffer, hashing what is copied, reporting each
/// buffer's progress to `on_progress` (bytes so far). Returns the bytes copied and their
/// SHA-256.
fn copy_hashing(
    src: &mut impl Read,
    dst: &mut impl Write,
    cancel: &AtomicBool,
    mut on_progress: impl FnMut(u64),
) -> Result<(u64, String), CopyError> {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut hasher = Sha256::new();
    let mut copied = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CopyError::Cancelled);
        }
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let chunk = buf.get(..n).ok_or_else(|| {
            CopyError::Read(std::io::Error::other(
                "read reported more bytes than its buffer",
            ))
        })?;
        dst.write_all(chunk).map_err(CopyError::Write)?;
        hasher.update(chunk);
        copied += n as u64;
        on_progress(copied);
    }
    Ok((copied, hex::encode(hasher.finalize())))
}

/// Which side of a copy failed, so the message names the right file.
#[derive(Debug)]
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
    Cancelled,
}

// ---- tftp ---------------------------------------------------------------------------

/// Copies `flash.files` into `flash.tftp_dir`, where U-Boot fetches them. All sources are
/// checked before anything is copied, so a missing file does not leave the directory with
/// a mix of new and old files.
async fn tftp(cfg: &TftpFlash, log: &FlashLog, limit: Limit) -> Result<Vec<Image>, StepError> {
    let dir = PathBuf::from(&cfg.tftp_dir);
    let mut jobs = Vec::new();
    for (name, src) in &cfg.files {
        let key = format!("flash.files.{name}");
        let rel = tftp_name(name).ok_or_else(|| {
            configuration(format!(
                "{key}: \"{name}\" is not a path inside flash.tftp_dir; expected a relative name such as \"Image\" or \"board/Image\" without \"..\""
            ))
        })?;
        match std::fs::metadata(src) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(configuration(format!("{key}: {src} is not a regular file"))),
            Err(e) => {
                return Err(StepError::Infra(format!(
                    "{key}: source file {src} cannot be read: {e}"
                )))
            }
        }
        jobs.push((name.clone(), key, PathBuf::from(src), dir.join(rel)));
    }
    if jobs.is_empty() {
        log.line("tftp: flash.files is empty, nothing to copy");
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        StepError::Infra(format!(
            "flash.tftp_dir: cannot create {}: {e}",
            dir.display()
        ))
    })?;
    let mut images = Vec::new();
    for (name, key, src, dst) in jobs {
        log.line(&format!(
            "tftp: copy {} -> {}",
            src.display(),
            dst.display()
        ));
        let what = format!("copying {key} to {}", dst.display());
        let (thread_src, thread_dst, thread_key) = (src.clone(), dst.clone(), key.clone());
        let (bytes, sha) = blocking(limit, &what, move |cancel| {
            copy_atomic(&thread_src, &thread_dst, cancel).map_err(|e| {
                copy_failure((&thread_key, &thread_src), (&thread_key, &thread_dst), e)
            })
        })
        .await?;
        log.line(&format!("tftp: {name}: {bytes} bytes, sha256 {sha}"));
        images.push((name, src.display().to_string(), sha));
    }
    Ok(images)
}

/// `name` as a path below the TFTP directory: only normal components, so a board file
/// cannot write outside it (`../x`, `/etc/x`).
fn tftp_name(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let mut parts = path.components().peekable();
    parts.peek()?;
    parts
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| path.to_path_buf())
}

/// A failed copy, naming the board-file key of the side that failed.
fn copy_failure(
    (src_key, src): (&str, &Path),
    (dst_key, dst): (&str, &Path),
    e: CopyError,
) -> StepError {
    match e {
        CopyError::Read(e) => {
            StepError::Infra(format!("{src_key}: reading {} failed: {e}", src.display()))
        }
        CopyError::Write(e) => {
            StepError::Infra(format!("{dst_key}: writing {} failed: {e}", dst.display()))
        }
        CopyError::Cancelled => cancelled(),
    }
}

/// Per-process counter so two boards copying the same name at once get distinct temps.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Copies into a temporary file beside `dst` and renames it over `dst`: a TFTP client
/// fetching meanwhile (another board, a retry) sees the old file or the new one, never a
/// half-written one. The rename is within one directory, so it is atomic.
fn copy_atomic(src: &Path, dst: &Path, cancel: &AtomicBool) -> Result<(u64, String), CopyError> {
    let parent = dst.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(CopyError::Write)?;
    let base = dst
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = parent.join(format!(".{base}.hil-tmp-{}-{seq}", std::process::id()));
    let result = (|| {
        let mut input = File::open(src).map_err(CopyError::Read)?;
        let mut out = File::create(&tmp).map_err(CopyError::Write)?;
        let done = copy_hashing(&mut input, &mut out, cancel, |_| {})?;
        // Data on disk before the name points at it, or a crash could leave an empty file
        // under the final name.
        out.sync_all().map_err(CopyError::Write)?;
        std::fs::rename(&tmp, dst).map_err(CopyError::Write)?;
        Ok(done)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---- image-write ----------------------------------------------------------------------

/// Writes `flash.image` onto `flash.target` (an SD-mux's card as a block device; a regular
/// file in the sim and tests), then reads the written length back and compares hashes.
async fn image_write(
    cfg: &ImageWriteFlash,
    log: &FlashLog,
    limit: Limit,
) -> Result<Vec<Image>, StepError> {
    let image = PathBuf::from(&cfg.image);
    let target = PathBuf::from(&cfg.target);
    match std::fs::metadata(&image) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(configuration(format!(
                "flash.image: {} is not a regular file",
                image.display()
            )))
        }
        Err(e) => {
            return Err(StepError::Infra(format!(
                "flash.image: {} cannot be read: {e}",
                image.display()
            )))
        }
    }
    let is_block = match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(configuration(format!(
                "flash.target: {} is a directory; expected a block device (the SD-mux's card)",
                target.display()
            )))
        }
        Ok(m) => std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(StepError::Infra(format!(
                "flash.target: {} does not exist; check that the SD-mux is connected and switched to the lab host",
                target.display()
            )))
        }
        Err(e) => {
            return Err(StepError::Infra(format!(
                "flash.target: {}: {e}",
                target.display()
            )))
        }
    };
    log.line(&format!(
        "image-write: {} -> {}{}",
        image.display(),
        target.display(),
        if is_block { " (block device)" } else { "" }
    ));

    let (thread_image, thread_target, thread_log) = (image.clone(), target.clone(), log.clone());
    let what = format!("image-write to {}", target.display());
    let (len, sha) = blocking(limit, &what, move |cancel| {
        write_image(&thread_image, &thread_target, is_block, cancel, &thread_log)
    })
    .await?;
    log.line(&format!(
        "image-write: wrote {len} bytes, sha256 {sha}; reading back"
    ));

    let (thread_target, expected) = (target.clone(), sha.clone());
    let what = format!("image-write read-back of {}", target.display());
    blocking(limit, &what, move |cancel| {
        verify_target(&thread_target, len, &expected, cancel)
    })
    .await?;
    log.line("image-write: read-back matches");
    Ok(vec![("image".into(), image.display().to_string(), sha)])
}

/// The write half of image-write. Returns the bytes written and the image's SHA-256.
fn write_image(
    image: &Path,
    target: &Path,
    is_block: bool,
    cancel: &AtomicBool,
    log: &FlashLog,
) -> Result<(u64, String), StepError> {
    use std::os::unix::fs::OpenOptionsExt;

    let mut src = File::open(image)
        .map_err(|e| StepError::Infra(format!("flash.image: {}: {e}", image.display())))?;
    let total = src.metadata().map(|m| m.len()).unwrap_or(0);
    let mut opts = OpenOptions::new();
    // No create, no truncate: a target that is missing is lab trouble, and a regular file
    // stands in for a device, whose bytes past the image stay as they were.
    opts.write(true);
    if is_block {
        // O_EXCL on a block device fails with EBUSY while it is mounted: hil must not
        // write under a filesystem the lab host is using.
        opts.custom_flags(libc::O_EXCL);
    }
    let mut dst = opts.open(target).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EBUSY) {
            " (in use: is it mounted on the lab host?)"
        } else {
            ""
        };
        StepError::Infra(format!(
            "flash.target: cannot open {} for writing: {e}{hint}",
            target.display()
        ))
    })?;
    let mut echo = ProgressEcho::default();
    let done = copy_hashing(&mut src, &mut dst, cancel, |bytes| {
        if let Some(p) = echo.update(percent_of(bytes, total)) {
            show_progress(log, p);
        }
    })
    .map_err(|e| copy_failure(("flash.image", image), ("flash.target", target), e))?;
    dst.sync_all().map_err(|e| {
        StepError::Infra(format!(
            "flash.target: fsync of {} failed: {e}",
            target.display()
        ))
    })?;
    drop_cached_pages(&dst);
    Ok(done)
}

/// After `fsync`, asks the kernel to forget the target's cached pages, so the read-back
/// comes from the card rather than from memory (which would verify nothing). Best effort:
/// a kernel that ignores the advice makes the check weaker, not wrong.
fn drop_cached_pages(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is open for the
    // duration of the call because `file` is borrowed.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// The read-back half of image-write: the first `len` bytes of `target` must hash to
/// `expected`.
fn verify_target(
    target: &Path,
    len: u64,
    expected: &str,
    cancel: &AtomicBool,
) -> Result<(), StepError> {
    let file = File::open(target).map_err(|e| {
        StepError::Infra(format!(
            "image-write verification failed: cannot reopen {}: {e}",
            target.display()
        ))
    })?;
    let (read, got) = copy_hashing(&mut file.take(len), &mut std::io::sink(), cancel, |_| {})
        .map_err(|e| match e {
            CopyError::Cancelled => cancelled(),
            CopyError::Read(e) | CopyError::Write(e) => StepError::Infra(format!(
                "image-write verification failed: reading back {}: {e}",
                target.display()
            )),
        })?;
    if read != len {
        return Err(StepError::Infra(format!(
            "image-write verification failed: {} holds only {read} of the {len} bytes written",
            target.display()
        )));
    }
    if got != expected {
        return Err(StepError::Infra(format!(
            "image-write verification failed: {} reads back sha256 {got}, the image is {expected}; the card or SD-mux corrupts data",
            target.display()
        )));
    }
    Ok(())
}

// ---- rkdeveloptool ----------------------------------------------------------------------

/// Flashes over USB: `ld` to find the one device and its mode, then the plan for that
/// mode (`db`, `wl`, `rd` in Maskrom; `wl`, `rd` in Loader mode), each step classified
/// from its output by `flash::rkdeveloptool`.
async fn rk_flash(
    cfg: &RkFlash,
    tools: &Tools,
    log: &FlashLog,
    limit: Limit,
) -> Result<Vec<Image>, StepError> {
    let loader = cfg.loader.as_str();
    let image = cfg.image.as_str();
    let sector_cfg = cfg.sector;
    // The tool parses the sector into 32 bits (strtoul, then (u32)); a larger value would
    // silently wrap and write somewhere else.
    let sector = u32::try_from(sector_cfg).map_err(|_| {
        configuration(format!(
            "flash.sector = {sector_cfg} is beyond rkdeveloptool's 32-bit sector numbers (at most {})",
            u32::MAX
        ))
    })?;

    // Hashed before the device is touched: a missing file stops here, and the hashes name
    // exactly what was written.
    let loader_sha = hash_input(limit, "flash.loader", loader).await?;
    let image_sha = hash_input(limit, "flash.image", image).await?;
    log.line(&format!(
        "rkdeveloptool: loader {loader} sha256 {loader_sha}"
    ));
    log.line(&format!("rkdeveloptool: image {image} sha256 {image_sha}"));

    let rk = Rk {
        program: &tools.rkdeveloptool,
        log,
        limit,
    };
    let ld = rk.run(&Step::ListDevices).await?;
    // `ld` is judged by its text alone: it exits 1 when there is no device, the same as
    // when it fails.
    let devices = parse_ld(&ld.output).map_err(|e| match e {
        LdError::NoDevice { line } => StepError::Infra(format!(
            "no rockusb device: {MASKROM_HINT}; `rkdeveloptool ld` printed '{line}' (check also the USB cable to the board's OTG port)"
        )),
        other => StepError::Infra(format!(
            "{other} (exit status {}; output in {})",
            exit_text(ld.exit),
            log.path().display()
        )),
    })?;
    let device = match devices.as_slice() {
        [one] => one,
        many => {
            let names: Vec<String> = many.iter().map(describe_device).collect();
            return Err(StepError::Infra(format!(
                "more than one rockusb device on this lab host: {}; rkdeveloptool drives only one, unplug or power off the others",
                names.join(", ")
            )));
        }
    };
    log.line(&format!("rkdeveloptool: using {}", describe_device(device)));

    let steps = plan(Path::new(loader), Path::new(image), sector, &device.mode)
        .map_err(|e| StepError::Infra(format!("{e}; {MASKROM_HINT}")))?;
    for step in &steps {
        let run = rk.run(step).await?;
        match classify_step(step, &run.output, run.exit) {
            Ok(ok) => log.line(&format!("rkdeveloptool {}: ok ({ok:?})", step_name(step))),
            Err(e) => return Err(rk_step_error(step, e, &log.path())),
        }
    }
    Ok(vec![
        ("loader".into(), loader.to_string(), loader_sha),
        ("image".into(), image.to_string(), image_sha),
    ])
}

async fn hash_input(limit: Limit, key: &str, path: &str) -> Result<String, StepError> {
    let p = PathBuf::from(path);
    let what = format!("hashing {key} ({path})");
    let key = key.to_string();
    // sha256_file has no cancel point; on timeout its thread finishes reading and its
    // result is dropped.
    blocking(limit, &what, move |_| {
        crate::hash::sha256_file(&p)
            .map_err(|e| StepError::Infra(format!("{key}: {} cannot be read: {e}", p.display())))
    })
    .await
}

fn describe_device(d: &rkdeveloptool::RockusbDevice) -> String {
    format!(
        "DevNo={} {:04x}:{:04x}{} at LocationID {:x} in {} mode",
        d.devno,
        d.vid,
        d.pid,
        d.soc().map(|s| format!(" ({s})")).unwrap_or_default(),
        d.location_id,
        d.mode
    )
}

fn step_name(step: &Step) -> String {
    step.args()
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn exit_text(exit: Option<i32>) -> String {
    exit.map_or_else(|| "none (killed by a signal)".into(), |c| c.to_string())
}

/// A failed step as a [`StepError`], by what the tool's message says is at fault.
fn rk_step_error(step: &Step, err: RkError, log_path: &Path) -> StepError {
    let msg = format!(
        "rkdeveloptool {}: {err} (output in {})",
        step_name(step),
        log_path.display()
    );
    match err.class() {
        FlashClass::Infrastructure => StepError::Infra(msg),
        FlashClass::Configuration => configuration(msg),
        FlashClass::WrongMode => StepError::Infra(format!("{msg}; {MASKROM_HINT}")),
        // An error classed as success is a bug in the classifier, not in the lab.
        FlashClass::Ok => StepError::Harness(format!("{msg} (error classified as ok)")),
    }
}

/// What one invocation printed (stdout and stderr merged in arrival order) and its exit
/// status (`None` if a signal ended it).
struct ToolRun {
    output: String,
    exit: Option<i32>,
}

struct Rk<'a> {
    program: &'a Path,
    log: &'a FlashLog,
    limit: Limit,
}

impl Rk<'_> {
    async fn run(&self, step: &Step) -> Result<ToolRun, StepError> {
        let args = step.args();
        let name = step_name(step);
        self.log
            .line(&format!("$ {}", command_line(self.program, &args)));
        let mut child = tokio::process::Command::new(self.program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // hil interrupted (Ctrl-C drops the board task): the tool must not keep
            // writing to a board nobody is watching.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                StepError::Infra(format!(
                    "cannot run {}: {e}; install rkdeveloptool on the lab host",
                    self.program.display()
                ))
            })?;

        // One reader task per pipe feeding one channel: output is logged in the order it
        // arrives, and neither pipe can fill up and stall the tool while the other is read.
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let readers = [
            spawn_reader(child.stdout.take(), tx.clone()),
            spawn_reader(child.stderr.take(), tx),
        ];
        let mut raw: Vec<u8> = Vec::new();
        let mut progress = StreamProgress::default();
        let collect = async {
            while let Some(chunk) = rx.recv().await {
                self.log.raw(&chunk);
                if let Some(p) = progress.feed(&chunk) {
                    eprintln!("hil: flash: {p}%");
                }
                raw.extend_from_slice(&chunk);
            }
            child.wait().await
        };
        let waited = tokio::time::timeout_at(self.limit.deadline, collect).await;
        if raw.last().is_some_and(|&b| b != b'\n') {
            // Keep hil's next stamped line at the start of a line of its own.
            self.log.raw(b"\n");
        }
        let output = String::from_utf8_lossy(&raw).into_owned();
        match waited {
            Ok(Ok(status)) => {
                self.log
                    .line(&format!("exit status {}", exit_text(status.code())));
                Ok(ToolRun {
                    output,
                    exit: status.code(),
                })
            }
            Ok(Err(e)) => Err(StepError::Infra(format!(
                "rkdeveloptool {name}: waiting for it failed: {e}"
            ))),
            Err(_) => {
                for r in &readers {
                    r.abort();
                }
                // A stalled USB transfer: kill the tool so it does not outlive the step.
                let _ = child.start_kill();
                let _ = child.wait().await;
                self.log.line("killed: flash.timeout_s passed");
                let last = rkdeveloptool::last_write_progress(&output)
                    .map(|p| format!(" (last progress {p}%)"))
                    .unwrap_or_default();
                Err(self.limit.exceeded(&format!("rkdeveloptool {name}{last}")))
            }
        }
    }
}

fn spawn_reader<R>(
    pipe: Option<R>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 8192];
        // A read error ends this pipe only; the exit status still says how the tool ended.
        while let Ok(n) = pipe.read(&mut buf).await {
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            if tx.send(chunk.to_vec()).is_err() {
                break;
            }
        }
    })
}

/// The command as a shell would take it, for the log.
fn command_line(program: &Path, args: &[OsString]) -> String {
    let words: Vec<String> = std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    shell_words::join(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(scenario: &str) -> Tools {
        Tools {
            rkdeveloptool: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/fake-tools")
                .join(format!("rkdeveloptool-{scenario}")),
        }
    }

    fn tftp_cfg(dir: &Path, files: &[(&str, &Path)]) -> FlashCfg {
        FlashCfg::Tftp(TftpFlash {
            tftp_dir: s(dir),
            files: files.iter().map(|(n, p)| (n.to_string(), s(p))).collect(),
            timeout_s: 30,
        })
    }

    fn image_write_cfg(image: &Path, target: &Path) -> FlashCfg {
        FlashCfg::ImageWrite(ImageWriteFlash {
            image: s(image),
            target: s(target),
            timeout_s: 30,
        })
    }

    fn s(p: &Path) -> String {
        p.display().to_string()
    }

    /// Bytes that differ from block to block, so a misplaced buffer shows in the hash.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    /// A temp dir with a loader (starting with the Rockchip "BOOT" tag), an image and the
    /// rkdeveloptool config pointing at them.
    struct RkBench {
        dir: tempfile::TempDir,
        rk: RkFlash,
    }

    fn rk_bench() -> RkBench {
        let dir = tempfile::tempdir().unwrap();
        let loader = dir.path().join("rk3588_spl_loader_v1.15.113.bin");
        let image = dir.path().join("rock-5b-spi-image.img");
        let mut loader_bytes = b"BOOT".to_vec();
        loader_bytes.extend(pattern(1000));
        std::fs::write(&loader, loader_bytes).unwrap();
        std::fs::write(&image, pattern(300_000)).unwrap();
        let rk = RkFlash {
            loader: s(&loader),
            image: s(&image),
            sector: 0,
            timeout_s: 30,
        };
        RkBench { dir, rk }
    }

    impl RkBench {
        fn cfg(&self) -> FlashCfg {
            FlashCfg::Rkdeveloptool(self.rk.clone())
        }
        fn run_dir(&self) -> PathBuf {
            self.dir.path().join("run")
        }
        fn log(&self) -> String {
            std::fs::read_to_string(self.run_dir().join("flash.log")).unwrap_or_default()
        }
        /// The rkdeveloptool subcommands flash.log shows, in order.
        fn commands(&self) -> Vec<String> {
            self.log()
                .lines()
                .filter_map(|l| l.split_once("] $ ").map(|(_, cmd)| cmd.to_string()))
                .filter_map(|cmd| shell_words::split(&cmd).ok()?.get(1).cloned())
                .collect()
        }
    }

    fn infra(r: Result<FlashReport, StepError>) -> String {
        match r {
            Err(StepError::Infra(m)) => m,
            other => panic!("expected Infra, got {other:?}"),
        }
    }

    // ---- rkdeveloptool -------------------------------------------------------------------

    #[tokio::test]
    async fn rk_maskrom_runs_db_wl_rd_in_order_and_hashes_loader_and_image() {
        let b = rk_bench();
        let report = flash(&b.cfg(), &b.run_dir(), &fake("ok")).await.unwrap();
        assert_eq!(b.commands(), ["ld", "db", "wl", "rd"]);
        assert_eq!(report.backend, "rkdeveloptool");
        let (loader, image) = (b.rk.loader.clone(), b.rk.image.clone());
        let sha = |p: &str| crate::hash::sha256_file(Path::new(p)).unwrap();
        assert_eq!(
            report.images,
            [
                ("loader".to_string(), loader.clone(), sha(&loader)),
                ("image".to_string(), image.clone(), sha(&image)),
            ]
        );
        // wl got the sector and the image; the tool's own output and statuses are logged.
        let log = b.log();
        assert!(log.contains(&format!(" wl 0 {image}\n")), "{log}");
        assert!(log.contains("Write LBA from file (100%)"), "{log}");
        assert!(log.contains("Reset Device OK."), "{log}");
        assert_eq!(log.matches("exit status 0").count(), 4, "{log}");
        // The report carries the same text as the file.
        assert_eq!(report.log, log);
        assert!(report.duration_s >= 0.0);
    }

    #[tokio::test]
    async fn rk_no_device_is_infra_with_the_maskrom_hint() {
        let b = rk_bench();
        let m = infra(flash(&b.cfg(), &b.run_dir(), &fake("no-device")).await);
        assert!(
            m.starts_with(
                "no rockusb device: put the board in Maskrom (hold the Maskrom key while powering on)"
            ),
            "{m}"
        );
        assert!(m.contains("not found any devices!"), "{m}");
        assert_eq!(b.commands(), ["ld"]);
        // The fake exits 1 like the real tool: recorded, yet ld is judged by its text.
        assert!(b.log().contains("exit status 1"), "{}", b.log());
        assert!(b.log().contains("flash: failed: no rockusb device"));
    }

    #[tokio::test]
    async fn rk_wl_failure_is_infra_with_the_percentage() {
        let b = rk_bench();
        let m = infra(flash(&b.cfg(), &b.run_dir(), &fake("wl-fail")).await);
        assert!(m.starts_with("rkdeveloptool wl: "), "{m}");
        assert!(m.contains("failed at 25%"), "{m}");
        assert!(m.contains("Write LBA failed!"), "{m}");
        assert!(m.contains("flash.log"), "{m}");
        // No reset after a failed write: the board stays in the mode for a retry.
        assert_eq!(b.commands(), ["ld", "db", "wl"]);
    }

    #[tokio::test]
    async fn rk_loader_mode_skips_db() {
        let b = rk_bench();
        let report = flash(&b.cfg(), &b.run_dir(), &fake("loader-mode"))
            .await
            .unwrap();
        assert_eq!(b.commands(), ["ld", "wl", "rd"]);
        assert!(report.log.contains("in Loader mode"), "{}", report.log);
        assert_eq!(report.images.len(), 2);
    }

    #[tokio::test]
    async fn rk_two_devices_are_named() {
        let b = rk_bench();
        let m = infra(flash(&b.cfg(), &b.run_dir(), &fake("two-devices")).await);
        assert!(m.starts_with("more than one rockusb device"), "{m}");
        assert!(m.contains("LocationID 303 in Maskrom mode"), "{m}");
        assert!(m.contains("LocationID 304 in Loader mode"), "{m}");
        assert!(m.contains("2207:350b (rk3588)"), "{m}");
        assert_eq!(b.commands(), ["ld"]);
    }

    #[tokio::test]
    async fn rk_bad_loader_is_a_configuration_problem() {
        let b = rk_bench();
        // Exists (so it hashes) but lacks the loader tag: the tool refuses it.
        std::fs::write(&b.rk.loader, b"not a loader").unwrap();
        match flash(&b.cfg(), &b.run_dir(), &fake("ok")).await {
            Err(StepError::Blocked(m)) => {
                assert!(
                    m.starts_with("configuration: rkdeveloptool db: loader file"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.commands(), ["ld", "db"]);
    }

    #[tokio::test]
    async fn rk_missing_loader_names_the_key_before_touching_usb() {
        let b = rk_bench();
        let loader = b.dir.path().join("gone.bin");
        let mut c = b.rk.clone();
        c.loader = s(&loader);
        let m = infra(flash(&FlashCfg::Rkdeveloptool(c), &b.run_dir(), &fake("ok")).await);
        assert!(m.starts_with("flash.loader: "), "{m}");
        assert!(m.contains(&s(&loader)), "{m}");
        assert_eq!(b.commands(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn rk_missing_tool_and_bad_sector() {
        let b = rk_bench();
        let tools = Tools {
            rkdeveloptool: b.dir.path().join("no-such-rkdeveloptool"),
        };
        let m = infra(flash(&b.cfg(), &b.run_dir(), &tools).await);
        assert!(m.starts_with("cannot run "), "{m}");
        assert!(m.contains("no-such-rkdeveloptool"), "{m}");

        let mut c = b.rk.clone();
        c.sector = u64::from(u32::MAX) + 1;
        match flash(&FlashCfg::Rkdeveloptool(c), &b.run_dir(), &fake("ok")).await {
            Err(StepError::Blocked(m)) => {
                assert!(
                    m.starts_with("configuration: flash.sector = 4294967296"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Tools::default().rkdeveloptool, Path::new("rkdeveloptool"));
    }

    #[tokio::test]
    async fn rk_stalled_write_is_killed_at_the_flash_timeout() {
        let b = rk_bench();
        let mut c = b.rk.clone();
        c.timeout_s = 1;
        let t = StdInstant::now();
        let m = infra(flash(&FlashCfg::Rkdeveloptool(c), &b.run_dir(), &fake("hang")).await);
        assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
        assert!(
            m.starts_with(
                "rkdeveloptool wl (last progress 25%) did not finish within flash.timeout_s = 1 s"
            ),
            "{m}"
        );
        assert!(b.log().contains("killed: flash.timeout_s passed"));
    }

    // ---- progress -------------------------------------------------------------------------

    #[test]
    fn progress_is_echoed_at_most_every_ten_percent() {
        let mut e = ProgressEcho::default();
        let shown: Vec<u32> = [0, 3, 9, 10, 11, 19, 20, 55, 56, 60, 99, 100, 100]
            .into_iter()
            .filter_map(|p| e.update(p))
            .collect();
        assert_eq!(shown, [0, 10, 20, 55, 60, 99, 100]);
        assert_eq!(percent_of(0, 0), 100);
        assert_eq!(percent_of(1, 3), 33);
        assert_eq!(percent_of(u64::MAX, u64::MAX), 100);
        assert!(deadline_after(u64::MAX) > Instant::now());
    }

    #[test]
    fn stream_progress_survives_split_chunks_and_redraws() {
        // main.cpp's redraw (cursor up, erase line) cut mid-text by the pipe.
        let mut sp = StreamProgress::default();
        let chunks: [&[u8]; 5] = [
            b"Write LBA from file (4%)\r\n\x1b[1A\x1b[2KWrite LBA fr",
            b"om file (12%)\r\n\x1b[1A\x1b[2KWrite LBA from file (13%)\r\n",
            b"\x1b[1A\x1b[2KWrite LBA from file (2",
            b"9%)\r\n",
            b"\x1b[1A\x1b[2KWrite LBA from file (100%)\r\n",
        ];
        let shown: Vec<u32> = chunks.iter().filter_map(|c| sp.feed(c)).collect();
        // One figure per chunk at most: the latest, which is the one a reader wants.
        assert_eq!(shown, [4, 13, 29, 100]);
        assert!(sp.window.len() <= PROGRESS_TAIL);
    }

    // ---- image-write ----------------------------------------------------------------------

    #[tokio::test]
    async fn image_write_to_a_file_target_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("host.img");
        let target = dir.path().join("sdcard");
        // Not a multiple of the buffer, so the last partial buffer is exercised.
        let data = pattern(2 * BUF_SIZE + 12_345);
        std::fs::write(&image, &data).unwrap();
        std::fs::write(&target, vec![0xAAu8; 3 * BUF_SIZE]).unwrap();
        let c = image_write_cfg(&image, &target);
        let report = flash(&c, &dir.path().join("run"), &Tools::default())
            .await
            .unwrap();
        let written = std::fs::read(&target).unwrap();
        assert_eq!(&written[..data.len()], &data[..]);
        // Like a device, the target is not truncated: bytes past the image stay.
        assert_eq!(written.len(), 3 * BUF_SIZE);
        assert!(written[data.len()..].iter().all(|&b| b == 0xAA));
        assert_eq!(
            report.images,
            [(
                "image".to_string(),
                s(&image),
                crate::hash::sha256_file(&image).unwrap()
            )]
        );
        assert!(report.log.contains("read-back matches"), "{}", report.log);
        assert!(report.log.contains("progress 100%"), "{}", report.log);
    }

    #[tokio::test]
    async fn image_write_missing_target_is_infra_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("host.img");
        std::fs::write(&image, b"x").unwrap();
        let target = dir.path().join("sdX");
        let c = image_write_cfg(&image, &target);
        let m = infra(flash(&c, &dir.path().join("run"), &Tools::default()).await);
        assert!(m.starts_with("flash.target: "), "{m}");
        assert!(m.contains(&s(&target)), "{m}");
        assert!(!target.exists(), "a missing target must not be created");
    }

    #[test]
    fn read_back_mismatch_and_short_target_fail_verification() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sdcard");
        std::fs::write(&target, b"written, then corrupted").unwrap();
        let never = AtomicBool::new(false);
        let expected = hex::encode(Sha256::digest(b"written, as intended!!!"));
        let e = verify_target(&target, 23, &expected, &never).unwrap_err();
        assert!(
            matches!(&e, StepError::Infra(m) if m.starts_with("image-write verification failed") && m.contains("corrupts")),
            "{e:?}"
        );
        let e = verify_target(&target, 1000, &expected, &never).unwrap_err();
        assert!(
            matches!(&e, StepError::Infra(m) if m.contains("only 23 of the 1000 bytes")),
            "{e:?}"
        );
        let good = hex::encode(Sha256::digest(b"written"));
        verify_target(&target, 7, &good, &never).unwrap();
    }

    // ---- tftp -----------------------------------------------------------------------------

    #[tokio::test]
    async fn tftp_copies_and_hashes_into_a_new_dir() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("Image");
        let initrd = dir.path().join("initrd.gz");
        std::fs::write(&kernel, pattern(BUF_SIZE + 1)).unwrap();
        std::fs::write(&initrd, b"initrd").unwrap();
        let tftp = dir.path().join("srv/tftp");
        // An older kernel already served there is replaced.
        std::fs::create_dir_all(tftp.join("rk3588-evb")).unwrap();
        std::fs::write(tftp.join("rk3588-evb/Image"), b"old kernel").unwrap();
        let c = tftp_cfg(
            &tftp,
            &[("rk3588-evb/Image", &kernel), ("initrd.gz", &initrd)],
        );
        let report = flash(&c, &dir.path().join("run"), &Tools::default())
            .await
            .unwrap();
        assert_eq!(report.backend, "tftp");
        let sha = |p: &Path| crate::hash::sha256_file(p).unwrap();
        assert_eq!(
            report.images,
            [
                ("initrd.gz".to_string(), s(&initrd), sha(&initrd)),
                ("rk3588-evb/Image".to_string(), s(&kernel), sha(&kernel)),
            ]
        );
        assert_eq!(std::fs::read(tftp.join("initrd.gz")).unwrap(), b"initrd");
        assert_eq!(
            std::fs::read(tftp.join("rk3588-evb/Image")).unwrap(),
            pattern(BUF_SIZE + 1)
        );
        // No temporary files are left behind.
        let mut names: Vec<String> = walk(&tftp);
        names.sort();
        assert_eq!(names, ["initrd.gz", "rk3588-evb", "rk3588-evb/Image"]);
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() {
                    todo.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn tftp_missing_source_names_the_key_and_copies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("Image");
        std::fs::write(&present, b"kernel").unwrap();
        let missing = dir.path().join("initrd.gz");
        let tftp = dir.path().join("tftp");
        let c = tftp_cfg(&tftp, &[("Image", &present), ("initrd", &missing)]);
        let m = infra(flash(&c, &dir.path().join("run"), &Tools::default()).await);
        assert!(m.starts_with("flash.files.initrd: "), "{m}");
        assert!(m.contains(&s(&missing)), "{m}");
        assert!(!tftp.join("Image").exists());
    }

    #[tokio::test]
    async fn tftp_name_outside_the_dir_is_a_configuration_problem() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("Image");
        std::fs::write(&src, b"kernel").unwrap();
        for name in ["../Image", "/etc/Image", ""] {
            let c = tftp_cfg(&dir.path().join("tftp"), &[(name, &src)]);
            match flash(&c, &dir.path().join("run"), &Tools::default()).await {
                Err(StepError::Blocked(m)) => assert!(
                    m.starts_with(&format!("configuration: flash.files.{name}: ")),
                    "{m}"
                ),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(tftp_name("a/./b"), Some(PathBuf::from("a/./b")));
    }
}
