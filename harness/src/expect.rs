//! The async expect engine: waits on a console stream for one of several patterns, with a
//! per-call timeout, a bounded search window, and death patterns that end the wait at once.
//!
//! Matching is incremental: each arriving chunk is searched together with only a short
//! lookback of what came before (back to the start of the previous line, at most 4 KiB),
//! so the cost per byte stays flat however long the stream. A match may therefore span at
//! most one line break into text already searched. All patterns of a call (awaited and
//! death) are searched in one pass of one combined regex; the individual patterns are
//! consulted only to tell which one matched.

use crate::console::Event;
use regex::bytes::Regex;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// How far back a match may start before the newest chunk (patterns are line-sized).
const LOOKBACK: usize = 4096;
/// Unconsumed text kept at most; older bytes are dropped (they are in the log on disk).
const WINDOW: usize = 1 << 20;
/// Queued output taken in before one search: a quarter of the window, so the window's
/// trimming never drops bytes that were not searched yet. The console broker yields to
/// its subscribers after publishing as much.
pub const BURST: usize = WINDOW / 4;

/// A pattern that means the board died: it aborts whatever step is waiting.
#[derive(Debug, Clone)]
pub struct DeathPattern {
    pub name: String,
    pub re: Regex,
}

impl DeathPattern {
    pub fn new(name: &str, re: &str) -> DeathPattern {
        DeathPattern {
            name: name.into(),
            re: Regex::new(re).expect("built-in death pattern"),
        }
    }
}

