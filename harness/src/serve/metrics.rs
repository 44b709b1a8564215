//! `/metrics` in the Prometheus text exposition format (version 0.0.4): for each metric
//! family a `# HELP` and a `# TYPE` line, then its samples, label values escaped (`\`,
//! `"` and newline), values as Go's `ParseFloat` reads them (`NaN`, `+Inf`, `-Inf`).

use super::boards::BoardState;
use crate::nightly::history::window::Totals;
use std::fmt::Write;

/// The content type scrapers expect for this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// The exposition being written: families in the order added, each written whole.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// A family and its samples, each (labels, value).
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: &[(Vec<(&str, &str)>, f64)],
    ) {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            self.text.push_str(name);
            if !labels.is_empty() {
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(self.text, "{{{}}}", parts.join(","));
            }
            let _ = writeln!(self.text, " {}", value(*v));
        }
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// HELP text: backslash and line feed escaped (quotes are not, in HELP).
pub fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The lab's metrics: lease state now, and totals from the history (`None` when there is
/// no history yet).
pub fn render(boards: &[BoardState], totals: Option<&Totals>) -> String {
    let mut e = Exposition::default();
    let held = boards.iter().filter(|b| b.holder.is_some()).count();
    let out = boards.iter().filter(|b| b.out_of_service.is_some()).count();
    e.family(
        "hil_boards",
        "Boards of the lab (board files, and boards the lease coordinator knows).",
        Kind::Gauge,
        &[(vec![], boards.len() as f64)],
    );
    e.family(
        "hil_boards_held",
        "Boards whose lease is held now (not expired).",
        Kind::Gauge,
        &[(vec![], held as f64)],
    );
    e.family(
        "hil_boards_out_of_service",
        "Boards out of service now.",
        Kind::Gauge,
        &[(vec![], out as f64)],
    );
    let per_board = |f: &dyn Fn(&BoardState) -> f64| -> Vec<(Vec<(&str, &str)>, f64)> {
        boards
            .iter()
            .map(|b| (vec![("board", b.board.as_str())], f(b)))
            .collect()
    };
    e.family(
        "hil_board_held",
        "1 while the board's lease is held, else 0.",
        Kind::Gauge,
        &per_board(&|b| f64::from(u8::from(b.holder.is_some()))),
    );
    e.family(
        "hil_board_out_of_service",
        "1 while the board is out of service, else 0.",
        Kind::Gauge,
        &per_board(&|b| f64::from(u8::from(b.out_of_service.is_some()))),
    );
    e.family(
        "hil_board_queue_length",
        "Runs waiting in the board's queue (live places only).",
        Kind::Gauge,
        &per_board(&|b| b.queue.len() as f64),
    );
    if let Some(t) = totals {
        let codes: Vec<String> = t
            .runs_by_exit_code
            .iter()
            .map(|(c, _)| c.to_string())
            .collect();
        e.family(
            "hil_runs_total",
            "Nightly runs recorded in the history, by exit code (0 pass, 1 fail, 3 infrastructure, 4 harness, 5 nothing tested).",
            Kind::Counter,
            &t.runs_by_exit_code
                .iter()
                .zip(&codes)
                .map(|((_, n), c)| (vec![("exit_code", c.as_str())], *n as f64))
                .collect::<Vec<_>>(),
        );
        e.family(
            "hil_results_total",
            "Check results recorded in the history, by outcome.",
            Kind::Counter,
            &t.results_by_outcome
                .iter()
                .map(|(o, n)| (vec![("outcome", o.as_str())], *n as f64))
                .collect::<Vec<_>>(),
        );
        e.family(
            "hil_board_last_boot_seconds",
            "Boot time of the board's newest recorded run (the boot step's boot_s figure).",
            Kind::Gauge,
            &t.last_boot_s
                .iter()
                .map(|(b, run, v)| (vec![("board", b.as_str()), ("run_id", run.as_str())], *v))
                .collect::<Vec<_>>(),
        );
    }
    e.finish()
}

#[cfg(test)]
pub mod parse {
    //! A reader of the text format, strict where the format is: used by the tests to
    //! prove that what `/metrics` writes reads back to the same values.

    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    #[derive(Debug, Default)]
    pub struct Parsed {
        /// name → (help, type)
        pub families: BTreeMap<String, (String, String)>,
        pub samples: Vec<Sample>,
    }

