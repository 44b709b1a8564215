//! The console broker: one task per board owns the transport. It writes every byte into
//! the board's log as it arrives, then fans it out to subscribers (expect engines, captures
//! for report slices, a live viewer). Others talk to it through a [`Console`] handle.
//!
//! A console opened from a device path survives its transport going away (a USB-serial
//! adapter re-enumerating): the broker waits for the same path to come back, reopens it and
//! logs the gap (see [`reopen`]). A network console (`rfc2217://`, `telnet://`, `tcp://`)
//! is reconnected to its address the same way, and a USB adapter named by its serial
//! number or port (`usb-serial:`, `usb-path:`) is looked up in sysfs again (see [`usb`]). Subscribers see one uninterrupted stream;
//! only when the path stays away past the board's limit does the console close.

pub mod follow;
pub mod log;
pub mod reopen;
pub mod ser2net;
pub mod telnet;
pub mod transport;
pub mod usb;

use crate::config::board::ConsoleDevice;
use crate::config::serial_line::SerialLine;
use log::ConsoleLog;
use reopen::{HeldInput, Reopen, Target};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use transport::Transport;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Event {
    Data(Arc<[u8]>),
    /// A note of hil's own about the console (transport lost, gap), also in the log; never
    /// board output, so expect engines ignore it.
    Notice(String),
    /// The transport ended (board powered off or died, cable gone); carries the reason.
    Closed(String),
}

struct Shared {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Event>>>,
    closed: watch::Sender<Option<String>>,
    received: AtomicU64,
    gaps: AtomicU64,
    /// How long the transport was away over all gaps, in milliseconds.
    gap_ms: AtomicU64,
    /// The run's followers (see [`follow`]), once the console is published.
    fanout: OnceLock<Arc<follow::Fanout>>,
}

impl Shared {
    fn publish(&self, ev: Event) {
        let mut subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|s| s.send(ev.clone()).is_ok());
    }
}

/// A cheap, cloneable handle to a board's console broker.
#[derive(Clone)]
pub struct Console {
    shared: Arc<Shared>,
    input: mpsc::UnboundedSender<Input>,
}

enum Input {
    Bytes(Vec<u8>),
    Mark(String),
    Break,
    /// Typed by a follower of the run (allowed by the holder): marked in the log as the
    /// follower's, then sent like the holder's own.
    Follower {
        data: Vec<u8>,
        who: String,
    },
}

impl Console {
    /// Opens `device` and starts the broker. The log is created (appending) at `log_path`.
    /// With `reopen_within`, a transport that goes away is reopened from the same path if
    /// it comes back in time (see [`reopen`]); without, its end closes the console.
    pub fn open(
        device: &str,
        line: impl Into<SerialLine>,
        reopen_within: Option<Duration>,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let line = line.into();
        let transport = Transport::open_serial(device, line)?;
        let log = ConsoleLog::create(log_path, title)?;
        let reopen = reopen_within.map(|within| Reopen {
            target: Target::Serial(device.to_string()),
            line,
            within,
        });
        Ok(Self::start(transport, reopen, log))
    }

    /// Opens a `console.device` value: a network console URL is connected to (and, for
    /// telnet, negotiated with) within [`transport::CONNECT_TIMEOUT`]; a USB adapter by
    /// identity is found in sysfs (`/sys`) and its tty opened; anything else is opened as
    /// a device path, as by [`Console::open`]. With `reopen_within`, a lost transport is
    /// reopened or reconnected (a USB adapter looked up again: it may come back under
    /// another ttyUSB number).
    pub async fn open_device(
        device: &str,
        line: impl Into<SerialLine>,
        reopen_within: Option<Duration>,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let target = match ConsoleDevice::parse(device)
            .unwrap_or_else(|_| ConsoleDevice::Path(device.to_string()))
        {
            ConsoleDevice::Net(net) => Target::Net(net),
            ConsoleDevice::Usb(adapter) => Target::Usb {
                adapter,
                sysfs: usb::SysfsRoot::default(),
            },
            ConsoleDevice::Ssh(addr) => {
                return Err(std::io::Error::other(format!(
                    "{addr} is a console server: its login and attach command come from the board file's [console.ssh] table"
                )))
            }
            _ => return Self::open(device, line, reopen_within, log_path, title),
        };
        Self::open_target(target, line, reopen_within, log_path, title).await
    }