/// Death patterns of a running Linux kernel (DOMAIN.md): panic, Oops, and a bootloader
/// banner (the board reset underneath us).
pub fn linux_death_patterns() -> Vec<DeathPattern> {
    vec![
        DeathPattern::new("kernel panic", r"Kernel panic - not syncing"),
        DeathPattern::new("kernel oops", r"Internal error: Oops"),
        DeathPattern::new(
            "unexpected bootloader banner (board reset)",
            r"U-Boot 20\d\d",
        ),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum ExpectError {
    /// None of the patterns appeared in time.
    #[error("timed out after {waited:?} waiting for {wanted}; last output: {tail:?}")]
    Timeout {
        waited: Duration,
        wanted: String,
        tail: String,
    },
    /// The console went away.
    #[error("{reason}; last output: {tail:?}")]
    Closed { reason: String, tail: String },
    /// A death pattern matched; `line` is the whole line it matched in.
    #[error("{name}: {line}")]
    Death { name: String, line: String },
}

#[derive(Debug)]
pub struct Matched {
    /// Which of the given patterns matched.
    pub index: usize,
    /// Output before the match (since the previous match), possibly truncated to WINDOW.
    pub before: Vec<u8>,
    pub matched: Vec<u8>,
}

pub struct Expecter {
    rx: UnboundedReceiver<Event>,
    /// The combined regex of the current call's patterns and the death patterns, keyed by
    /// their sources (repeated calls with the same patterns reuse it).
    combined: Option<(Vec<String>, Option<Regex>)>,
    buf: Vec<u8>,
    /// Bytes of `buf` already searched without a match by the current call.
    searched: usize,
    closed: Option<String>,
    pub death: Vec<DeathPattern>,
}

impl Expecter {
    pub fn new(rx: UnboundedReceiver<Event>, death: Vec<DeathPattern>) -> Expecter {
        Expecter {
            rx,
            combined: None,
            buf: Vec::new(),
            searched: 0,
            closed: None,
            death,
        }
    }

    /// Waits until one of `patterns` matches, a death pattern matches, the stream closes
    /// or `timeout` passes. The earliest match in the stream wins, so a death line printed
    /// after the awaited prompt is left for the next call.
    pub async fn expect(
        &mut self,
        patterns: &[&Regex],
        timeout: Duration,
    ) -> Result<Matched, ExpectError> {
        let deadline = crate::config::limits::deadline_after(timeout);
        // One timer for the whole call, not one per chunk received.
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        self.searched = 0;
        self.prepare(patterns);
        loop {
            if let Some(m) = self.search(patterns) {
                return m;
            }
            self.searched = self.buf.len();
            if let Some(reason) = &self.closed {
                return Err(ExpectError::Closed {
                    reason: reason.clone(),
                    tail: self.tail(),
                });
            }
            let received = if Instant::now() >= deadline {
                // Checked here too: on a console that floods, the queue may never run dry,
                // so the receive below never waits and the timer would never be polled.
                Err(())
            } else {
                tokio::select! {
                    // Output already queued wins over a deadline that passed meanwhile.
                    biased;
                    ev = self.rx.recv() => Ok(ev),
                    () = &mut expired => Err(()),
                }
            };
            match received {
                Err(()) => {
                    let wanted = patterns
                        .iter()
                        .map(|p| format!("/{}/", p.as_str()))
                        .collect::<Vec<_>>()
                        .join(" or ");
                    return Err(ExpectError::Timeout {
                        waited: timeout,
                        wanted,
                        tail: self.tail(),
                    });
                }
                Ok(Some(Event::Data(d))) => self.push(&d),
                // hil's own notes (a console gap) are not board output.
                Ok(Some(Event::Notice(_))) => {}
                Ok(Some(Event::Closed(r))) => self.closed = Some(r),
                Ok(None) => self.closed = Some("console broker stopped".into()),
            }
            // Take what is already queued before searching again: one search per burst. A
            // burst is cut at BURST, so the window's trimming in `push` never drops bytes
            // that were not searched yet.
            while self.buf.len() - self.searched < BURST {
                let Ok(ev) = self.rx.try_recv() else { break };
                match ev {
                    Event::Data(d) => self.push(&d),
                    Event::Notice(_) => {}
                    Event::Closed(r) => {
                        self.closed = Some(r);
                        break;
                    }
                }
            }
        }
    }

    /// Waits for a death pattern or the end of the stream only (used to watch a board
    /// while a check talks to it some other way, such as SSH). Never returns Ok.
    pub async fn watch(&mut self) -> ExpectError {
        match self.expect(&[], Duration::from_secs(u64::MAX / 4)).await {
            Err(e) => e,
            Ok(_) => unreachable!("no patterns to match"),
        }
    }

    /// Discards everything received so far (e.g. before typing a new command).
    pub fn clear(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            if let Event::Closed(r) = ev {
                self.closed = Some(r);
            }
        }
        self.buf.clear();
        self.searched = 0;
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > WINDOW {
            let cut = self.buf.len() - WINDOW / 2;
            self.buf.drain(..cut);
            self.searched = self.searched.saturating_sub(cut);
        }
    }

    /// Builds (or reuses) the one regex that finds the earliest match of any pattern.
    fn prepare(&mut self, patterns: &[&Regex]) {
        let key: Vec<String> = patterns
            .iter()
            .map(|p| p.as_str())
            .chain(self.death.iter().map(|d| d.re.as_str()))
            .map(String::from)
            .collect();
        if self.combined.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        let source = key
            .iter()
            .map(|k| format!("(?:{k})"))
            .collect::<Vec<_>>()
            .join("|");
        // Each part compiled on its own, so this fails only on size limits; the search
        // then falls back to one pass per pattern.
        let re = (!key.is_empty())
            .then(|| Regex::new(&source).ok())
            .flatten();
        self.combined = Some((key, re));
    }

    /// Where this search starts: the start of the line before the last line already
    /// searched, at most LOOKBACK bytes back.
    fn search_start(&self) -> usize {
        let floor = self.searched.saturating_sub(LOOKBACK);
        let mut breaks = memchr::memrchr_iter(b'\n', &self.buf[floor..self.searched]);
        match (breaks.next(), breaks.next()) {
            (Some(_), Some(i)) => floor + i + 1,
            _ => floor,
        }
    }

    fn search(&mut self, patterns: &[&Regex]) -> Option<Result<Matched, ExpectError>> {
        let start = self.search_start();
        let combined = self.combined.as_ref().and_then(|(_, re)| re.as_ref());
        let from = match combined {
            // Nothing anywhere: the common case, one pass.
            Some(re) => re.find_at(&self.buf, start)?.start(),
            None => start,
        };
        // (position, end, pattern index or death index)
        let mut best: Option<(usize, usize, Result<usize, usize>)> = None;
        let mut consider = |s: usize, e: usize, what: Result<usize, usize>| {
            if best.is_none_or(|(bs, _, _)| s < bs) {
                best = Some((s, e, what));
            }
        };
        for (i, p) in patterns.iter().enumerate() {
            if let Some(m) = p.find_at(&self.buf, from) {
                consider(m.start(), m.end(), Ok(i));
            }
        }
        for (i, d) in self.death.iter().enumerate() {
            if let Some(m) = d.re.find_at(&self.buf, from) {
                consider(m.start(), m.end(), Err(i));
            }
        }
        let (s, e, what) = best?;
        Some(match what {
            Ok(index) => {
                let matched = self.buf[s..e].to_vec();
                let before = self.buf[..s].to_vec();
                self.buf.drain(..e);
                self.searched = 0;
                Ok(Matched {
                    index,
                    before,
                    matched,
                })
            }
            Err(di) => {
                let line_start = self.buf[..s]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |p| p + 1);
                let line_end = self.buf[e..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(self.buf.len(), |p| e + p);
                let line = String::from_utf8_lossy(&self.buf[line_start..line_end])
                    .trim()
                    .to_string();
                Err(ExpectError::Death {
                    name: self.death[di].name.clone(),
                    line,
                })
            }
        })
    }

    fn tail(&self) -> String {
        let from = self.buf.len().saturating_sub(200);
        crate::text::clean(&self.buf[from..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn data(s: &str) -> Event {
        Event::Data(Arc::from(s.as_bytes()))
    }
    use std::sync::Arc;

    #[tokio::test]
    async fn matches_across_chunks_and_keeps_rest() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        tx.send(data("Hit any k")).unwrap();
        tx.send(data("ey to stop autoboot:  2 \r\n=> ")).unwrap();
        let re = Regex::new("Hit any key to stop autoboot").unwrap();
        let m = e.expect(&[&re], Duration::from_secs(1)).await.unwrap();
        assert_eq!(m.index, 0);
        let prompt = Regex::new("=> $").unwrap();
        let m = e.expect(&[&prompt], Duration::from_secs(1)).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&m.before), ":  2 \r\n");
    }

    #[tokio::test]
    async fn death_pattern_aborts_with_whole_line() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        tx.send(data(
            "[   12.0] Kernel panic - not syncing: sysrq triggered crash\r\n",
        ))
        .unwrap();
        let re = Regex::new("never").unwrap();
        match e.expect(&[&re], Duration::from_secs(5)).await {
            Err(ExpectError::Death { name, line }) => {
                assert_eq!(name, "kernel panic");
                assert!(
                    line.ends_with("Kernel panic - not syncing: sysrq triggered crash"),
                    "{line}"
                );
            }
            other => panic!("expected death, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn earlier_prompt_wins_over_later_death() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        tx.send(data("done\n/ # Kernel panic - not syncing: x\n"))
            .unwrap();
        let re = Regex::new("# ").unwrap();
        assert!(e.expect(&[&re], Duration::from_secs(1)).await.is_ok());
        assert!(matches!(
            e.expect(&[&re], Duration::from_secs(1)).await,
            Err(ExpectError::Death { .. })
        ));
    }

    #[tokio::test]
    async fn timeout_and_close_are_distinct() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, vec![]);
        let re = Regex::new("x").unwrap();
        tx.send(data("abc")).unwrap();
        assert!(matches!(
            e.expect(&[&re], Duration::from_millis(50)).await,
            Err(ExpectError::Timeout { .. })
        ));
        tx.send(Event::Closed("EIO".into())).unwrap();
        assert!(matches!(
            e.expect(&[&re], Duration::from_secs(1)).await,
            Err(ExpectError::Closed { .. })
        ));
    }

    #[tokio::test]
    async fn window_stays_bounded_on_a_long_stream() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        let line =
            "[    1.000000] pci 0000:00:01.0: BAR 0: assigned [mem 0x10000000-0x10003fff 64bit]\n"
                .repeat(200);
        for _ in 0..200 {
            tx.send(data(&line)).unwrap();
        }
        tx.send(data("login: ")).unwrap();
        let re = Regex::new("login: ").unwrap();
        e.expect(&[&re], Duration::from_secs(5)).await.unwrap();
        assert!(e.buf.capacity() <= 4 * WINDOW);
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn prompt_after_marker_in_pieces() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        let end = Regex::new(r"HIL_E_2_(\d+)").unwrap();
        let prompt = Regex::new(r"(?:# )(?:\x1b\[[0-9;?]*[A-Za-z])*$").unwrap();
        for c in ["HIL_S_2\r\n6.1\r\nHIL_E_2_0\r\n", "/ # ", "\x1b[6n"] {
            tx.send(Event::Data(Arc::from(c.as_bytes()))).unwrap();
        }
        e.expect(&[&end], Duration::from_secs(1)).await.unwrap();
        e.expect(&[&prompt], Duration::from_secs(1)).await.unwrap();
    }
}