    impl Parsed {
        pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            self.samples
                .iter()
                .find(|s| {
                    s.name == name
                        && s.labels.len() == labels.len()
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|s| s.value)
        }
    }

    fn name_ok(n: &str) -> bool {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }

    /// Parses the whole text; an error names the line.
    pub fn parse(text: &str) -> Result<Parsed, String> {
        let mut p = Parsed::default();
        let mut help: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        if !text.ends_with('\n') {
            return Err("the text does not end with a line feed".into());
        }
        for (i, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("line {}: {why}: {line:?}", i + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, h) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("HELP without text"))?;
                if !name_ok(name) || help.contains_key(name) {
                    return Err(bad("bad or repeated HELP"));
                }
                let mut out = String::new();
                let mut it = h.chars();
                while let Some(c) = it.next() {
                    if c == '\\' {
                        match it.next() {
                            Some('\\') => out.push('\\'),
                            Some('n') => out.push('\n'),
                            _ => return Err(bad("bad escape in HELP")),
                        }
                    } else {
                        out.push(c);
                    }
                }
                help.insert(name.into(), out);
                current = Some(name.into());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, t) = rest
                    .split_once(' ')
                    .ok_or_else(|| bad("TYPE without type"))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(bad("unknown type"));
                }
                if current.as_deref() != Some(name) || p.families.contains_key(name) {
                    return Err(bad("TYPE not right after its HELP"));
                }
                p.families
                    .insert(name.into(), (help[name].clone(), t.into()));
            } else if line.starts_with('#') || line.is_empty() {
                return Err(bad("a line that is neither HELP, TYPE nor a sample"));
            } else {
                let s = sample(line).map_err(|e| bad(&e))?;
                if current.as_deref() != Some(s.name.as_str()) || !p.families.contains_key(&s.name)
                {
                    return Err(bad("a sample outside its family's block"));
                }
                if p.samples
                    .iter()
                    .any(|o| o.name == s.name && o.labels == s.labels)
                {
                    return Err(bad("a repeated sample"));
                }
                p.samples.push(s);
            }
        }
        Ok(p)
    }

    fn sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
        let name = &line[..name_end];
        if !name_ok(name) {
            return Err("bad metric name".into());
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            loop {
                let start = chars.peek().map(|(i, _)| *i).ok_or("unclosed labels")?;
                if r[start..].starts_with('}') {
                    rest = &r[start + 1..];
                    break;
                }
                let eq = r[start..].find("=\"").ok_or("label without =\"")? + start;
                let key = &r[start..eq];
                if !name_ok(key) {
                    return Err(format!("bad label name {key:?}"));
                }
                while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
                    chars.next();
                }
                let mut v = String::new();
                loop {
                    match chars.next().ok_or("unclosed label value")?.1 {
                        '\\' => match chars.next().ok_or("escape at end")?.1 {
                            '\\' => v.push('\\'),
                            '"' => v.push('"'),
                            'n' => v.push('\n'),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        '"' => break,
                        '\n' => return Err("raw newline in a label value".into()),
                        c => v.push(c),
                    }
                }
                if labels.insert(key.to_string(), v).is_some() {
                    return Err(format!("label {key} twice"));
                }
                match chars.peek() {
                    Some((_, ',')) => {
                        chars.next();
                    }
                    Some((_, '}')) => {}
                    _ => return Err("expected , or } after a label".into()),
                }
            }
        }
        let v = rest.strip_prefix(' ').ok_or("no space before the value")?;
        let value = match v {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
        };
        Ok(Sample {
            name: name.into(),
            labels,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse::parse;
    use super::*;
    use crate::serve::boards::{Holder, QueueEntry};

    fn board(name: &str) -> BoardState {
        BoardState {
            board: name.into(),
            has_file: true,
            holder: None,
            queue: Vec::new(),
            out_of_service: None,
            infra_errors_in_a_row: 0,
            error: None,
            step: None,
            live_console: None,
        }
    }

    #[test]
    fn the_lab_metrics_read_back_with_their_values_and_types() {
        let mut held = board("b\"1\\\nx");
        held.holder = Some(Holder {
            job: "j".into(),
            user: "u".into(),
            host: "h".into(),
            pid: 1,
            run_id: "r".into(),
            since: "2026-12-02T00:00:00Z".into(),
            heartbeat: "2026-12-02T00:00:10Z".into(),
            heartbeat_age_s: 1.0,
            expires_in_s: 30.0,
        });
        held.queue = vec![
            QueueEntry {
                job: "a".into(),
                user: "u".into(),
                host: "h".into(),
                pid: 2,
                run_id: "ra".into(),
                priority: 5,
                waiting_s: 3.0,
            };
            2
        ];
        let mut out = board("b2");
        out.out_of_service = Some(crate::serve::boards::Service {
            reason: "relay".into(),
            since: "2026-12-02T00:00:00Z".into(),
            by: "me@h".into(),
        });
        let totals = Totals {
            runs_by_exit_code: vec![(0, 17), (1, 3)],
            results_by_outcome: vec![("error:infrastructure".into(), 1), ("pass".into(), 40)],
            last_boot_s: vec![("b2".into(), "r20".into(), 1.25)],
        };
        let text = render(&[held, out, board("b3")], Some(&totals));
        let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.get("hil_boards", &[]), Some(3.0));
        assert_eq!(p.get("hil_boards_held", &[]), Some(1.0));
        assert_eq!(p.get("hil_boards_out_of_service", &[]), Some(1.0));
        // The awkward board name reads back as it was.
        assert_eq!(
            p.get("hil_board_queue_length", &[("board", "b\"1\\\nx")]),
            Some(2.0)
        );
        assert_eq!(
            p.get("hil_board_held", &[("board", "b\"1\\\nx")]),
            Some(1.0)
        );
        assert_eq!(
            p.get("hil_board_queue_length", &[("board", "b3")]),
            Some(0.0)
        );
        assert_eq!(
            p.get("hil_board_out_of_service", &[("board", "b2")]),
            Some(1.0)
        );
        assert_eq!(p.get("hil_runs_total", &[("exit_code", "1")]), Some(3.0));
        assert_eq!(
            p.get("hil_results_total", &[("outcome", "error:infrastructure")]),
            Some(1.0)
        );
        assert_eq!(
            p.get(
                "hil_board_last_boot_seconds",
                &[("board", "b2"), ("run_id", "r20")]
            ),
            Some(1.25)
        );
        assert_eq!(p.families["hil_runs_total"].1, "counter");
        assert_eq!(p.families["hil_boards_held"].1, "gauge");
        assert!(p.families["hil_runs_total"].0.contains("by exit code"));
        // Without a history: the lease metrics only.
        let p = parse(&render(&[board("b")], None)).unwrap();
        assert!(!p.families.contains_key("hil_runs_total"));
        assert_eq!(p.get("hil_board_held", &[("board", "b")]), Some(0.0));
    }

    #[test]
    fn escapes_and_special_values_follow_the_format() {
        let mut e = Exposition::default();
        e.family(
            "x_total",
            "a \\ help\nline with \"quotes\"",
            Kind::Counter,
            &[
                (vec![("l", "a\"b"), ("m", "c\\d\ne")], f64::NAN),
                (vec![("l", "p")], f64::INFINITY),
                (vec![], -0.5),
            ],
        );
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total a \\\\ help\\nline with \"quotes\"\n# TYPE x_total counter\n\
             x_total{l=\"a\\\"b\",m=\"c\\\\d\\ne\"} NaN\nx_total{l=\"p\"} +Inf\nx_total -0.5\n"
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.families["x_total"].0, "a \\ help\nline with \"quotes\"");
        assert!(p
            .get("x_total", &[("l", "a\"b"), ("m", "c\\d\ne")])
            .unwrap()
            .is_nan());
        assert_eq!(p.get("x_total", &[("l", "p")]), Some(f64::INFINITY));
        assert_eq!(p.get("x_total", &[]), Some(-0.5));
        // The reader is strict: a sample before its TYPE, or a raw quote, is refused.
        assert!(parse("x 1\n").is_err());
        assert!(parse("# HELP x h\n# TYPE x gauge\nx{l=\"a\"b\"} 1\n").is_err());
    }
}
