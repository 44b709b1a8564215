use super::console::{self, class_for_test};
use super::render;
use crate::outcome::Outcome;
use crate::report::{Attempt, BoardReport, CaseReport, RunReport};
use std::path::Path;

fn case(name: &str, kind: &str, outcome: Outcome, started_s: f64, duration_s: f64) -> CaseReport {
    CaseReport {
        name: name.into(),
        kind: kind.into(),
        outcome,
        message: String::new(),
        duration_s,
        started_s,
        figures: Default::default(),
        console: String::new(),
        attempts: Vec::new(),
        flaky: false,
        timeout_s: Some(30.0),
    }
}

/// Two boards: `b1` with a boot, a pass with figures and a failure (retried once, with
/// console evidence holding markup); `b2` with a pass only.
fn report(complete: bool) -> RunReport {
    let mut boot = case("boot", "boot", Outcome::Pass, 0.5, 5.0);
    boot.timeout_s = Some(100.0);
    let mut uname = case("uname", "shell", Outcome::Pass, 6.0, 1.0);
    uname.figures.insert("rate".into(), serde_json::json!(12.5));
    uname
        .figures
        .insert("unit".into(), serde_json::json!("MB/s"));
    let mut dmesg = case("dmesg", "shell", Outcome::Fail, 8.0, 2.0);
    dmesg.message = "found </pre> <b>bold</b>".into();
    dmesg.console = "<script>alert(1)</script></pre>\nKernel panic".into();
    dmesg.attempts.push(Attempt {
        outcome: Outcome::Fail,
        message: "first try".into(),
        duration_s: 0.8,
        started_s: 7.0,
        console: String::new(),
    });
    let other = case("ping", "ping", Outcome::Pass, 1.0, 1.0);
    RunReport {
        run_id: "r1".into(),
        suite: "smoke".into(),
        suite_file: "suites/smoke.toml".into(),
        harness_version: "0.1.0".into(),
        started: "2026-12-01T10:00:00Z".into(),
        complete,
        duration_s: 12.0,
        exit_code: complete.then_some(1),
        checks_selected: None,
        boards: vec![
            BoardReport {
                name: "b1".into(),
                properties: [("console_gaps".to_string(), "1".to_string())].into(),
                cases: vec![boot, uname, dmesg],
            },
            BoardReport {
                name: "b2".into(),
                properties: Default::default(),
                cases: vec![other],
            },
        ],
    }
}

/// b1's log: its t=0 one second after the run's start, so log time = run time - 1.
const LOG: &str = "# hil console log: board b1; t=0 is 2026-12-01T10:00:01Z; [+seconds] per line\n\
[+   0.000100] ### hil: power on (console /dev/pts/3)\r\n\
[+   0.500000] U-Boot 2024.01\r\n\
[+   5.500000] Linux version 6.1\r\n\
[+   6.000000] first attempt output\r\n\
[+   7.000000] dmesg start\r\n\
[+   7.100000] Kernel panic - not syncing: Fatal exception\r\n\
[+   7.200000] <script>alert(2)</script></pre>\r\n\
[+   7.300000] ### hil: console gap: 0.5 s without transport (x; lost)\r\n\
[+   7.400000] Call trace:\r\n";

fn write_log(dir: &Path, board: &str, text: &str) {
    let d = dir.join("boards").join(board);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("console.log"), text).unwrap();
}

fn page(complete: bool, log: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "b1", log);
    render(&report(complete), dir.path())
}

/// The text of the line the element with `id` sits on in the log.
fn line_after<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!("id=\"{id}\"")).expect(id);
    let rest = &html[at..];
    &rest[..rest.find('\n').unwrap_or(rest.len())]
}

#[test]
fn one_bar_per_case_and_per_attempt() {
    let html = page(true, LOG);
    let r = report(true);
    let expected: usize = r.cases().map(|(_, c)| 1 + c.attempts.len()).sum();
    assert_eq!(html.matches("class=\"bar ").count(), expected, "{html}");
    assert_eq!(html.matches("class=\"bar attempt ").count(), 1);
    // Every case has a limit: one dashed limit rect per bar.
    assert_eq!(html.matches("class=\"limit\"").count(), expected);
    // Not colour alone: the symbol and the word are in each bar's label.
    assert!(html.contains("✘ fail · dmesg (attempt 1)"), "{html}");
    assert!(html.contains("✔ pass · uname"));
    // Bars link to the rows, which exist.
    assert!(html.contains("href=\"#case-b1-dmesg\""));
    assert!(html.contains("<tr id=\"case-b1-dmesg\""));
    // The gap marker of the log is drawn.
    assert_eq!(html.matches("<rect class=\"gap\"").count(), 1);
}

#[test]
fn first_failure_sits_on_the_failing_cases_death_line() {
    let html = page(true, LOG);
    assert_eq!(html.matches("id=\"first-failure\"").count(), 1);
    assert!(html.contains("href=\"#first-failure\""));
    let line = line_after(&html, "first-failure");
    assert!(line.contains("Kernel panic - not syncing"), "{line}");
    // The case's own anchor stays where its part of the log starts.
    assert!(line_after(&html, "log-b1-dmesg").contains("dmesg start"));
    // Other cases' anchors: boot on the first stamped line, uname at run 6 s = log 5 s.
    assert!(line_after(&html, "log-b1-boot").contains("### hil: power on"));
    assert!(line_after(&html, "log-b1-uname").contains("Linux version"));
    assert!(html.contains("href=\"#log-b1-dmesg\""));
}