#[cfg(test)]
mod combined_tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn send(tx: &mpsc::UnboundedSender<Event>, s: &str) {
        tx.send(Event::Data(Arc::from(s.as_bytes()))).unwrap();
    }

    #[tokio::test]
    async fn earliest_of_several_patterns_names_its_index() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        let (a, b) = (Regex::new("alpha").unwrap(), Regex::new(r"be(ta)").unwrap());
        send(&tx, "x beta y alpha\n");
        let m = e.expect(&[&a, &b], Duration::from_secs(1)).await.unwrap();
        assert_eq!((m.index, m.matched.as_slice()), (1, &b"beta"[..]));
        let m = e.expect(&[&a, &b], Duration::from_secs(1)).await.unwrap();
        assert_eq!(m.index, 0);
    }

    #[tokio::test]
    async fn match_spanning_one_line_break_into_searched_text() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, vec![]);
        let re = Regex::new(r"HIL_S_1\r?\nok").unwrap();
        send(&tx, &"noise line\r\n".repeat(500));
        send(&tx, "HIL_S_1\r\n");
        // The rest comes while the call waits, after the first part was searched.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            send(&tx, "ok\r\n");
        });
        e.expect(&[&re], Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_flood_that_never_lets_the_queue_run_dry_still_times_out() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        // 4 GiB of queued output (one shared 4 KiB chunk): far more than can be searched
        // in the 50 ms allowed, so the queue is never empty when the deadline passes.
        let chunk: Arc<[u8]> = Arc::from(vec![b'x'; 4096]);
        for _ in 0..(1 << 20) {
            tx.send(Event::Data(chunk.clone())).unwrap();
        }
        let r = e
            .expect(&[&Regex::new("never").unwrap()], Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(ExpectError::Timeout { .. })), "{r:?}");
        assert!(
            e.rx.try_recv().is_ok(),
            "timed out only after draining the whole flood"
        );
    }

    #[tokio::test]
    async fn a_queued_burst_longer_than_the_window_is_searched_in_full() {
        // A reader that fell behind finds megabytes queued at once. The awaited line sits
        // 1.2 MiB into a 3 MiB burst: trimming the window to its last MiB before searching
        // would drop it and the call would time out.
        let (tx, rx) = mpsc::unbounded_channel();
        let mut e = Expecter::new(rx, linux_death_patterns());
        let chunk =
            "[    1.000000] pci 0000:00:02.0: BAR 0 [mem 0x10000000-0x1000ffff]\r\n".repeat(512);
        let mut sent = 0;
        while sent < 3 << 20 {
            if (1200 << 10..(1200 << 10) + chunk.len()).contains(&sent) {
                send(&tx, "hil-needle\r\n");
            }
            send(&tx, &chunk);
            sent += chunk.len();
        }
        let re = Regex::new("hil-needle").unwrap();
        let m = e.expect(&[&re], Duration::from_secs(2)).await.unwrap();
        assert_eq!(m.matched, b"hil-needle");
    }
}
