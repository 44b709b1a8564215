//! What runs on this host are doing now: the step each is at, and a board's console as it
//! happens, streamed to the browser as server-sent events.
//!
//! Both come from the console a `hil run` publishes while it holds a board (a Unix socket
//! in the lease directory, see `console::follow`): a follower that connects gets the run's
//! header, its current step, the last few KiB of output, then everything live. `hil serve`
//! is such a follower, and a read-only one: it never sends input, whatever the run allows.
//! Only runs on the host `hil serve` runs on can be followed (the socket is local); a
//! board held from another lab host shows its holder but no step.

use super::boards::{rfc3339, BoardState};
use crate::console::follow::proto::{Decoder, Frame, Header, Step, MAX_HEADER};
use crate::lease::Leases;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Serialize;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How long the boards page waits for a run to say its step.
const STEP_WAIT: Duration = Duration::from_millis(300);

/// The step a run is at on a board, as the boards page and `/api/boards` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveStep {
    pub name: String,
    /// When it started (RFC 3339, UTC).
    pub since: String,
    pub elapsed_s: f64,
    pub timeout_s: Option<f64>,
}

/// The socket of the console the holder of `b` publishes, when it runs on this host.
pub fn socket(leases: &Leases, b: &BoardState) -> Option<PathBuf> {
    let h = b.holder.as_ref()?;
    if h.host != crate::lease::this_host() {
        return None;
    }
    let dir = leases.host_dir().dir;
    let p = crate::console::follow::socket_path(&dir, &b.board, h.pid);
    let meta = std::fs::symlink_metadata(&p).ok()?;
    meta.file_type().is_socket().then_some(p)
}

/// Adds to each board held by a run on this host its current step and live console link.
pub fn add_steps(leases: &Leases, boards: &mut [BoardState]) {
    for b in boards.iter_mut() {
        let Some(sock) = socket(leases, b) else {
            continue;
        };
        b.live_console = Some(format!("/boards/{}/console", super::pages::seg(&b.board)));
        b.step = read_step(&sock).map(|s| LiveStep {
            name: s.name,
            since: rfc3339(s.since),
            elapsed_s: (crate::lease::now() - s.since).max(0.0),
            timeout_s: s.timeout_s,
        });
    }
}

/// Connects, reads the header and the frame after it: the step, when the run has one.
fn read_step(sock: &std::path::Path) -> Option<Step> {
    let mut s = std::os::unix::net::UnixStream::connect(sock).ok()?;
    let until = Instant::now() + STEP_WAIT;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut header_done = false;
    let mut dec = Decoder::default();
    loop {
        let left = until.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left)).ok()?;
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if header_done {
            dec.push(&buf[..n]);
        } else {
            raw.extend_from_slice(&buf[..n]);
            let Some(i) = raw.iter().position(|b| *b == b'\n') else {
                if raw.len() > MAX_HEADER {
                    return None;
                }
                continue;
            };
            Header::parse(&String::from_utf8_lossy(&raw[..i])).ok()?;
            dec.push(&raw[i + 1..]);
            header_done = true;
        }
        match dec.next_frame() {
            Ok(Some(Frame::Step(step))) => return Some(step),
            // The step comes first when there is one: anything else means none yet.
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => {}
        }
    }
}

