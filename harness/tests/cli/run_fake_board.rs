//! The run's command line on the fake board: `--check` subsets, the plain progress lines a
//! CI log gets, and the completion scripts and manual page generated from the parser.

use crate::common::*;
use crate::fake_board::{suite, Fake, BOARD, LIMIT};
use crate::sim::{case, wait_exit};

/// The names of a board's cases in results.json, in order.
fn case_names(r: &serde_json::Value) -> Vec<String> {
    r["boards"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_runs_only_the_named_checks_and_the_reports_say_so() {
    let fake = Fake::new(|t| t);
    let out = fake.out("subset");
    let (mut g, rx) = fake.spawn(
        &suite("fake-pass"),
        &out,
        &["--check", "ssh-exit-status", "--check", "kernel"],
    );
    let code = wait_exit(&mut g, LIMIT);
    let r = crate::sim::read_json(&out.join("results.json"));
    assert_eq!(code, 0, "{r:#}");
    // Suite order, with the boot they need; shell-state is not run at all.
    assert_eq!(
        case_names(&r),
        ["boot", "kernel", "ssh-exit-status"],
        "{r:#}"
    );
    assert_eq!(case(&r, BOARD, "kernel")["outcome"], "pass");
    assert_eq!(
        r["checks_selected"],
        serde_json::json!(["kernel", "ssh-exit-status"])
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Subset of the suite: only `kernel`, `ssh-exit-status` (`--check`)."),
        "{summary}"
    );
    assert!(!summary.contains("shell-state"), "{summary}");

    // Not a terminal: a line when each step starts (with its time-out) and one when it
    // ends (with its time), in order.
    let lines: Vec<String> = rx.try_iter().map(|(_, l)| l).collect();
    let find = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in {lines:#?}"))
    };
    let order = [
        find("hil: fake-board: ▶ lease"),
        find("hil: fake-board: ✔ lease ("),
        find("hil: fake-board: ▶ prepare"),
        find("hil: fake-board: ✔ prepare ("),
        find("hil: fake-board: ▶ boot (time-out "),
        find("hil: fake-board: ✔ boot ("),
        find("hil: fake-board: ▶ kernel (time-out 10 s)"),
        find("hil: fake-board: ✔ kernel ("),
        find("hil: fake-board: ▶ ssh-exit-status (time-out 10 s)"),
        find("hil: fake-board: ✔ ssh-exit-status ("),
        find("hil: fake-board: ▶ teardown (time-out "),
        find("hil: fake-board: ✔ teardown ("),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{lines:#?}");
    assert!(
        lines.iter().all(|l| !l.contains("shell-state")),
        "{lines:#?}"
    );
    let kernel_end = &lines[order[7]];
    assert!(kernel_end.ends_with(" s)"), "{kernel_end}");
}

#[test]
fn an_unknown_check_is_a_usage_error_naming_the_suite_and_its_checks() {
    let fake = Fake::new(|t| t);
    let out = fake.out("unknown");
    let env = fake.env();
    let o = run(hil()
        .args([
            "run",
            &suite("fake-pass"),
            "--board",
            BOARD,
            "--check",
            "kernal",
        ])
        .arg("--out")
        .arg(&out)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--check kernal"), "{err}");
    assert!(err.contains("fake-pass.toml has no such check"), "{err}");
    assert!(
        err.contains("its checks are: kernel, shell-state, ssh-exit-status"),
        "{err}"
    );
    // Refused before any board is touched: no report, no lease.
    assert!(!out.join("results.json").exists());
    assert!(fake.lease().is_none());
}

/// The visible subcommands of `hil --help`.
fn subcommands() -> Vec<String> {
    let help = stdout(&run(hil().arg("--help")));
    let list = help.split("Commands:").nth(1).unwrap();
    let list = list.split("Options:").next().unwrap();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 10, "{help}");
    names
}

#[test]
fn completion_scripts_parse_and_know_every_subcommand() {
    let names = subcommands();
    let o = run(hil().args(["completions", "bash"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = stdout(&o);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hil.bash");
    std::fs::write(&path, &script).unwrap();
    let check = run(std::process::Command::new("bash").arg("-n").arg(&path));
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    for n in &names {
        let state = format!("hil__subcmd__{}", n.replace('-', "__"));
        assert!(script.contains(&state), "{n}");
    }
    for (shell, option) in [("zsh", "'*--check=[Run only"), ("fish", "run\" -l check ")] {
        let o = run(hil().args(["completions", shell]));
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let s = stdout(&o);
        assert!(
            s.contains("checklist") && s.contains(option),
            "{shell}: {s}"
        );
    }
    let o = run(hil().args(["completions", "tcsh"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_manual_page_documents_every_subcommand_and_renders() {
    let names = subcommands();
    let o = run(hil().arg("man"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let roff = stdout(&o);
    assert!(roff.contains(".TH HIL 1"), "{roff}");
    for n in &names {
        let n = n.replace('-', "\\-");
        assert!(roff.contains(&format!(".SS \"hil {n}\"")), "{n}: {roff}");
    }
    assert!(roff.contains("\\-\\-check <NAME>"), "{roff}");
    // Rendered by man(1) where it is installed: the page formats without warnings.
    if std::path::Path::new("/usr/bin/man").exists() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("hil.1");
        std::fs::write(&page, &roff).unwrap();
        let o = run(std::process::Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0"));
        assert!(o.status.success(), "{}", stderr(&o));
        // man(1) emboldens by overstriking (`x\bx`) when its output is not a terminal.
        let text = regex::Regex::new(".\x08")
            .unwrap()
            .replace_all(&stdout(&o), "")
            .to_string();
        assert!(text.contains("hil run [OPTIONS] <SUITE>"), "{text}");
        assert!(text.contains("--check <NAME>"), "{text}");
        assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    }
}
