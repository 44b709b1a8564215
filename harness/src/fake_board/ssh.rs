//! The fake board's SSH server (russh), on 127.0.0.1 at the board file's `ssh.port`.
//!
//! It offers the `[fake] ssh_host_key`, accepts only the board file's `ssh.user` with the
//! public half of `ssh.identity`, and runs exec requests through the same command script
//! as the console shell (script.rs), streaming their output, then the exit status.
//! Data the client sends is the command's stdin.
//!
//! The listener belongs to the board's console task, so powering the board off closes it
//! at once (a retry may bind the same port straight away). Connections are shut down when
//! the server is dropped (power-off, vanish, reset); a panic or a freeze leaves them open
//! with nothing answering, as a dead board does.

use super::script::{Job, ScriptCtx, Step};
use super::{BoardEvent, SshSpec};
use russh::keys::ssh_key::PublicKey;
use russh::keys::PrivateKey;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, MethodKind, MethodSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

/// The keys, read once per power-on.
pub struct Keys {
    host: PrivateKey,
    client: PublicKey,
}

impl Keys {
    pub fn load(s: &SshSpec) -> Result<Keys, String> {
        let read = |p: &std::path::Path, what: &str| {
            russh::keys::load_secret_key(p, None)
                .map_err(|e| format!("fake board: {what} {}: {e}", p.display()))
        };
        Ok(Keys {
            host: read(&s.host_key, "SSH host key (fake.ssh_host_key)")?,
            client: read(&s.identity, "login key (ssh.identity)")?
                .public_key()
                .clone(),
        })
    }
}

/// What the server and its connections share.
struct Shared {
    /// A duplicate of each open connection's socket (by connection number), to shut it
    /// down when the server goes.
    conns: Mutex<Vec<(u64, OwnedFd)>>,
    next_conn: std::sync::atomic::AtomicU64,
    /// The exec channels' tasks.
    tasks: Mutex<Vec<AbortHandle>>,
    /// False once the board is dead: channels stop answering.
    alive: watch::Sender<bool>,
}

pub struct Server {
    listener: Option<TcpListener>,
    config: Arc<russh::server::Config>,
    user: String,
    client: PublicKey,
    ctx: ScriptCtx,
    events: mpsc::UnboundedSender<BoardEvent>,
    shared: Arc<Shared>,
}