    /// Opens a board's own console as its board file describes it (`console.device`, and
    /// for a console server `[console.ssh]`), reopened within `console.reopen_timeout_s`.
    pub async fn open_board(
        cfg: &crate::config::board::ConsoleCfg,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let (Some(login), Some(ssh)) = (&cfg.ssh_login, &cfg.ssh) else {
            return Self::open_device(
                &cfg.device,
                cfg.line(),
                cfg.reopen_within(),
                log_path,
                title,
            )
            .await;
        };
        let target = Target::Ssh {
            login: login.clone(),
            command: ssh.command.clone(),
        };
        Self::open_target(target, cfg.line(), cfg.reopen_within(), log_path, title).await
    }

    /// Opens a network console or a USB adapter by identity (see [`Console::open_device`]).
    pub async fn open_target(
        target: Target,
        line: impl Into<SerialLine>,
        reopen_within: Option<Duration>,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let line = line.into();
        let (transport, found) = match &target {
            Target::Usb { adapter, sysfs } => {
                let tty = usb::resolve(sysfs, adapter).map_err(std::io::Error::other)?;
                (Transport::open_serial(&tty, line)?, Some(tty))
            }
            t => (t.open(line, t.first_open_limit()).await?, None),
        };
        let mut log = ConsoleLog::create(log_path, title)?;
        if let Some(tty) = found {
            let _ = log.mark(&format!("{target} is {tty}"));
        }
        let reopen = reopen_within.map(|within| Reopen {
            target,
            line,
            within,
        });
        Ok(Self::start(transport, reopen, log))
    }

    /// A console over an already open stream (the guest console through SSH).
    pub fn from_stream(
        stream: std::os::unix::net::UnixStream,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let transport = Transport::from_fd(std::os::fd::OwnedFd::from(stream))?;
        let log = ConsoleLog::create(log_path, title)?;
        Ok(Self::start(transport, None, log))
    }

    fn start(transport: Transport, reopen: Option<Reopen>, log: ConsoleLog) -> Console {
        let (closed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            subscribers: Mutex::new(Vec::new()),
            closed,
            received: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            gap_ms: AtomicU64::new(0),
            fanout: OnceLock::new(),
        });
        let (input, input_rx) = mpsc::unbounded_channel();
        tokio::spawn(broker(transport, reopen, log, shared.clone(), input_rx));
        Console { shared, input }
    }

    /// A new stream of everything the board prints from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut subs = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(reason) = self.shared.closed.borrow().clone() {
            let _ = tx.send(Event::Closed(reason));
        } else {
            subs.push(tx);
        }
        rx
    }

    /// Publishes this console to the run's followers from now on (see [`follow`]); their
    /// input, where the holder allows it, comes to this console.
    pub fn publish_to(&self, fanout: Arc<follow::Fanout>) {
        fanout.set_input(self.input.downgrade());
        let _ = self.shared.fanout.set(fanout);
    }

    /// Types `data` at the board. While the transport is away (waiting to reopen) the
    /// bytes are held and sent after it is back; the log says so.
    pub fn send(&self, data: impl Into<Vec<u8>>) {
        let _ = self.input.send(Input::Bytes(data.into()));
    }

    /// Sends a break (magic SysRq: a break, then the key within 5 s). A transport that
    /// cannot (raw `tcp://`, a stream) or is away notes so in the log instead.
    pub fn send_break(&self) {
        let _ = self.input.send(Input::Break);
    }

    /// Writes a hil marker line into the console log (power events, gaps).
    pub fn mark(&self, what: impl Into<String>) {
        let _ = self.input.send(Input::Mark(what.into()));
    }

    /// Total bytes received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// How many times the transport went away and was reopened.
    pub fn gaps(&self) -> u64 {
        self.shared.gaps.load(Ordering::Relaxed)
    }

    /// How long the transport was away, over all its gaps.
    pub fn gap_time(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shared.gap_ms.load(Ordering::Relaxed))
    }

    /// `Some(reason)` once the transport has ended.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.closed.borrow().clone()
    }
}

