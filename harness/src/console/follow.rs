//! Publishing a board's console while a run holds it, so `hil console BOARD` can follow it.
//!
//! A run that holds a board listens on a Unix socket in the lease directory,
//! `<lease dir>/<board>.<pid>.follow` (pid: the run's process, the one its lease names, so
//! two runs never share a name and a follower finds the socket from the lease alone). Each
//! follower gets a header line (run id, holder, whether input is allowed), the last
//! [`BACKLOG`] bytes the board printed, then everything live, in frames that carry the
//! time each chunk arrived as the console log stamps it ([`proto`]).
//!
//! The run is never held up by a follower: the broker hands each chunk to the
//! [`Fanout`], which queues it for every follower without waiting. A follower whose queue
//! holds [`QUEUE_LIMIT`] bytes it has not taken loses what comes next, and is told how
//! much when it catches up ("follower fell behind: N bytes skipped"); one whose socket
//! takes no bytes for [`STUCK`] is dropped. The console log is written before the fan-out
//! and is the same with or without followers, except for input a follower typed when the
//! holder allowed it (`hil run --console-input`), which is marked as the follower's.

pub mod proto;

use super::Input;
use proto::Frame;
use std::collections::VecDeque;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// What a new follower is shown of the time before it attached.
pub const BACKLOG: usize = 4 * 1024;

/// Bytes a follower may have queued and not yet taken before new output skips it.
pub const QUEUE_LIMIT: usize = 256 * 1024;

/// A follower whose socket accepts nothing for this long is dropped.
pub const STUCK: Duration = Duration::from_secs(10);

/// How long the end of a run waits for its followers to be told.
const GOODBYE: Duration = Duration::from_secs(2);

/// The socket of `board`'s console published by the run of process `pid`.
pub fn socket_path(dir: &Path, board: &str, pid: u32) -> PathBuf {
    dir.join(format!("{board}.{pid}.follow"))
}

/// A follower's end of its queue: encoded frames, and the count of their bytes not yet
/// written to its socket.
type Subscription = (mpsc::UnboundedReceiver<Arc<[u8]>>, Arc<AtomicUsize>);

/// One follower's queue, as the fan-out sees it.
struct Queue {
    tx: mpsc::UnboundedSender<Arc<[u8]>>,
    /// Encoded bytes queued and not yet written to the follower's socket.
    queued: Arc<AtomicUsize>,
    /// Board bytes dropped since the follower's queue was last below the limit.
    skipped: u64,
}

impl Queue {
    /// Queues `frame` unless the follower is too far behind; `false` once it is gone.
    fn offer(&mut self, frame: &Arc<[u8]>, data_len: usize) -> bool {
        if self.queued.load(Ordering::Relaxed) + frame.len() > QUEUE_LIMIT {
            self.skipped += data_len as u64;
            return !self.tx.is_closed();
        }
        if self.skipped > 0 {
            let note = Arc::from(Frame::Skipped(self.skipped).encode());
            self.skipped = 0;
            if !self.push(note) {
                return false;
            }
        }
        self.push(frame.clone())
    }

    fn push(&self, frame: Arc<[u8]>) -> bool {
        self.queued.fetch_add(frame.len(), Ordering::Relaxed);
        self.tx.send(frame).is_ok()
    }
}

#[derive(Default)]
struct Inner {
    /// The latest board output, whole chunks with their stamps, at most [`BACKLOG`] bytes.
    backlog: VecDeque<(Duration, Arc<[u8]>)>,
    backlog_bytes: usize,
    followers: Vec<Queue>,
    /// The open console's input; weak, so the fan-out never keeps a console alive.
    input: Option<mpsc::WeakUnboundedSender<Input>>,
    /// The step the run is at, for followers that connect later.
    step: Option<proto::Step>,
    ended: bool,
}

/// The fan-out of one board's console to its followers, for as long as the run holds the
/// board: every console the run opens on it (one per boot) publishes into the same one.
pub struct Fanout {
    inner: Mutex<Inner>,
    header: proto::Header,
}

impl Fanout {
    pub fn new(header: proto::Header) -> Arc<Fanout> {
        Arc::new(Fanout {
            inner: Mutex::new(Inner::default()),
            header,
        })
    }

