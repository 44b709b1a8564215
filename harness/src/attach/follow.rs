//! `hil console BOARD` while a run on this host holds the board: follows the console the
//! run publishes (`console::follow`) instead of refusing. Shows the last few KiB the run
//! has, then everything live; typed input is refused with one line unless the run allows
//! it (`hil run --console-input`); Ctrl-] quits; the run's end ends it with exit 0.

use crate::console::follow::proto::{Decoder, Frame, Header, MAX_HEADER};
use crate::console::log::{mark_line, stamp_lines};
use crate::lease::{Leases, Record};
use crate::outcome::exit;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the run has to send its header once connected.
const HEADER_WAIT: Duration = Duration::from_secs(10);

/// The read-only refusal is said at most this often (each key typed is a read).
const REFUSAL_EVERY: Duration = Duration::from_secs(5);

/// A run's published console of a board.
pub struct Published {
    pub lease: Record,
    pub socket: PathBuf,
}

/// The console of `board`, when a live lease of a process on this host holds it and that
/// process publishes the console (a `hil run`; a `hil console` of someone else does not).
pub fn published(board: &str) -> Option<Published> {
    let leases = Leases::from_env();
    let lease = leases.read(board).ok()??;
    if lease.expired(crate::lease::now())
        || lease.owner.host != crate::lease::this_host()
        || lease.owner.pid == std::process::id()
    {
        return None;
    }
    let dir = leases.host_dir().dir;
    let socket = crate::console::follow::socket_path(&dir, board, lease.owner.pid);
    let meta = std::fs::symlink_metadata(&socket).ok()?;
    meta.file_type()
        .is_socket()
        .then_some(Published { lease, socket })
}

/// Follows `p` on the terminal. `Ok(None)` when nobody answers on the socket any more
/// (the run has just ended): the caller goes on as for a board nobody publishes.
pub async fn follow(board: &str, p: &Published, timestamps: bool) -> anyhow::Result<Option<i32>> {
    let Ok(stream) = tokio::net::UnixStream::connect(&p.socket).await else {
        return Ok(None);
    };
    let (mut rd, mut wr) = stream.into_split();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read_header = async {
        loop {
            if let Some(i) = raw.iter().position(|b| *b == b'\n') {
                return Ok(i);
            }
            if raw.len() > MAX_HEADER {
                anyhow::bail!("no header line in the first {MAX_HEADER} bytes");
            }
            match rd.read(&mut buf).await? {
                0 => anyhow::bail!("closed before its header"),
                n => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    let nl = match tokio::time::timeout(HEADER_WAIT, read_header).await {
        Ok(Ok(nl)) => nl,
        Ok(Err(e)) => anyhow::bail!("{}: {e}", p.socket.display()),
        Err(_) => anyhow::bail!(
            "{}: no header within {} s",
            p.socket.display(),
            HEADER_WAIT.as_secs()
        ),
    };
    let header = Header::parse(&String::from_utf8_lossy(&raw[..=nl]))
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.socket.display()))?;
    let mut dec = Decoder::default();
    dec.push(&raw[nl + 1..]);
    let run = header.run.clone();
    let mode = if header.input {
        "input allowed: what you type goes to the board, marked in its console log as yours"
    } else {
        "read-only"
    };
    eprintln!(
        "hil: following the console of run {run} (held by {}); {mode}; Ctrl-] quits",
        header.holder
    );
    let _raw = super::RawTerminal::enter();
    let mut stdin = tokio::io::stdin();
    let mut keys = [0u8; 1024];
    let mut stdin_open = true;
    let mut at_line_start = true;
    let mut refused_at: Option<Instant> = None;
    let mut out_buf = Vec::new();
    loop {
        // Frames already in hand first: the header may have come with the backlog.
        while let Some(f) = dec
            .next_frame()
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.socket.display()))?
        {
            match f {
                Frame::Data { t, bytes } => {
                    out_buf.clear();
                    if timestamps {
                        stamp_lines(&mut at_line_start, t, &bytes, &mut out_buf);
                    } else {
                        out_buf.extend_from_slice(&bytes);
                    }
                    show(&out_buf);
                }
                Frame::Note { t, text } if timestamps => {
                    show(mark_line(&mut at_line_start, t, &text).as_bytes())
                }
                Frame::Note { text, .. } => eprint!("\r\nhil: {text}\r\n"),
                Frame::Skipped(n) => {
                    eprint!("\r\nhil: follower fell behind: {n} bytes skipped\r\n")
                }
                Frame::Reply(text) => eprint!("\r\nhil: {text}\r\n"),
                Frame::End(reason) => {
                    eprintln!("\r\nhil: {reason}\r");
                    return Ok(Some(exit::OK));
                }
                // The step is for `hil serve`; the terminal shows the console only.
                Frame::Input(_) | Frame::Step(_) => {}
            }
        }
        tokio::select! {
            n = rd.read(&mut buf) => match n {
                Ok(n @ 1..) => dec.push(&buf[..n]),
                Ok(0) | Err(_) => {
                    // Still published by the same run: it dropped this follower (stuck
                    // for too long), it did not end.
                    if published(board).is_some_and(|now| now.socket == p.socket) {
                        eprintln!("\r\nhil: run {run} dropped this follower (its output went unread for too long); the run goes on\r");
                        return Ok(Some(exit::INFRASTRUCTURE));
                    }
                    eprintln!("\r\nhil: run {run} ended (its console went away without a word: the run may have been killed)\r");
                    return Ok(Some(exit::OK));
                }
            },
            n = stdin.read(&mut keys), if stdin_open => match n {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let quit = keys[..n].iter().position(|b| *b == super::QUIT);
                    let typed = &keys[..quit.unwrap_or(n)];
                    if !typed.is_empty() {
                        if header.input {
                            let f = Frame::Input(typed.to_vec()).encode();
                            if tokio::time::timeout(Duration::from_secs(5), wr.write_all(&f)).await.is_err() {
                                eprint!("\r\nhil: input not sent: the run is not taking it\r\n");
                            }
                        } else if refused_at.is_none_or(|t| t.elapsed() >= REFUSAL_EVERY) {
                            refused_at = Some(Instant::now());
                            eprint!(
                                "\r\nhil: read-only: run {run} holds {board} and did not allow followers to type (`hil run --console-input`); nothing was sent\r\n"
                            );
                        }
                    }
                    if quit.is_some() {
                        eprintln!("\r\nhil: stopped following run {run}\r");
                        return Ok(Some(exit::OK));
                    }
                }
            },
        }
    }
}

fn show(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}