impl Server {
    pub async fn start(
        spec: &SshSpec,
        keys: &Keys,
        ctx: ScriptCtx,
        events: mpsc::UnboundedSender<BoardEvent>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", spec.port)).await?;
        let config = russh::server::Config {
            server_id: russh::SshId::Standard("SSH-2.0-hil_fake_board".into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            // A constant-time rejection guards a real server; here it would only slow
            // down the tests of a refused login.
            auth_rejection_time: std::time::Duration::ZERO,
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            keys: vec![keys.host.clone()],
            inactivity_timeout: None,
            nodelay: true,
            ..Default::default()
        };
        Ok(Server {
            listener: Some(listener),
            config: Arc::new(config),
            user: spec.user.clone(),
            client: keys.client.clone(),
            ctx,
            events,
            shared: Arc::new(Shared {
                conns: Mutex::new(Vec::new()),
                next_conn: std::sync::atomic::AtomicU64::new(0),
                tasks: Mutex::new(Vec::new()),
                alive: watch::channel(true).0,
            }),
        })
    }

    /// Accepts one connection and starts serving it; pending forever once frozen. Run by
    /// the console task in its select loop.
    pub async fn accept(&mut self) {
        let Some(l) = &self.listener else {
            return std::future::pending().await;
        };
        let Ok((sock, _)) = l.accept().await else {
            // Out of fds or the like: try again later rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            return;
        };
        let id = self
            .shared
            .next_conn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: dup of a valid open socket fd; the new fd is owned by the OwnedFd alone.
        let dup = unsafe { libc::dup(sock.as_raw_fd()) };
        if dup >= 0 {
            // SAFETY: dup returned a new fd that nothing else owns.
            let owned: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(dup) };
            lock(&self.shared.conns).push((id, owned));
        }
        let handler = Conn {
            user: self.user.clone(),
            client: self.client.clone(),
            ctx: self.ctx.clone(),
            events: self.events.clone(),
            shared: self.shared.clone(),
        };
        let config = self.config.clone();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Ok(session) = russh::server::run_stream(config, sock, handler).await {
                let _ = session.await;
            }
            // Ended by the client: its duplicate goes too.
            lock(&shared.conns).retain(|(c, _)| *c != id);
        });
    }

    /// The board died: no new connections, and open channels stop answering.
    pub fn freeze(&mut self) {
        self.listener = None;
        self.shared.alive.send_replace(false);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
        for (_, fd) in lock(&self.shared.conns).drain(..) {
            // SAFETY: shutdown(2) on a socket fd we own; the peer sees the connection end.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One client connection.
struct Conn {
    user: String,
    client: PublicKey,
    ctx: ScriptCtx,
    events: mpsc::UnboundedSender<BoardEvent>,
    shared: Arc<Shared>,
}

impl Conn {
    fn allowed(&self, user: &str, key: &PublicKey) -> Auth {
        if user == self.user && key.key_data() == self.client.key_data() {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, key))
    }

    async fn auth_publickey(&mut self, user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        Ok(self.allowed(user, key))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        let task = tokio::spawn(serve(
            channel,
            self.ctx.clone(),
            self.events.clone(),
            self.shared.alive.subscribe(),
        ));
        let mut tasks = lock(&self.shared.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task.abort_handle());
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The command itself reaches the channel's task as ChannelMsg::Exec.
        session.channel_success(channel)?;
        Ok(())
    }
}

/// Serves one session channel: waits for its exec request, runs the command, streams its
/// output and ends with its exit status.
///
/// The channel's incoming messages (stdin data, EOF, close) are read by a task of their
/// own for as long as the channel lives. An output write waits for the client's window; if
/// this loop also had to read the channel, a client that stops reading (a check that timed
/// out during a flood) would leave its messages unread, russh's per-channel queue would
/// fill, and the whole connection, with every later channel on it, would stall.
async fn serve(
    channel: Channel<Msg>,
    ctx: ScriptCtx,
    events: mpsc::UnboundedSender<BoardEvent>,
    mut alive: watch::Receiver<bool>,
) {
    let (mut rd, wr) = channel.split();
    let cmd = loop {
        match rd.wait().await {
            Some(ChannelMsg::Exec { command, .. }) => {
                break String::from_utf8_lossy(&command).into_owned()
            }
            Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) | None => return,
            Some(_) => {}
        }
    };
    // Unbounded: a command that never reads its stdin must not stop its output.
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (closed_tx, mut closed) = watch::channel(false);
    let _reader = AbortOnDrop(tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        loop {
            match rd.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(s) = &stdin {
                        let _ = s.send(data.to_vec());
                    }
                }
                Some(ChannelMsg::Eof) => stdin = None,
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        let _ = closed_tx.send(true);
    }));
    let mut job = (*alive.borrow()).then(|| Job::start(&cmd, &ctx, Some(stdin_rx)));
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            step = async {
                match job.as_mut() {
                    Some(j) => j.next().await,
                    None => std::future::pending().await,
                }
            } => match step {
                Step::Out(b) => {
                    tokio::select! {
                        r = wr.data_bytes(b) => if r.is_err() { return },
                        _ = closed.changed() => return,
                    }
                }
                Step::Exit(status) => {
                    let _ = wr.exit_status(status.rem_euclid(256) as u32).await;
                    let _ = wr.eof().await;
                    let _ = wr.close().await;
                    return;
                }
                Step::Event(ev) => {
                    let _ = events.send(ev);
                    job = None;
                }
            },
            // Dropped at once: a watch::Ref must not be held across the awaits above.
            () = async { let _ = alive.wait_for(|a| !*a).await; }, if job.is_some() => job = None,
        }
    }
}

/// Aborts the task when dropped: the channel's reader ends with the channel's server task.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