#[test]
fn board_text_is_escaped() {
    let html = page(true, LOG);
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>bold"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;/pre&gt;"));
    assert!(html.contains("&lt;script&gt;alert(2)"));
    assert!(html.contains("found &lt;/pre&gt; &lt;b&gt;bold"));
    // Every <pre> the page opens is closed once: none came from the board.
    assert_eq!(html.matches("<pre").count(), html.matches("</pre>").count());
}

#[test]
fn figures_and_evidence_are_in_the_table() {
    let html = page(true, LOG);
    assert!(html.contains("rate=12.5"));
    assert!(html.contains("unit=MB/s"));
    assert!(html.contains("<pre class=\"evidence\">&lt;script&gt;"));
    assert!(html.contains("attempt 1: ✘ fail, 0.8 s: first try"));
}

#[test]
fn marker_and_death_lines_get_their_classes() {
    let html = page(true, LOG);
    assert!(html.contains("<span class=\"hil\">[+   0.000100] ### hil: power on"));
    assert!(html.contains("<span class=\"death\">[+   7.100000] Kernel panic"));
    assert!(html.contains("<span class=\"death\">[+   7.400000] Call trace:"));
    assert!(html.contains("<span>[+   0.500000] U-Boot"));
    for l in [
        "[+ 1.0] Oops: 0000",
        "[+ 1.0] BUG: soft lockup",
        "Unable to handle kernel NULL",
    ] {
        assert_eq!(class_for_test(l), Some("death"), "{l}");
    }
    assert_eq!(class_for_test("[+ 1.0] all fine"), None);
}

#[test]
fn a_large_log_is_cut_to_head_and_tail_with_a_link() {
    let mut log = String::from(
        "# hil console log: board b1; t=0 is 2026-12-01T10:00:01Z; [+seconds] per line\n",
    );
    let mut i = 0u64;
    while log.len() < 3 << 20 {
        log.push_str(&format!(
            "[+{:>11.6}] line {i} of a long log\r\n",
            i as f64 * 0.001
        ));
        i += 1;
    }
    log.push_str("[+  999.000000] the very last line\r\n");
    let html = page(true, &log);
    assert!(html.len() < 1536 << 10, "{} bytes", html.len());
    assert!(html.contains("bytes left out here"));
    assert!(html.contains("<a href=\"boards/b1/console.log\">boards/b1/console.log</a> ...]"));
    assert!(html.contains("line 0 of a long log"));
    assert!(html.contains("the very last line"));
}

#[test]
fn a_header_in_the_left_out_part_times_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::from("# hil console log: board b1; t=0 is 2026-12-01T10:00:00Z; x\n");
    while log.len() < 1 << 20 {
        log.push_str("[+   0.100000] filler\n");
    }
    // A power cycle: the second log starts 100 s into the run.
    log.push_str("# hil console log: board b1; t=0 is 2026-12-01T10:01:40Z; x\n");
    for _ in 0..40_000 {
        log.push_str("[+   0.000001] before\n");
    }
    log.push_str("[+   5.000000] late case here\n");
    let p = dir.path().join("console.log");
    std::fs::write(&p, &log).unwrap();
    let text = console::read_log(&p).unwrap();
    let tail = text.tail.as_ref().expect("cut");
    assert!(tail.header.as_deref().unwrap().contains("10:01:40Z"));
    let anchors = [console::Anchor {
        started_s: 104.0,
        id: "late".into(),
        first_failure: false,
    }];
    let r = console::render(&text, "2026-12-01T10:00:00Z", &anchors, "x");
    assert_eq!(r.placed, ["late"]);
    let html = r.markup.into_string();
    assert!(line_after(&html, "late").contains("late case here"));
}

#[test]
fn an_unparseable_log_start_gives_no_anchors_and_the_row_is_the_target() {
    let log = LOG.replace("2026-12-01T10:00:01Z", "sometime");
    let html = page(true, &log);
    assert!(!html.contains("id=\"log-b1-"));
    assert_eq!(html.matches("id=\"first-failure\"").count(), 1);
    let row = html.find("<tr id=\"case-b1-dmesg\"").unwrap();
    let target = html.find("id=\"first-failure\"").unwrap();
    assert!(target > row && target < row + 200, "{html}");
}

#[test]
fn a_failure_without_a_death_line_in_its_part_targets_its_row() {
    // A failed value on a healthy console: no death line in the case's part.
    let log = LOG
        .replace(
            "[+   7.100000] Kernel panic - not syncing: Fatal exception\r\n",
            "[+   7.100000] readback differs at 0x1000\r\n",
        )
        .replace("Call trace:", "done");
    let html = page(true, &log);
    assert_eq!(html.matches("id=\"first-failure\"").count(), 1);
    let row = html.find("<tr id=\"case-b1-dmesg\"").unwrap();
    let target = html.find("id=\"first-failure\"").unwrap();
    assert!(target > row && target < row + 200, "{html}");
    // The case's part of the log is still linked from its row.
    assert!(html.contains("href=\"#log-b1-dmesg\""));
}

#[test]
fn an_incomplete_run_says_so() {
    assert!(page(false, LOG).contains("run still going or killed"));
    let done = page(true, LOG);
    assert!(!done.contains("run still going or killed"));
    assert!(done.contains("complete"));
    assert!(done.contains("✘ fail: 1"));
    assert!(done.contains("✔ pass: 3"));
}

#[test]
fn no_network_and_no_script() {
    let html = page(true, LOG);
    assert!(!html.contains("<script"));
    assert!(!html.contains(" src="));
    assert!(!html.contains("href=\"http"));
    assert!(!html.contains("url("));
    assert!(!html.contains("<link"));
}
