//! Build progress: indicatif bars on a terminal, one plain line per phase otherwise
//! (CI logs and pipes get no control characters).

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::time::{Duration, Instant};

pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

pub(crate) struct Step {
    bar: Option<ProgressBar>,
    label: String,
    start: Instant,
}

impl Progress {
    pub fn new(bars: bool) -> Self {
        Self {
            multi: bars.then(MultiProgress::new),
        }
    }

    /// A free-form message (above the bars when drawing them).
    pub fn note(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("lab: {msg}"));
            }
            None => eprintln!("lab: {msg}"),
        }
    }

    /// A phase with a spinner (or a "lab: label…" line).
    pub fn step(&self, label: &str) -> Step {
        self.start(label, None)
    }

    /// A phase counting `len` items (e.g. packages) with a bar.
    pub fn counted(&self, label: &str, len: u64) -> Step {
        self.start(label, Some(len))
    }

    fn start(&self, label: &str, len: Option<u64>) -> Step {
        let bar = self.multi.as_ref().map(|m| {
            let (bar, tpl) = match len {
                Some(n) => (
                    ProgressBar::new(n),
                    "{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}",
                ),
                None => (ProgressBar::new_spinner(), "{spinner} {msg} {elapsed}"),
            };
            let style = ProgressStyle::with_template(tpl)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = m.add(bar.with_style(style).with_message(label.to_string()));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("lab: {label}…");
        }
        Step {
            bar,
            label: label.to_string(),
            start: Instant::now(),
        }
    }
}

impl Step {
    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    /// Ends the phase with a result summary (sizes etc.) and the elapsed time.
    pub fn done(self, detail: &str) {
        let secs = self.start.elapsed().as_secs_f64();
        let sep = if detail.is_empty() { "" } else { ": " };
        let line = format!("{}{sep}{detail} ({secs:.1} s)", self.label);
        match &self.bar {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("✔ {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.finish_with_message(line);
            }
            None => eprintln!("lab: {line}"),
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A phase abandoned by an error: do not leave a spinning bar behind.
        if let Some(b) = &self.bar {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}