    pub fn header(&self) -> &proto::Header {
        &self.header
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Board output that arrived at `t`: kept for later followers, queued for the current
    /// ones. Never waits for a follower.
    pub fn data(&self, t: Duration, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut g = self.lock();
        if g.ended {
            return;
        }
        let kept: Arc<[u8]> = Arc::from(&data[data.len().saturating_sub(BACKLOG)..]);
        g.backlog_bytes += kept.len();
        g.backlog.push_back((t, kept));
        while g.backlog_bytes > BACKLOG {
            let Some((_, old)) = g.backlog.pop_front() else {
                break;
            };
            g.backlog_bytes -= old.len();
        }
        if g.followers.is_empty() {
            return;
        }
        let frame: Arc<[u8]> = Arc::from(
            Frame::Data {
                t,
                bytes: data.to_vec(),
            }
            .encode(),
        );
        g.followers.retain_mut(|q| q.offer(&frame, data.len()));
    }

    /// A marker line of hil's own (as written into the console log at `t`).
    pub fn note(&self, t: Duration, text: &str) {
        let mut g = self.lock();
        if g.ended || g.followers.is_empty() {
            return;
        }
        let frame: Arc<[u8]> = Arc::from(
            Frame::Note {
                t,
                text: text.to_string(),
            }
            .encode(),
        );
        g.followers.retain_mut(|q| q.offer(&frame, 0));
    }

    /// The run started a step on this board: kept, and told to the current followers.
    pub fn step(&self, step: proto::Step) {
        let mut g = self.lock();
        if g.ended {
            return;
        }
        let frame: Arc<[u8]> = Arc::from(Frame::Step(step.clone()).encode());
        g.step = Some(step);
        g.followers.retain_mut(|q| q.offer(&frame, 0));
    }

    /// Input from followers goes to this console from now on (the board's next boot).
    pub(super) fn set_input(&self, input: mpsc::WeakUnboundedSender<Input>) {
        self.lock().input = Some(input);
    }

    /// A new follower: its queue starts with the header and the backlog, in order with
    /// everything published after, since both are queued under the same lock.
    fn add(&self) -> Option<Subscription> {
        let mut g = self.lock();
        if g.ended {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let q = Queue {
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            skipped: 0,
        };
        q.push(Arc::from(self.header.encode().into_bytes()));
        if let Some(s) = &g.step {
            q.push(Arc::from(Frame::Step(s.clone()).encode()));
        }
        for (t, bytes) in &g.backlog {
            let f = Frame::Data {
                t: *t,
                bytes: bytes.to_vec(),
            };
            q.push(Arc::from(f.encode()));
        }
        let queued = q.queued.clone();
        g.followers.push(q);
        Some((rx, queued))
    }

    /// Typed by a follower: sent to the board (marked in the log) when the holder allowed
    /// input and a console is open; else why not.
    fn typed(&self, data: Vec<u8>, who: &str) -> Result<(), &'static str> {
        if !self.header.input {
            return Err("input refused: this run's console is read-only for followers");
        }
        let input = self.lock().input.as_ref().and_then(|w| w.upgrade());
        let Some(input) = input else {
            return Err("input not sent: the board's console is not open right now");
        };
        input
            .send(Input::Follower {
                data,
                who: who.to_string(),
            })
            .map_err(|_| "input not sent: the board's console is not open right now")
    }

    /// The run let go of the board: every follower is told, then its queue closes.
    pub fn end(&self, reason: &str) {
        let mut g = self.lock();
        g.ended = true;
        let frame: Arc<[u8]> = Arc::from(Frame::End(reason.to_string()).encode());
        for q in g.followers.drain(..) {
            q.push(frame.clone());
        }
        g.input = None;
    }

    #[cfg(test)]
    fn followers(&self) -> usize {
        self.lock().followers.len()
    }
}

/// A run's published console of one board: the socket, its listener and its followers.
/// [`Publisher::finish`] says goodbye to the followers and removes the socket; dropping it
/// without does the same without waiting for them.
pub struct Publisher {
    path: PathBuf,
    /// The socket's (device, inode), so only the socket made here is ever removed.
    id: (u64, u64),
    fanout: Arc<Fanout>,
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    done: bool,
}

impl Publisher {
    /// Listens on [`socket_path`] in `dir` (a lease directory, already checked: root's
    /// or this user's, sticky if others may write it). A socket left there by a killed
    /// process that had the same pid (nothing accepts on it) is replaced; anything else
    /// in the way (a live socket, a symlink, a file) is an error, never followed or removed.
    pub fn start(dir: &Path, board: &str, header: proto::Header) -> std::io::Result<Publisher> {
        let path = socket_path(dir, board, std::process::id());
        sweep(dir, board);
        let listener = bind(&path)?;
        // The socket is made with the umask's mode; every user of the lab may follow.
        // Nobody else can have swapped it for a link since: in a sticky directory only
        // its owner removes it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        let meta = std::fs::symlink_metadata(&path)?;
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} is no longer the socket just made",
                path.display()
            )));
        }
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let fanout = Fanout::new(header);
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let accept = tokio::spawn(accept_loop(listener, fanout.clone(), conns.clone()));
        Ok(Publisher {
            path,
            id: (meta.dev(), meta.ino()),
            fanout,
            accept,
            conns,
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fanout(&self) -> Arc<Fanout> {
        self.fanout.clone()
    }

    /// Tells every follower `reason`, waits (briefly) until they have it, and removes
    /// the socket.
    pub async fn finish(mut self, reason: &str) {
        self.close(reason);
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|p| p.into_inner()));
        let all = futures_join(conns);
        let _ = tokio::time::timeout(GOODBYE, all).await;
    }

    fn close(&mut self, reason: &str) {
        if self.done {
            return;
        }
        self.done = true;
        self.accept.abort();
        self.fanout.end(reason);
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.close("the run stopped publishing its console");
        for c in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }
}

