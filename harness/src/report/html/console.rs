//! The board's console log in the page: every line escaped, hil's marker lines and kernel
//! death lines marked, an anchor where each case's part of the log starts.
//!
//! Line stamps count from the `t=0` of the header above them (each power-on opens the log
//! again and writes a new header), case starts count from the run's start; the difference
//! of the two absolute times maps one onto the other. Where either cannot be parsed, the
//! log is shown without anchors.

use maud::{html, Markup};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A log up to this size is shown whole.
pub const WHOLE_MAX: u64 = 1 << 20;
/// A larger one: this much of its start...
pub const HEAD: u64 = 256 << 10;
/// ...and this much of its end.
pub const TAIL: u64 = 512 << 10;

const HEADER: &str = "# hil console log";
const MARK: &str = "### hil:";
/// The marker written when the console's transport is back: `console gap: 3.2 s without...`.
const GAP_MARK: &str = "### hil: console gap: ";
/// What the kernel prints when it dies or is about to: worth finding at a glance.
const DEATH: &[&str] = &[
    "Kernel panic",
    "Oops",
    "Call trace",
    "BUG:",
    "Unable to handle kernel",
];

/// The part of a log the page shows.
pub struct LogText {
    pub head: String,
    pub tail: Option<Tail>,
}

/// The end of a log too large to show whole.
pub struct Tail {
    /// Bytes between the head and the tail that are not shown.
    pub left_out: u64,
    pub text: String,
    /// The last header line among the bytes left out: the tail's stamps count from it.
    pub header: Option<String>,
}

/// Where a case's part of the log starts, in run seconds.
pub struct Anchor {
    pub started_s: f64,
    pub id: String,
    pub first_failure: bool,
}

/// The rendered log, the ids of the anchors it holds and the console gaps its markers
/// tell of (start and length in run seconds).
pub struct Rendered {
    pub markup: Markup,
    pub placed: Vec<String>,
    pub gaps: Vec<(f64, f64)>,
    /// Whether the `first-failure` target is in the log: the first kernel death line
    /// within the first failed case's part. Without one (a check that failed over SSH, a
    /// wrong value on a healthy console) the failure is told by the case's row, which is
    /// then the target.
    pub first_failure_placed: bool,
}

/// Reads the log, or its head and tail when it is larger than [`WHOLE_MAX`].
pub fn read_log(path: &Path) -> std::io::Result<LogText> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len <= WHOLE_MAX {
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        return Ok(LogText {
            head: String::from_utf8_lossy(&buf).into_owned(),
            tail: None,
        });
    }
    let head = read_range(&mut f, 0, HEAD)?;
    let head_end = head.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let tail_from = len - TAIL;
    let tail = read_range(&mut f, tail_from, TAIL)?;
    let skip = memchr::memchr(b'\n', &tail).map_or(0, |p| p + 1);
    let tail_start = tail_from + skip as u64;
    let header = last_header_in(&mut f, head_end as u64, tail_start)?;
    Ok(LogText {
        head: String::from_utf8_lossy(&head[..head_end]).into_owned(),
        tail: Some(Tail {
            left_out: tail_start - head_end as u64,
            text: String::from_utf8_lossy(&tail[skip..]).into_owned(),
            header,
        }),
    })
}

fn read_range(f: &mut std::fs::File, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The last header line that starts within `from..to`, scanned in chunks so a huge log is
/// never held whole.
fn last_header_in(f: &mut std::fs::File, from: u64, to: u64) -> std::io::Result<Option<String>> {
    const CHUNK: u64 = 1 << 20;
    let finder = memchr::memmem::Finder::new(HEADER.as_bytes());
    let mut found = None;
    let mut at = from;
    // `from` is a line start; later chunks start wherever the previous one ended.
    let mut before = b'\n';
    while at < to {
        // The chunk is read a line's worth longer, so a header across its end is whole.
        let want = (to - at).min(CHUNK);
        let buf = read_range(f, at, want + 512)?;
        for p in finder.find_iter(&buf) {
            let line_start = if p == 0 { before } else { buf[p - 1] } == b'\n';
            if p < want as usize && line_start {
                let end = memchr::memchr(b'\n', &buf[p..]).map_or(buf.len(), |e| p + e);
                found = Some(String::from_utf8_lossy(&buf[p..end]).into_owned());
            }
        }
        before = buf.get(want as usize - 1).copied().unwrap_or(b'\n');
        at += want;
    }
    Ok(found)
}

/// The absolute time of a header line's `t=0`.
fn header_t0(line: &str) -> Option<OffsetDateTime> {
    let rest = &line[line.find("t=0 is ")? + "t=0 is ".len()..];
    let end = rest.find(';').unwrap_or(rest.len());
    OffsetDateTime::parse(rest[..end].trim(), &Rfc3339).ok()
}

/// Seconds since the log's `t=0` and the text, of a line `[+   12.345678] text`.
fn stamp(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix("[+")?;
    let close = rest.find(']')?;
    let t = rest[..close].trim().parse().ok()?;
    let text = rest[close + 1..]
        .strip_prefix(' ')
        .unwrap_or(&rest[close + 1..]);
    Some((t, text))
}

/// The class of a line: hil's header or marker, a kernel death line, or none.
fn class_of(line: &str) -> Option<&'static str> {
    if line.starts_with(HEADER) {
        return Some("hil hdr");
    }
    let text = stamp(line).map_or(line, |(_, t)| t);
    if text.starts_with(MARK) {
        Some("hil")
    } else if DEATH.iter().any(|d| text.contains(d)) {
        Some("death")
    } else {
        None
    }
}

