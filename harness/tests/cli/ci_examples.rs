//! The CI examples in examples/ci/ run as a runner would run them: their script lines, taken
//! from the files themselves, in a shell with the variables GitLab's runner and Jenkins'
//! agent set, `hil` on PATH, on the fake board. Each holds the board for a few seconds
//! (suite fake-hold), long enough to see the lease name the CI job.

use crate::common::*;
use crate::fake_board::{suite, Fake, BOARD, LIMIT};
use crate::sim::{junit_consumer, Guard};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn example(name: &str) -> String {
    std::fs::read_to_string(repo().join("examples/ci").join(name)).unwrap()
}

/// The `script:` items of the hidden job `.hil` in the GitLab example.
fn gitlab_script_lines(yaml: &str) -> Vec<String> {
    let job = yaml
        .split("\n.hil:\n")
        .nth(1)
        .expect("a .hil job in gitlab-ci.yml");
    let script = job
        .split("\n  script:\n")
        .nth(1)
        .expect("a script: in the .hil job");
    script
        .lines()
        .map_while(|l| l.strip_prefix("    - "))
        .map(str::to_string)
        .collect()
}

/// Where the GitLab example keeps the JUnit report (`reports: junit:`).
fn gitlab_junit_path(yaml: &str) -> String {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("junit: "))
        .expect("a junit: report")
        .to_string()
}

/// The script of the Jenkins example's `sh(returnStatus: true, script: '...')`.
fn jenkins_script(groovy: &str) -> String {
    let after = groovy
        .split("sh(returnStatus: true, script: '")
        .nth(1)
        .expect("an sh step in the Jenkinsfile");
    after.split("')").next().unwrap().to_string()
}

/// Runs `script` in `sh -e` in `workdir`, `hil` first on PATH, with `vars` and the fake
/// lab's environment; waits until the lease names `job`, then for the end. Returns the
/// exit status.
fn run_as_runner(
    fake: &Fake,
    workdir: &Path,
    script: &str,
    vars: &[(&str, String)],
    job: &str,
) -> i32 {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hil"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-ec", script])
        .current_dir(workdir)
        .env("PATH", path)
        .env_remove("HIL_DATABASE_URL")
        .env_remove("HIL_JOB")
        .env_remove("CI_JOB_ID")
        .env_remove("BUILD_TAG")
        .env_remove("GITHUB_RUN_ID")
        .envs(fake.env())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(workdir.join("job.log")).unwrap());
    let mut g = Guard(cmd.spawn().expect("sh"));
    let deadline = Instant::now() + LIMIT;
    let holder = loop {
        if let Some(rec) = fake.lease() {
            break rec.owner;
        }
        if let Some(st) = g.0.try_wait().unwrap() {
            panic!(
                "the job ended ({st}) before its lease was seen: {}",
                std::fs::read_to_string(workdir.join("job.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no lease within {LIMIT:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(holder.job, job, "the lease names the CI job");
    crate::sim::wait_exit(&mut g, LIMIT)
}

#[test]
fn the_gitlab_example_runs_the_suite_under_the_job_id_and_leaves_its_junit_artifact() {
    let yaml = example("gitlab-ci.yml");
    let lines = gitlab_script_lines(&yaml);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hil run ") && l.contains("--wait")),
        "{lines:?}"
    );
    let fake = Fake::new(|t| t);
    let project = tempfile::tempdir().unwrap();
    let vars = [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".to_string()),
        ("CI_JOB_ID", "4711".to_string()),
        ("CI_PROJECT_DIR", project.path().display().to_string()),
        ("HIL_BOARD", BOARD.to_string()),
        ("HIL_SUITE", suite("fake-hold")),
        ("HIL_PRIORITY", "0".to_string()),
    ];
    let code = run_as_runner(&fake, project.path(), &lines.join("\n"), &vars, "4711");
    let log = std::fs::read_to_string(project.path().join("job.log")).unwrap();
    assert_eq!(code, 0, "{log}");
    let junit = project
        .path()
        .join(gitlab_junit_path(&yaml).replace("$CI_JOB_ID", "4711"));
    let parsed = junit_consumer(&junit);
    assert!(
        parsed.lines().any(|l| l.starts_with("hold pass")),
        "{parsed}"
    );
    assert!(fake.lease().is_none(), "the board is given back");
}

#[test]
fn the_jenkins_example_runs_the_suite_under_the_build_tag_and_leaves_its_junit_file() {
    let groovy = example("Jenkinsfile");
    let script = jenkins_script(&groovy);
    assert!(
        script.contains("hil run ") && script.contains("--wait"),
        "{script}"
    );
    let fake = Fake::new(|t| t);
    let workspace = tempfile::tempdir().unwrap();
    let tag = "jenkins-lab-smoke-42";
    let vars = [
        ("BUILD_TAG", tag.to_string()),
        ("BUILD_NUMBER", "42".to_string()),
        ("JENKINS_URL", "http://127.0.0.1:8080/".to_string()),
        ("WORKSPACE", workspace.path().display().to_string()),
        ("BOARD", BOARD.to_string()),
        ("HIL_SUITE", suite("fake-hold")),
    ];
    let code = run_as_runner(&fake, workspace.path(), &script, &vars, tag);
    let log = std::fs::read_to_string(workspace.path().join("job.log")).unwrap();
    assert_eq!(code, 0, "{log}");
    // The path the Jenkinsfile's junit step reads.
    assert!(groovy.contains("junit testResults: \"reports/${env.BUILD_TAG}-${BOARD}/junit.xml\""));
    let junit = workspace
        .path()
        .join(format!("reports/{tag}-{BOARD}/junit.xml"));
    let parsed = junit_consumer(&junit);
    assert!(
        parsed.lines().any(|l| l.starts_with("hold pass")),
        "{parsed}"
    );
}
