//! The documentation's commands are kept true: every `hil ...` line quoted in a code block
//! of README.md and docs/*.md names a command hil has, and every `--option` on it is one
//! that command's `--help` lists. A renamed subcommand or flag fails here, not for the
//! reader.

use crate::common::*;

/// (file, line) of each quoted command line, as the words after `hil`.
fn quoted_commands() -> Vec<(String, Vec<String>)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut in_code = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let l = line.trim_start().trim_start_matches("$ ");
            let rest = l
                .strip_prefix("hil ")
                .or_else(|| l.strip_prefix("cargo run --release -- "));
            let Some(rest) = rest else { continue };
            let rest = rest.split(" # ").next().unwrap_or("");
            let words = rest.split_whitespace().map(str::to_string).collect();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            found.push((format!("{name}:{}", n + 1), words));
        }
    }
    found
}

fn help(path: &[&str]) -> Option<String> {
    let mut c = hil();
    c.args(path).arg("--help");
    let o = run(&mut c);
    o.status.success().then(|| stdout(&o))
}

/// The subcommands `--help` lists under "Commands:".
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn every_command_the_docs_quote_exists_with_the_options_they_show() {
    let quoted = quoted_commands();
    assert!(
        quoted.len() >= 20,
        "only {} quoted hil commands found: {quoted:?}",
        quoted.len()
    );
    let mut checked = 0;
    for (at, words) in &quoted {
        let Some(first) = words.first() else { continue };
        let mut path = vec![first.as_str()];
        let Some(mut text) = help(&path) else {
            panic!("{at}: `hil {first}` is not a hil command ({words:?})");
        };
        // Descend while the next word is a subcommand of this one.
        for w in &words[1..] {
            if subcommands(&text).iter().any(|s| s == w) {
                path.push(w);
                text = help(&path).unwrap_or_else(|| panic!("{at}: hil {path:?} --help failed"));
            } else {
                break;
            }
        }
        for w in words {
            let flag = w
                .trim_start_matches(['[', '('])
                .split(['=', ']', ')', ','])
                .next()
                .unwrap_or("");
            if flag.starts_with("--") && flag.len() > 2 && !flag.ends_with("...") {
                assert!(
                    text.contains(flag),
                    "{at}: `hil {}` has no option {flag}",
                    path.join(" ")
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, quoted.len());
}