/// The SSE stream of a published console: `hello` (run and holder), then `step`,
/// `output` (`{"t": log seconds, "text": ...}`), `note` (hil's marker lines), `skipped`
/// (bytes this follower missed by falling behind) and at the end `end` (why).
pub async fn console_events(
    sock: PathBuf,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, String> {
    let stream = tokio::net::UnixStream::connect(&sock)
        .await
        .map_err(|e| format!("the run's console is not published any more ({e})"))?;
    // The write half is dropped at once: nothing is ever typed from here.
    let (rd, _) = stream.into_split();
    struct St {
        rd: tokio::net::unix::OwnedReadHalf,
        dec: Decoder,
        raw: Option<Vec<u8>>,
        buf: Vec<u8>,
        done: bool,
    }
    let st = St {
        rd,
        dec: Decoder::default(),
        raw: Some(Vec::new()),
        buf: vec![0u8; 64 * 1024],
        done: false,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if st.raw.is_none() {
                match st.dec.next_frame() {
                    Ok(Some(f)) => {
                        if let Some(ev) = event_of(f, &mut st.done) {
                            return Some((Ok(ev), st));
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        st.done = true;
                        return Some((Ok(Event::default().event("end").data(e)), st));
                    }
                }
            }
            let n = match st.rd.read(&mut st.buf).await {
                Ok(0) | Err(_) => {
                    st.done = true;
                    let ev = Event::default()
                        .event("end")
                        .data("the run's console closed");
                    return Some((Ok(ev), st));
                }
                Ok(n) => n,
            };
            match st.raw.as_mut() {
                None => st.dec.push(&st.buf[..n]),
                Some(raw) => {
                    raw.extend_from_slice(&st.buf[..n]);
                    let Some(i) = raw.iter().position(|b| *b == b'\n') else {
                        if raw.len() > MAX_HEADER {
                            st.done = true;
                            let ev = Event::default().event("end").data("not a hil console");
                            return Some((Ok(ev), st));
                        }
                        continue;
                    };
                    let line = String::from_utf8_lossy(&raw[..i]).into_owned();
                    let rest = raw[i + 1..].to_vec();
                    st.raw = None;
                    st.dec.push(&rest);
                    match Header::parse(&line) {
                        Ok(h) => {
                            let data = serde_json::json!({"run": h.run, "holder": h.holder});
                            let ev = Event::default().event("hello").data(data.to_string());
                            return Some((Ok(ev), st));
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Ok(Event::default().event("end").data(e)), st));
                        }
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The event of a frame; `None` for frames a browser has no use for.
fn event_of(f: Frame, done: &mut bool) -> Option<Event> {
    let ev = |name: &str, data: serde_json::Value| {
        Some(Event::default().event(name).data(data.to_string()))
    };
    match f {
        Frame::Data { t, bytes } => ev(
            "output",
            serde_json::json!({"t": t.as_secs_f64(), "text": String::from_utf8_lossy(&bytes)}),
        ),
        Frame::Note { t, text } => ev(
            "note",
            serde_json::json!({"t": t.as_secs_f64(), "text": text}),
        ),
        Frame::Step(s) => ev(
            "step",
            serde_json::json!({"name": s.name, "since": rfc3339(s.since), "timeout_s": s.timeout_s}),
        ),
        Frame::Skipped(n) => ev("skipped", serde_json::json!({ "bytes": n })),
        Frame::End(why) => {
            *done = true;
            Some(Event::default().event("end").data(why))
        }
        Frame::Reply(_) | Frame::Input(_) => None,
    }
}

/// The live console page's script: follows the event stream named by the `<pre>`'s
/// `data-events`, stamps each line as the run's console log does, keeps the last MiB.
pub const SCRIPT: &str = r#"
const log = document.getElementById('live');
const state = document.getElementById('live-state');
const step = document.getElementById('live-step');
const KEEP = 1 << 20;
let atStart = true;
function stamp(t) { return '[+' + t.toFixed(6).padStart(11) + '] '; }
function add(t, text, cls) {
  let out = '';
  for (const part of text.replace(/\r/g, '').split(/(\n)/)) {
    if (part === '\n') { if (atStart) out += stamp(t).trimEnd(); out += '\n'; atStart = true; continue; }
    if (part === '') continue;
    if (atStart) { out += stamp(t); atStart = false; }
    out += part;
  }
  const span = document.createElement('span');
  if (cls) span.className = cls;
  span.textContent = out;
  log.appendChild(span);
  while (log.textContent.length > KEEP && log.firstChild) log.removeChild(log.firstChild);
  // The newest line in view: the log box scrolls, and the page with it.
  log.scrollTop = log.scrollHeight;
  window.scrollTo(0, document.body.scrollHeight);
}
const es = new EventSource(log.dataset.events);
es.addEventListener('hello', e => { const d = JSON.parse(e.data); state.textContent = 'following run ' + d.run + ', held by ' + d.holder + ' (read-only)'; });
es.addEventListener('step', e => { const d = JSON.parse(e.data); step.textContent = 'step: ' + d.name + ' since ' + d.since + (d.timeout_s ? ', time-out ' + d.timeout_s + ' s' : ''); });
es.addEventListener('output', e => { const d = JSON.parse(e.data); add(d.t, d.text, null); });
es.addEventListener('note', e => { const d = JSON.parse(e.data); if (!atStart) add(d.t, '\n', null); add(d.t, '### hil: ' + d.text + '\n', 'hil'); });
es.addEventListener('skipped', e => { const d = JSON.parse(e.data); add(0, '\n[' + d.bytes + ' bytes skipped: this page fell behind]\n', 'hil'); });
es.addEventListener('end', e => { state.textContent = 'ended: ' + e.data; es.close(); });
"#;
