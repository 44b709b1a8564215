//! The on-disk console log: every byte, as it arrives, with a timestamp per line.
//!
//! Writes go straight to the file (no userspace buffer), so a crash of hil loses nothing
//! that the board had printed. Each line starts with the arrival time of its first byte,
//! relative to the log's start; the header gives the absolute start time.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

pub struct ConsoleLog {
    file: File,
    start: Instant,
    at_line_start: bool,
    header: String,
    /// Reused for building each write, so logging does not allocate per chunk.
    scratch: Vec<u8>,
}

impl ConsoleLog {
    pub fn create(path: &Path, title: &str) -> io::Result<ConsoleLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let header = format!("# hil console log: {title}; t=0 is {now}; [+seconds] per line");
        writeln!(file, "{header}")?;
        Ok(ConsoleLog {
            file,
            header,
            start: Instant::now(),
            at_line_start: true,
            scratch: Vec::new(),
        })
    }

    /// Appends `data` (any bytes; not required to be UTF-8).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let t = self.elapsed();
        self.write_at(data, t)
    }

    /// Time since the log's t=0: the stamp a chunk arriving now gets.
    pub fn elapsed(&self) -> std::time::Duration {
        self.start.elapsed()
    }

    /// The header line the log started with, without its newline.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Appends `data` that arrived at `t` (from [`Self::elapsed`]): the broker takes the
    /// time once and gives the same stamp to the log and to the run's followers.
    pub fn write_at(&mut self, data: &[u8], t: std::time::Duration) -> io::Result<()> {
        self.scratch.clear();
        stamp_lines(&mut self.at_line_start, t, data, &mut self.scratch);
        self.file.write_all(&self.scratch)
    }

    /// A marker line of hil's own (gap, power events), distinguishable from board output.
    pub fn mark(&mut self, what: &str) -> io::Result<()> {
        let t = self.elapsed();
        self.mark_at(what, t)
    }

    /// A marker line stamped `t` (from [`Self::elapsed`]).
    pub fn mark_at(&mut self, what: &str, t: std::time::Duration) -> io::Result<()> {
        let line = mark_line(&mut self.at_line_start, t, what);
        self.file.write_all(line.as_bytes())
    }
}

/// hil's marker line as the log has it (on a line of its own, so a newline first when the
/// board's line is unfinished); the follower's `--timestamps` prints the same.
pub fn mark_line(at_line_start: &mut bool, t: std::time::Duration, what: &str) -> String {
    let prefix = if *at_line_start { "" } else { "\n" };
    *at_line_start = true;
    format!("{prefix}[+{:>11.6}] ### hil: {what}\n", t.as_secs_f64())
}

/// Appends `data`, which arrived at `t`, to `out` with the stamp `[+SSSS.uuuuuu] ` before
/// each line it starts; `at_line_start` carries over between chunks. The log and the
/// follower's `--timestamps` share it, so both show a line with the same stamp.
pub fn stamp_lines(
    at_line_start: &mut bool,
    t: std::time::Duration,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    // One chunk arrived at one instant: its stamp is formatted once, not per line, and
    // lines are found with memchr (SIMD) and copied whole. A float format per line, then
    // a per-byte split, were in turn most of the logging cost on a fast console.
    let mut stamp = [0u8; 32];
    let mut stamp_len = 0;
    let mut from = 0;
    while from < data.len() {
        let end = memchr::memchr(b'\n', &data[from..]).map_or(data.len(), |i| from + i + 1);
        if *at_line_start {
            if stamp_len == 0 {
                stamp_len = format_stamp(t, &mut stamp);
            }
            out.extend_from_slice(&stamp[..stamp_len]);
        }
        out.extend_from_slice(&data[from..end]);
        *at_line_start = data[end - 1] == b'\n';
        from = end;
    }
}

/// `[+SSSS.uuuuuu] ` (seconds right-aligned in 4, wider past 9999 s) into `out`; returns
/// its length. The same text `{:>11.6}` of the seconds as f64 gives, without float
/// formatting.
fn format_stamp(t: std::time::Duration, out: &mut [u8; 32]) -> usize {
    let mut w = io::Cursor::new(&mut out[..]);
    let _ = write!(w, "[+{:>4}.{:06}] ", t.as_secs(), t.subsec_micros());
    w.position() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_one_timestamp_even_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.log");
        let mut log = ConsoleLog::create(&p, "t").unwrap();
        log.write(b"U-Boot 2023.01\r\nHit any").unwrap();
        log.write(b" key\r\n\xff\x00bin\n").unwrap();
        log.mark("power off").unwrap();
        let text = std::fs::read(&p).unwrap();
        let s = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = s.split('\n').collect();
        assert!(lines[0].starts_with("# hil console log"));
        assert!(lines[1].starts_with("[+") && lines[1].ends_with("U-Boot 2023.01\r"));
        assert!(lines[2].ends_with("] Hit any key\r"), "{}", lines[2]);
        assert_eq!(lines[2].matches("[+").count(), 1);
        assert!(lines[4].contains("### hil: power off"));
        assert_eq!(lines[2].find("] "), Some(13), "{}", lines[2]);
        // raw bytes preserved
        assert!(text.windows(2).any(|w| w == b"\xff\x00"));
    }
}
