//! `hil bisect` on the sim lab: eight builds made by fixtures/bisect/make-builds.sh, build
//! 06 onward with a broken nvme.ko, build 04 without a kernel (TFTP fails: an
//! infrastructure error). One board boot per step.

use crate::common::*;
use crate::sim::{lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sim lab's images directory (`hil lab build` provisions it, cached).
fn images_dir() -> PathBuf {
    let o = run(hil().args(["lab", "build", "sim-rk3588"]));
    assert!(o.status.success(), "lab build: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("images: "))
        .unwrap_or_else(|| panic!("no images line in {out}"));
    PathBuf::from(line.trim())
}

/// Builds 01..=count in a temp dir; returns the manifest.
pub fn make_builds(name: &str, count: u32, first_bad: u32, broken: u32) -> PathBuf {
    let dir = out_dir(name);
    let o = std::process::Command::new("sh")
        .arg(repo().join("fixtures/bisect/make-builds.sh"))
        .arg(images_dir())
        .arg(&dir)
        .args([count.to_string(), first_bad.to_string(), broken.to_string()])
        .output()
        .expect("sh runs");
    assert!(o.status.success(), "make-builds: {}", stderr(&o));
    dir.join("builds.toml")
}

fn step_verdicts(b: &serde_json::Value) -> Vec<(String, String, String)> {
    b["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["build"].as_str().unwrap().to_string(),
                s["purpose"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn bisect_finds_the_first_bad_build_and_skips_the_broken_one() {
    let _l = lock();
    let manifest = make_builds("bisect-builds", 8, 6, 4);
    let out = out_dir("bisect");
    let (mut g, _rx) = spawn_hil(
        &[
            "bisect",
            "--good",
            "build-01",
            "--bad",
            "build-08",
            "--builds",
            manifest.to_str().unwrap(),
            "--suite",
            "suites/nvme-driver.toml",
            "--check",
            "nvme-driver",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let code = wait_exit(&mut g, BOOT_LIMIT);
    let b = read_json(&out.join("bisect.json"));
    assert_eq!(code, 0, "bisect exit status; bisect.json: {b:#}");
    assert_eq!(b["first_bad"], "build-06", "{b:#}");
    assert_eq!(b["last_good"], "build-05", "{b:#}");
    let steps = step_verdicts(&b);
    // ⌈log2 8⌉ = 3 search tests (the skipped one among them) + 1 re-run of each end.
    let search: Vec<_> = steps.iter().filter(|s| s.1 == "search").collect();
    let confirm: Vec<_> = steps.iter().filter(|s| s.1 == "confirm").collect();
    assert!(search.len() <= 3, "{steps:?}");
    assert_eq!(confirm.len(), 2, "{steps:?}");
    // The broken build was tested, and skipped: neither good nor bad.
    let broken = steps
        .iter()
        .find(|s| s.0 == "build-04")
        .expect("build-04 tested");
    assert_eq!(broken.2, "skip", "{steps:?}");
    let reason = b["steps"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("error:infrastructure") && reason.contains("TFTP"),
        "{reason}"
    );
    for s in &confirm {
        let want = if s.0 == "build-06" { "bad" } else { "good" };
        assert_eq!(s.2, want, "{steps:?}");
    }
    // Evidence: the failing check's console slice, from the first bad build.
    let ev = b["evidence"].as_str().unwrap();
    assert!(ev.starts_with("sim-rk3588/nvme-driver: fail"), "{ev}");
    assert!(ev.contains("build-06"), "{ev}");
    // Each step's report carries the build it booted.
    let step = Path::new(b["steps"][1]["report"].as_str().unwrap());
    let r = read_json(&step.join("results.json"));
    assert_eq!(
        r["boards"][0]["properties"]["build"],
        b["steps"][1]["build"]
    );
}

#[test]
fn bisect_run_speaks_git_bisect_run() {
    let _l = lock();
    // build-01 has no kernel: a board run that ends in U-Boot's TFTP within seconds.
    let manifest = make_builds("bisect-run-builds", 2, 2, 1);
    let builds = manifest.parent().unwrap();
    let out = out_dir("bisect-run");
    let base = [
        "bisect",
        "run",
        "--suite",
        "suites/nvme-driver.toml",
        "--out",
        out.to_str().unwrap(),
    ];
    // A build hook that fails: this revision cannot be tested (125), no board is booted.
    let o = run(hil().args(base).args(["--build-hook", "exit 7"]));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        !out.join("run").exists(),
        "no board run after a failed build"
    );
    // Bad usage must stop git, not mark the revision bad.
    let o = run(hil().args(base).args(["--images"]));
    assert_eq!(o.status.code(), Some(128), "{}", stderr(&o));
    let o = run(hil()
        .args(base)
        .args(["--images", "/nonexistent/build", "--check", "nope"]));
    assert_eq!(o.status.code(), Some(128), "{}", stderr(&o));
    assert!(stderr(&o).contains("--check nope"), "{}", stderr(&o));
    // The hook "builds" (copies) a kernel-less build into $HIL_BUILD_OUT; hil boots it,
    // U-Boot's TFTP fails: lab trouble, so skip (125), not bad.
    let hook = format!("cp {}/build-01/* \"$HIL_BUILD_OUT\"/", builds.display());
    let (mut g, _rx) = spawn_hil(
        &[
            &base[..],
            &["--build-hook", &hook, "--check", "nvme-driver"],
        ]
        .concat(),
        &[],
    );
    let code = wait_exit(&mut g, Duration::from_secs(20 * 60));
    assert_eq!(code, 125, "bisect run on a build the lab cannot boot");
    let r = read_json(&out.join("run/results.json"));
    assert_eq!(r["boards"][0]["properties"]["build"], "build");
    let boot = &r["boards"][0]["cases"][0];
    assert_eq!(boot["outcome"], "error:infrastructure", "{r:#}");
    assert!(boot["message"].as_str().unwrap().contains("TFTP"), "{r:#}");
}
