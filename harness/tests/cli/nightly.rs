//! `hil nightly` on the sim lab: both sim boards, a good build then a regressed one; the
//! second run names the newly failing check.

use crate::bisect::make_builds;
use crate::common::*;
use crate::sim::{lock, out_dir, read_json, spawn_hil, wait_exit, BOOT_LIMIT};

#[test]
fn nightly_writes_junit_per_board_and_names_the_new_failure() {
    let _l = lock();
    let manifest = make_builds("nightly-builds", 2, 2, 0);
    let builds = manifest.parent().unwrap();
    let dir = out_dir("nightly");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("lab.toml");
    std::fs::write(
        &lab,
        format!(
            "name = \"e2e\"\nboards = [\"sim-rk3588\", \"sim-rcar\"]\nsuites = [\"{}\"]\nhistory = \"history.sqlite\"\n",
            repo().join("suites/nvme-driver.toml").display()
        ),
    )
    .unwrap();
    let night = |n: &str, build: &str| {
        let out = dir.join(n);
        let images = builds.join(build);
        let (mut g, _rx) = spawn_hil(
            &[
                "nightly",
                lab.to_str().unwrap(),
                "--images",
                images.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        (wait_exit(&mut g, BOOT_LIMIT), out)
    };

    let (code, out) = night("night-1", "build-01");
    let changes = read_json(&out.join("changes.json"));
    assert_eq!(code, 0, "first night; changes: {changes:#}");
    assert_eq!(changes["baseline"], false);
    for board in ["sim-rk3588", "sim-rcar"] {
        let xml = std::fs::read_to_string(out.join(format!("junit-{board}.xml"))).unwrap();
        assert!(
            xml.contains(&format!("testsuite name=\"{board}/nvme-driver\"")),
            "{xml}"
        );
        let other = if board == "sim-rcar" {
            "sim-rk3588"
        } else {
            "sim-rcar"
        };
        assert!(
            !xml.contains(&format!("testsuite name=\"{other}/")),
            "{xml}"
        );
    }
    let merged = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(merged.contains("sim-rk3588/nvme-driver") && merged.contains("sim-rcar/nvme-driver"));
    assert!(!merged.contains("<failure"), "{merged}");

    // Tonight's build lost its NVMe driver.
    let (code, out) = night("night-2", "build-02");
    let changes = read_json(&out.join("changes.json"));
    assert_eq!(code, 1, "second night; changes: {changes:#}");
    assert_eq!(changes["baseline"], true);
    let new: Vec<String> = changes["new_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f[0]["board"].as_str().unwrap(),
                f[0]["check"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        new,
        ["sim-rcar/nvme-driver", "sim-rk3588/nvme-driver"],
        "{changes:#}"
    );
    assert!(changes["fixed"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out.join("changes.md")).unwrap();
    assert!(md.contains("## New failures (2)"), "{md}");
    assert!(md.contains("sim-rk3588/nvme-driver/nvme-driver"), "{md}");
    let merged = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(merged.matches("<failure").count(), 2, "{merged}");
}
