//! The console broker: one task per board owns the transport. It writes every byte into
//! the board's log as it arrives, then fans it out to subscribers (expect engines, captures
//! for report slices, a live viewer). Others talk to it through a [`Console`] handle.

pub mod log;
pub mod transport;

use log::ConsoleLog;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};
use transport::Transport;

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Event {
    Data(Arc<[u8]>),
    /// The transport ended (board powered off or died, cable gone); carries the reason.
    Closed(String),
}

struct Shared {
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Event>>>,
    closed: watch::Sender<Option<String>>,
    received: AtomicU64,
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
}

impl Console {
    /// Opens `device` and starts the broker. The log is created (appending) at `log_path`.
    pub fn open(device: &str, baud: u32, log_path: &Path, title: &str) -> std::io::Result<Console> {
        let transport = Transport::open_serial(device, baud)?;
        let log = ConsoleLog::create(log_path, title)?;
        Ok(Self::start(transport, log))
    }

    /// A console over an already open stream (the guest console through SSH).
    pub fn from_stream(
        stream: std::os::unix::net::UnixStream,
        log_path: &Path,
        title: &str,
    ) -> std::io::Result<Console> {
        let transport = Transport::from_fd(std::os::fd::OwnedFd::from(stream))?;
        let log = ConsoleLog::create(log_path, title)?;
        Ok(Self::start(transport, log))
    }

    fn start(transport: Transport, log: ConsoleLog) -> Console {
        let (closed, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            subscribers: Mutex::new(Vec::new()),
            closed,
            received: AtomicU64::new(0),
        });
        let (input, input_rx) = mpsc::unbounded_channel();
        tokio::spawn(broker(transport, log, shared.clone(), input_rx));
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

    /// Types `data` at the board.
    pub fn send(&self, data: impl Into<Vec<u8>>) {
        let _ = self.input.send(Input::Bytes(data.into()));
    }

    /// Writes a hil marker line into the console log (power events, gaps).
    pub fn mark(&self, what: impl Into<String>) {
        let _ = self.input.send(Input::Mark(what.into()));
    }

    /// Total bytes received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// `Some(reason)` once the transport has ended.
    pub fn closed_reason(&self) -> Option<String> {
        self.shared.closed.borrow().clone()
    }
}

async fn broker(
    transport: Transport,
    mut log: ConsoleLog,
    shared: Arc<Shared>,
    mut input: mpsc::UnboundedReceiver<Input>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let reason = loop {
        tokio::select! {
            r = transport.read(&mut buf) => match r {
                Ok(0) => break "console closed (end of stream: the board powered off or its QEMU exited)".to_string(),
                Ok(n) => {
                    // Disk first: if anything below fails, the bytes are already logged.
                    if let Err(e) = log.write(&buf[..n]) {
                        eprintln!("hil: warning: console log write failed: {e}");
                    }
                    shared.received.fetch_add(n as u64, Ordering::Relaxed);
                    let chunk: Arc<[u8]> = Arc::from(&buf[..n]);
                    let mut subs = shared.subscribers.lock().unwrap_or_else(|p| p.into_inner());
                    subs.retain(|s| s.send(Event::Data(chunk.clone())).is_ok());
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    break "console closed (EIO: the other end went away: board powered off or its QEMU exited)".to_string()
                }
                Err(e) => break format!("console read failed: {e}"),
            },
            msg = input.recv() => match msg {
                Some(Input::Bytes(data)) => {
                    if let Err(e) = transport.write_all(&data).await {
                        break format!("console write failed: {e}");
                    }
                }
                Some(Input::Mark(m)) => { let _ = log.mark(&m); }
                // Every handle dropped: nobody can use the console any more.
                None => break "console released".to_string(),
            },
        }
    };
    let _ = log.mark(&reason);
    shared.closed.send_replace(Some(reason.clone()));
    let subs = std::mem::take(&mut *shared.subscribers.lock().unwrap_or_else(|p| p.into_inner()));
    for s in subs {
        let _ = s.send(Event::Closed(reason.clone()));
    }
}