/// Why the broker stopped pumping one transport.
enum Stop {
    /// The transport failed or ended; another may replace it.
    Lost(String),
    /// Every handle was dropped: nobody can use the console any more.
    Released,
}

async fn broker(
    mut transport: Transport,
    reopen: Option<Reopen>,
    mut log: ConsoleLog,
    shared: Arc<Shared>,
    mut input: mpsc::UnboundedReceiver<Input>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut held = HeldInput::default();
    let mut opened = tokio::time::Instant::now();
    let reason = loop {
        let lost = match pump(
            &transport, &mut buf, &mut log, &shared, &mut input, &mut held,
        )
        .await
        {
            Stop::Released => break "console released".to_string(),
            Stop::Lost(what) => what,
        };
        let Some(ro) = &reopen else {
            break format!("console closed ({lost})");
        };
        // Let go of the dead fd first: a real adapter's node is only recreated once the
        // last holder of the old one is gone.
        drop(transport);
        let note = format!(
            "console transport lost ({lost}); waiting up to {} s for {} to come back",
            ro.within.as_secs(),
            ro.target
        );
        mark(&mut log, &shared, &note);
        shared.publish(Event::Notice(note));
        match ro.wait(opened, &mut log, &mut input, &mut held).await {
            Ok((t, gap)) => {
                transport = t;
                opened = tokio::time::Instant::now();
                shared.gaps.fetch_add(1, Ordering::Relaxed);
                shared
                    .gap_ms
                    .fetch_add(gap.as_millis() as u64, Ordering::Relaxed);
                let note = format!(
                    "console gap: {:.1} s without transport ({} {}; what the board printed meanwhile is lost)",
                    gap.as_secs_f64(),
                    ro.target,
                    ro.target.back()
                );
                mark(&mut log, &shared, &note);
                shared.publish(Event::Notice(note));
            }
            Err(reopen::GaveUp::Released) => break "console released".to_string(),
            Err(reopen::GaveUp::Timeout(last)) => {
                break format!(
                    "console closed ({lost}; {} did not come back within {} s: {last})",
                    ro.target,
                    ro.within.as_secs()
                )
            }
        }
    };
    // What hil sent just before the transport ended (a "power off" mark, then the power
    // backend cut the line) is still queued: its marks belong in the log before the
    // close, its bytes among those never sent.
    while let Ok(msg) = input.try_recv() {
        match msg {
            Input::Mark(m) => mark(&mut log, &shared, &m),
            Input::Bytes(data) => held.hold(&data),
            Input::Follower { data, who } => {
                mark(&mut log, &shared, &follower_input(&who, &data));
                held.hold(&data);
            }
            Input::Break => {
                let _ = log.mark("break not sent: the console closed");
            }
        }
    }
    held.abandon(&mut log);
    mark(&mut log, &shared, &reason);
    shared.closed.send_replace(Some(reason.clone()));
    let subs = std::mem::take(&mut *shared.subscribers.lock().unwrap_or_else(|p| p.into_inner()));
    for s in subs {
        let _ = s.send(Event::Closed(reason.clone()));
    }
}

/// A marker line into the log, and to the run's followers with the same stamp.
fn mark(log: &mut ConsoleLog, shared: &Shared, what: &str) {
    let t = log.elapsed();
    let _ = log.mark_at(what, t);
    if let Some(f) = shared.fanout.get() {
        f.note(t, what);
    }
}

