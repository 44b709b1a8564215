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
        writeln!(
            file,
            "# hil console log: {title}; t=0 is {now}; [+seconds] per line"
        )?;
        Ok(ConsoleLog {
            file,
            start: Instant::now(),
            at_line_start: true,
            scratch: Vec::new(),
        })
    }

    /// Appends `data` (any bytes; not required to be UTF-8).
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        // One chunk arrived at one instant: its stamp is formatted once, not per line, and
        // lines are found with memchr (SIMD) and copied whole. A float format per line, then
        // a per-byte split, were in turn most of the logging cost on a fast console.
        let mut stamp = [0u8; 32];
        let mut stamp_len = 0;
        let mut from = 0;
        while from < data.len() {
            let end = memchr::memchr(b'\n', &data[from..]).map_or(data.len(), |i| from + i + 1);
            if self.at_line_start {
                if stamp_len == 0 {
                    stamp_len = format_stamp(self.start.elapsed(), &mut stamp);
                }
                self.scratch.extend_from_slice(&stamp[..stamp_len]);
            }
            self.scratch.extend_from_slice(&data[from..end]);
            self.at_line_start = data[end - 1] == b'\n';
            from = end;
        }
        self.file.write_all(&self.scratch)
    }

    /// A marker line of hil's own (gap, power events), distinguishable from board output.
    pub fn mark(&mut self, what: &str) -> io::Result<()> {
        let prefix = if self.at_line_start { "" } else { "\n" };
        let t = self.start.elapsed().as_secs_f64();
        self.at_line_start = true;
        writeln!(self.file, "{prefix}[+{t:>11.6}] ### hil: {what}")
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
