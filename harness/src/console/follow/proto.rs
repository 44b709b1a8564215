//! The follow protocol, over a Unix stream socket.
//!
//! The run speaks first, one header line of tab-separated `key=value` fields:
//!
//! ```text
//! HIL-FOLLOW/1<TAB>run=<run id><TAB>input=yes|no<TAB>holder=<the lease's holder>\n
//! ```
//!
//! then frames in both directions: a kind byte, the time in microseconds (u64, big
//! endian; for output, since the console log's t=0, the stamp the log gives it), the
//! payload length (u32, big endian) and the payload:
//!
//! | kind | from     | payload                                                      |
//! |------|----------|--------------------------------------------------------------|
//! | `D`  | run      | board output, bytes as they arrived                          |
//! | `N`  | run      | a marker line of hil's own, as in the log (UTF-8)            |
//! | `S`  | run      | bytes this follower missed by falling behind (u64, BE)       |
//! | `R`  | run      | a reply to this follower's input (refused, not sent) (UTF-8) |
//! | `P`  | run      | the step the run is at: [`Step`], tab-separated (UTF-8)      |
//! | `E`  | run      | the run let go of the board: why (UTF-8); nothing follows    |
//! | `I`  | follower | typed input                                                  |
//!
//! Fields never hold a tab or a newline (they are replaced by spaces when written).
//! A follower that connects gets the current step right after the header, then the
//! backlog; `hil serve` reads no more than that to show what a run is doing.

use std::time::Duration;

pub const MAGIC: &str = "HIL-FOLLOW/1";

/// The longest header line a follower reads.
pub const MAX_HEADER: usize = 4096;

/// The largest payload accepted; more is a broken peer, not a chunk of console output.
pub const MAX_PAYLOAD: usize = 1 << 20;

const FRAME_HEAD: usize = 1 + 8 + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub run: String,
    /// The holder as the lease describes it.
    pub holder: String,
    /// Whether the holder lets followers type (`hil run --console-input`).
    pub input: bool,
}

fn field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

impl Header {
    pub fn encode(&self) -> String {
        format!(
            "{MAGIC}\trun={}\tinput={}\tholder={}\n",
            field(&self.run),
            if self.input { "yes" } else { "no" },
            field(&self.holder)
        )
    }

    /// Parses a header line (with or without its newline).
    pub fn parse(line: &str) -> Result<Header, String> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = line.split('\t');
        if parts.next() != Some(MAGIC) {
            return Err(format!(
                "not a hil follow socket, or another version (expected {MAGIC}): {:?}",
                line.chars().take(80).collect::<String>()
            ));
        }
        let (mut run, mut holder, mut input) = (None, None, None);
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k {
                "run" => run = Some(v.to_string()),
                "holder" => holder = Some(v.to_string()),
                "input" => {
                    input = Some(match v {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(format!("input={v}: expected yes or no")),
                    })
                }
                // Later versions may add fields; this one has no use for them.
                _ => {}
            }
        }
        Ok(Header {
            run: run.ok_or("header without run=")?,
            holder: holder.ok_or("header without holder=")?,
            input: input.ok_or("header without input=")?,
        })
    }
}

/// The step a run is at on a board: `boot`, a check's name, `teardown`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// Unix seconds when it started.
    pub since: f64,
    /// Its time-out, when it has one.
    pub timeout_s: Option<f64>,
}

impl Step {
    fn encode(&self) -> String {
        let timeout = self.timeout_s.map_or("-".to_string(), |t| format!("{t}"));
        format!(
            "name={}\tsince={}\ttimeout_s={timeout}",
            field(&self.name),
            self.since
        )
    }