/// Waits for every task; a task that is still running when the caller gives up is
/// aborted with its handle when the caller drops this future.
async fn futures_join(conns: Vec<tokio::task::JoinHandle<()>>) {
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for c in &self.0 {
                c.abort();
            }
        }
    }
    let mut guard = AbortOnDrop(conns);
    for c in guard.0.iter_mut() {
        let _ = c.await;
    }
}

/// Removes this user's sockets of `board` that nothing listens on any more (runs killed
/// before they could remove theirs), so they do not pile up in the shared directory.
/// Another user's are theirs to remove (the sticky bit would refuse it anyway).
fn sweep(dir: &Path, board: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let prefix = format!("{board}.");
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".follow"))
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_socket() || meta.uid() != me {
            continue;
        }
        if let Err(err) = std::os::unix::net::UnixStream::connect(&path) {
            if err.kind() == std::io::ErrorKind::ConnectionRefused {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Binds a listening socket at `path` without following or removing anything that is
/// not a dead socket.
fn bind(path: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::net::{UnixListener, UnixStream};
    // bind(2) never follows a symlink: one at `path` is EADDRINUSE like any file.
    match UnixListener::bind(path) {
        Ok(l) => return Ok(l),
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => return Err(e),
        Err(_) => {}
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "{} exists and is not a socket; not replaced",
            path.display()
        )));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is a live socket of another process; not replaced",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            // A killed run's socket: nothing listens on it any more.
            std::fs::remove_file(path)?;
            UnixListener::bind(path)
        }
        Err(e) => Err(e),
    }
}

async fn accept_loop(
    listener: tokio::net::UnixListener,
    fanout: Arc<Fanout>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Some((rx, queued)) = fanout.add() else {
            return;
        };
        let who = match stream.peer_cred() {
            Ok(c) => format!(
                "uid {}{}",
                c.uid(),
                c.pid().map(|p| format!(", pid {p}")).unwrap_or_default()
            ),
            Err(_) => "unknown".into(),
        };
        let task = tokio::spawn(serve(stream, rx, queued, fanout.clone(), who));
        let mut g = conns.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|c| !c.is_finished());
        g.push(task);
    }
}

/// One follower: its queue to its socket, and what it types (input frames) to the board.
async fn serve(
    stream: tokio::net::UnixStream,
    mut rx: mpsc::UnboundedReceiver<Arc<[u8]>>,
    queued: Arc<AtomicUsize>,
    fanout: Arc<Fanout>,
    who: String,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut dec = proto::Decoder::default();
    let mut buf = vec![0u8; 4096];
    // What the follower types is answered only after its header: a reply written before
    // it would break the stream.
    let mut header_sent = false;
    let mut reading = true;
    loop {
        tokio::select! {
            f = rx.recv() => {
                let Some(f) = f else {
                    let _ = wr.shutdown().await;
                    return;
                };
                match tokio::time::timeout(STUCK, wr.write_all(&f)).await {
                    Ok(Ok(())) => {
                        queued.fetch_sub(f.len(), Ordering::Relaxed);
                        header_sent = true;
                    }
                    // Gone or stuck: dropped (its queue closes, the fan-out forgets it).
                    _ => return,
                }
            }
            n = rd.read(&mut buf), if reading && header_sent => match n {
                Ok(0) | Err(_) => reading = false,
                Ok(n) => {
                    dec.push(&buf[..n]);
                    loop {
                        match dec.next_frame() {
                            Ok(Some(Frame::Input(data))) => {
                                if let Err(why) = fanout.typed(data, &who) {
                                    let reply = Frame::Reply(why.to_string()).encode();
                                    if !matches!(tokio::time::timeout(STUCK, wr.write_all(&reply)).await, Ok(Ok(()))) {
                                        return;
                                    }
                                }
                            }
                            Ok(Some(_)) => {}
                            Ok(None) => break,
                            Err(_) => return,
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests;