/// The log's mark for input a follower typed: who, and the bytes as Rust escapes them
/// (control characters visible, the line never broken).
fn follower_input(who: &str, data: &[u8]) -> String {
    format!(
        "input from a follower of the run ({who}): \"{}\"",
        data.escape_ascii()
    )
}

/// Bytes published to subscribers between two yields of the broker: the burst an expect
/// engine takes in at once, so its queue stays that short.
const YIELD_EVERY: usize = crate::expect::BURST;

/// Moves bytes between one transport, the log and the subscribers until it fails.
async fn pump(
    transport: &Transport,
    buf: &mut [u8],
    log: &mut ConsoleLog,
    shared: &Shared,
    input: &mut mpsc::UnboundedReceiver<Input>,
    held: &mut HeldInput,
) -> Stop {
    // Input typed while the previous transport was away goes out first, in order.
    if let Some(data) = held.take(log) {
        if let Err(e) = transport.write_all(&data).await {
            held.hold(&data);
            return Stop::Lost(format!("write failed: {e}"));
        }
    }
    let mut published = 0usize;
    loop {
        tokio::select! {
            r = transport.read(buf) => match r {
                Ok(0) => return Stop::Lost("end of stream: the board powered off, its QEMU exited or the cable went away".into()),
                Ok(n) => {
                    // Disk first: if anything below fails, the bytes are already logged.
                    let t = log.elapsed();
                    if let Err(e) = log.write_at(&buf[..n], t) {
                        eprintln!("hil: warning: console log write failed: {e}");
                    }
                    shared.received.fetch_add(n as u64, Ordering::Relaxed);
                    shared.publish(Event::Data(Arc::from(&buf[..n])));
                    // Queued for the run's followers without waiting for any of them.
                    if let Some(f) = shared.fanout.get() {
                        f.data(t, &buf[..n]);
                    }
                    // Let the subscribers run before reading on once a stream has queued
                    // YIELD_EVERY for them: one that never leaves the fd empty would
                    // otherwise keep this task going for tokio's whole budget (128 reads,
                    // megabytes) while they queue up. Not after every chunk: with several
                    // runtime workers, a yield per chunk cost a streaming console 12–25%
                    // more CPU per MiB in `hil bench` (with one worker it cost nothing).
                    published += n;
                    if published >= YIELD_EVERY {
                        published = 0;
                        tokio::task::yield_now().await;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    return Stop::Lost("EIO: the other end went away: board powered off, its QEMU exited or the adapter vanished".into())
                }
                Err(e) => return Stop::Lost(format!("read failed: {e}")),
            },
            msg = input.recv() => match msg {
                Some(Input::Bytes(data)) => {
                    if let Err(e) = transport.write_all(&data).await {
                        // Kept for the next transport, if one comes; else reported on close.
                        held.hold(&data);
                        return Stop::Lost(format!("write failed: {e}"));
                    }
                }
                Some(Input::Mark(m)) => mark(log, shared, &m),
                Some(Input::Follower { data, who }) => {
                    mark(log, shared, &follower_input(&who, &data));
                    if let Err(e) = transport.write_all(&data).await {
                        held.hold(&data);
                        return Stop::Lost(format!("write failed: {e}"));
                    }
                }
                Some(Input::Break) => match transport.send_break().await {
                    Ok(()) => { let _ = log.mark("break sent"); }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::Unsupported | std::io::ErrorKind::InvalidInput)
                        || e.raw_os_error() == Some(libc::ENOTTY) =>
                    {
                        let _ = log.mark(&format!("break not sent: {e}"));
                    }
                    Err(e) => return Stop::Lost(format!("break failed: {e}")),
                },
                None => return Stop::Released,
            },
        }
    }
}

#[cfg(test)]
mod console_server_tests;
#[cfg(test)]
mod tests;