    fn parse(text: &str) -> Result<Step, String> {
        let (mut name, mut since, mut timeout_s) = (None, None, None);
        for p in text.split('\t') {
            match p.split_once('=') {
                Some(("name", v)) => name = Some(v.to_string()),
                Some(("since", v)) => since = v.parse().ok(),
                Some(("timeout_s", v)) => timeout_s = Some(v.parse().ok()),
                _ => {}
            }
        }
        Ok(Step {
            name: name.ok_or("step frame without name=")?,
            since: since.ok_or("step frame without since=")?,
            timeout_s: timeout_s.flatten(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Data { t: Duration, bytes: Vec<u8> },
    Note { t: Duration, text: String },
    Skipped(u64),
    Reply(String),
    Step(Step),
    End(String),
    Input(Vec<u8>),
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, t, payload): (u8, Duration, std::borrow::Cow<[u8]>) = match self {
            Frame::Data { t, bytes } => (b'D', *t, bytes.as_slice().into()),
            Frame::Note { t, text } => (b'N', *t, text.as_bytes().into()),
            Frame::Skipped(n) => (b'S', Duration::ZERO, n.to_be_bytes().to_vec().into()),
            Frame::Reply(text) => (b'R', Duration::ZERO, text.as_bytes().into()),
            Frame::Step(s) => (b'P', Duration::ZERO, s.encode().into_bytes().into()),
            Frame::End(text) => (b'E', Duration::ZERO, text.as_bytes().into()),
            Frame::Input(bytes) => (b'I', Duration::ZERO, bytes.as_slice().into()),
        };
        let mut out = Vec::with_capacity(FRAME_HEAD + payload.len());
        out.push(kind);
        out.extend_from_slice(&(t.as_micros() as u64).to_be_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// Frames out of a byte stream that arrives in pieces of any size.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Consumed bytes at the front of `buf`, dropped in one go when it is worth it.
    start: usize,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `None` until one has arrived; an error for a stream that is
    /// not this protocol (the connection is then useless).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        let b = &self.buf[self.start..];
        if b.len() < FRAME_HEAD {
            return Ok(None);
        }
        let kind = b[0];
        let t = Duration::from_micros(u64::from_be_bytes(b[1..9].try_into().expect("8 bytes")));
        let len = u32::from_be_bytes(b[9..13].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD {
            return Err(format!(
                "frame of {len} bytes, over the limit of {MAX_PAYLOAD}"
            ));
        }
        if b.len() < FRAME_HEAD + len {
            return Ok(None);
        }
        let p = &b[FRAME_HEAD..FRAME_HEAD + len];
        let text = || String::from_utf8_lossy(p).into_owned();
        let f = match kind {
            b'D' => Frame::Data {
                t,
                bytes: p.to_vec(),
            },
            b'N' => Frame::Note { t, text: text() },
            b'S' => Frame::Skipped(u64::from_be_bytes(
                p.try_into()
                    .map_err(|_| format!("skip frame of {len} bytes, expected 8"))?,
            )),
            b'R' => Frame::Reply(text()),
            b'P' => Frame::Step(Step::parse(&text())?),
            b'E' => Frame::End(text()),
            b'I' => Frame::Input(p.to_vec()),
            k => return Err(format!("unknown frame kind {k:#04x}")),
        };
        self.start += FRAME_HEAD + len;
        Ok(Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_frame_round_trips() {
        for timeout_s in [Some(120.0), None] {
            let s = Step {
                name: "nvme\tio".into(),
                since: 1764650000.25,
                timeout_s,
            };
            let mut d = Decoder::default();
            d.push(&Frame::Step(s.clone()).encode());
            let Some(Frame::Step(back)) = d.next_frame().unwrap() else {
                panic!("a step frame")
            };
            assert_eq!(back.name, "nvme io");
            assert_eq!((back.since, back.timeout_s), (s.since, timeout_s));
        }
    }

    #[test]
    fn header_round_trips_and_never_carries_a_tab_or_newline_of_a_field() {
        let h = Header {
            run: "20261202-0513\tx".into(),
            holder: "job manual (ann@lab1, pid 42, run r)\n".into(),
            input: true,
        };
        let line = h.encode();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let back = Header::parse(&line).unwrap();
        assert_eq!(back.run, "20261202-0513 x");
        assert_eq!(back.holder, "job manual (ann@lab1, pid 42, run r) ");
        assert!(back.input);
        let ro = Header { input: false, ..h };
        assert!(!Header::parse(&ro.encode()).unwrap().input);
    }

    #[test]
    fn a_header_of_something_else_is_refused_saying_what_was_expected() {
        let e = Header::parse("SSH-2.0-OpenSSH_9.2\r\n").unwrap_err();
        assert!(e.contains("expected HIL-FOLLOW/1"), "{e}");
        let e = Header::parse("HIL-FOLLOW/1\trun=r\tholder=h").unwrap_err();
        assert_eq!(e, "header without input=");
        // A field a later version adds is ignored.
        let h = Header::parse("HIL-FOLLOW/1\trun=r\tinput=no\tholder=h\tcolour=blue\n").unwrap();
        assert_eq!(
            (h.run.as_str(), h.holder.as_str(), h.input),
            ("r", "h", false)
        );
    }

    #[test]
    fn frames_round_trip_through_a_stream_split_at_every_byte() {
        let frames = vec![
            Frame::Data {
                t: Duration::from_micros(1_234_567),
                bytes: b"U-Boot\r\n\xff\x00".to_vec(),
            },
            Frame::Note {
                t: Duration::from_micros(2_000_001),
                text: "power off".into(),
            },
            Frame::Skipped(70_000),
            Frame::Reply("input refused".into()),
            Frame::Input(b"ls\r".to_vec()),
            Frame::Data {
                t: Duration::from_secs(3),
                bytes: vec![],
            },
            Frame::End("run r ended".into()),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.encode()).collect();
        for step in [1, 2, 7, 13, wire.len()] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for piece in wire.chunks(step) {
                d.push(piece);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "pieces of {step}");
        }
    }

    #[test]
    fn a_broken_stream_is_an_error_not_a_huge_allocation() {
        let mut d = Decoder::default();
        let mut bad = vec![b'D'];
        bad.extend_from_slice(&0u64.to_be_bytes());
        bad.extend_from_slice(&u32::MAX.to_be_bytes());
        d.push(&bad);
        assert!(d.next_frame().unwrap_err().contains("over the limit"));
        let mut d = Decoder::default();
        let mut unknown = vec![b'Z'];
        unknown.extend_from_slice(&[0; 12]);
        d.push(&unknown);
        assert!(d
            .next_frame()
            .unwrap_err()
            .contains("unknown frame kind 0x5a"));
        let mut d = Decoder::default();
        d.push(
            &Frame::Data {
                t: Duration::ZERO,
                bytes: vec![1, 2, 3],
            }
            .encode()[..10],
        );
        assert_eq!(d.next_frame().unwrap(), None);
    }
}