/// Maps log lines onto run time and places the anchors on them.
struct Placer<'a> {
    run_start: Option<OffsetDateTime>,
    /// Run seconds at the current header's `t=0`.
    offset: Option<f64>,
    anchors: &'a [Anchor],
    next: usize,
    /// Inside the first failed case's part of the log, looking for its death line.
    hunting: bool,
    first_failure_placed: bool,
}

impl<'a> Placer<'a> {
    fn header(&mut self, line: &str) {
        self.offset = match (self.run_start, header_t0(line)) {
            (Some(run), Some(t0)) => Some((t0 - run).as_seconds_f64()),
            _ => None,
        };
    }

    /// The run seconds of a stamped line, when the log's time is known.
    fn run_time(&self, line: &str) -> Option<f64> {
        self.offset.and_then(|o| stamp(line).map(|(s, _)| o + s))
    }

    /// A gap marker's gap, which ended when the line was written.
    fn gap(&self, line: &str) -> Option<(f64, f64)> {
        let end = self.run_time(line)?;
        let text = stamp(line)?.1.strip_prefix(GAP_MARK)?;
        let secs: f64 = text.split(' ').next()?.parse().ok()?;
        Some((end - secs, secs))
    }

    /// The anchors that go on this line: every case that started at or before it.
    fn take(&mut self, line: &str) -> &'a [Anchor] {
        let Some(t) = self.run_time(line) else {
            return &[];
        };
        let from = self.next;
        while self.next < self.anchors.len() && self.anchors[self.next].started_s <= t {
            self.next += 1;
        }
        &self.anchors[from..self.next]
    }
}

/// The log as a `<pre>`, one span per line. `anchors` sorted by start.
pub fn render(
    log: &LogText,
    run_started: &str,
    anchors: &[Anchor],
    whole_log_href: &str,
) -> Rendered {
    let mut placer = Placer {
        run_start: OffsetDateTime::parse(run_started, &Rfc3339).ok(),
        offset: None,
        anchors,
        next: 0,
        hunting: false,
        first_failure_placed: false,
    };
    let mut placed = Vec::new();
    let mut gaps = Vec::new();
    let head = lines(&log.head, &mut placer, &mut placed, &mut gaps);
    let tail = log.tail.as_ref().map(|t| {
        if let Some(h) = &t.header {
            placer.header(h);
        }
        (
            t.left_out,
            lines(&t.text, &mut placer, &mut placed, &mut gaps),
        )
    });
    let markup = html! {
        pre.log {
            (head)
            @if let Some((left_out, tail)) = tail {
                span.cut {
                    "[... " (left_out) " bytes left out here; the whole log: "
                    a href=(whole_log_href) { (whole_log_href) }
                    " ...]"
                }
                "\n"
                (tail)
            }
        }
    };
    Rendered {
        markup,
        placed,
        gaps,
        first_failure_placed: placer.first_failure_placed,
    }
}

fn lines(
    text: &str,
    placer: &mut Placer,
    placed: &mut Vec<String>,
    gaps: &mut Vec<(f64, f64)>,
) -> Markup {
    let mut shown = Vec::new();
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\r', '\n']);
        if line.starts_with(HEADER) {
            placer.header(line);
        }
        let here = placer.take(line);
        placed.extend(here.iter().map(|a| a.id.clone()));
        gaps.extend(placer.gap(line));
        // Another case's start ends the hunt; the failed case's own start begins it.
        if !here.is_empty() {
            placer.hunting = here.last().is_some_and(|a| a.first_failure);
        }
        let class = class_of(line);
        let failure_here = placer.hunting && class == Some("death");
        if failure_here {
            placer.hunting = false;
            placer.first_failure_placed = true;
        }
        shown.push((line, class, here, failure_here));
    }
    html! {
        @for (line, class, here, failure_here) in shown {
            @for a in here {
                a.anchor id=(a.id) {}
            }
            @if failure_here { a.anchor id="first-failure" {} }
            span class=[class] { (line) }
            "\n"
        }
    }
}

#[cfg(test)]
pub(super) fn class_for_test(line: &str) -> Option<&'static str> {
    class_of(line)
}
