//! `hil ssh BOARD [COMMAND...]`: one command on the board over its `[ssh]` target (host,
//! port, user, identity and pinned host key from the board file), under the board's lease.
//! Its output (stdout and stderr together, bounded as a check's is) goes to stdout and hil
//! exits with its exit status. Without a command, hil prints the system `ssh` command line
//! for an interactive shell with the same values and a known_hosts file holding only the
//! pinned key, so the shell checks the same host key a run does.

use crate::config::{expand, Board};
use crate::outcome::exit;
use crate::ssh::{SshError, SshTarget};
use base64::Engine;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub async fn cli(
    (path, board): &(PathBuf, Board),
    command: &[String],
    timeout: Duration,
) -> anyhow::Result<i32> {
    let dir = PathBuf::from("reports").join("ssh").join(&board.name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    // Absolute: the printed `ssh` command works from any directory.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let board = if board.simulated {
        crate::lab_ctl::sim_board(path, board).await?.0
    } else {
        let mut vars = expand::Vars::new();
        vars.insert("cache", crate::lab::cache_root()?.display().to_string());
        vars.insert("run_dir", dir.display().to_string());
        board.expanded(path, &vars)?
    };
    let Some(target) = board.ssh_target(path)? else {
        return Err(crate::error::UsageError(format!(
            "board {} has no [ssh] table; hil ssh needs the board's host, port, user, identity and pinned host key",
            board.name
        ))
        .into());
    };
    if command.is_empty() {
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, known_hosts_line(&target) + "\n")?;
        println!("{}", interactive_command(&target, &known_hosts));
        if super::held(&board.name) {
            eprintln!(
                "hil: note: board {} is in use ({}); a shell now may disturb its holder",
                board.name,
                super::lease_line(&board.name)
            );
        }
        return Ok(exit::OK);
    }
    let _lease = super::take_lease(&board, "ssh").await?;
    let connect = Duration::from_secs(board.ssh.as_ref().map_or(30, |s| s.connect_timeout_s));
    let cmd = crate::shell::join(command);
    let log = dir.join("ssh.log");
    let status = run(
        &target,
        &cmd,
        connect,
        timeout,
        &log,
        &mut std::io::stdout(),
    )
    .await?;
    Ok(status)
}

/// Runs `cmd` on the board, writes its output to `out`, returns its exit status.
pub async fn run(
    target: &SshTarget,
    cmd: &str,
    connect: Duration,
    timeout: Duration,
    log: &Path,
    out: &mut dyn Write,
) -> Result<i32, SshError> {
    let session = target.connect(connect, log).await?;
    let o = session.exec(cmd, timeout).await?;
    let _ = out.write_all(o.output.as_bytes());
    let _ = out.flush();
    Ok(o.status)
}

/// `[host]:port type base64`: OpenSSH's known_hosts entry for the pinned key.
pub fn known_hosts_line(t: &SshTarget) -> String {
    let key_type = t
        .host_key
        .get(4..)
        .and_then(|rest| {
            let n = u32::from_be_bytes(t.host_key.get(..4)?.try_into().ok()?) as usize;
            std::str::from_utf8(rest.get(..n)?).ok()
        })
        .unwrap_or("ssh-ed25519");
    let host = if t.port == 22 {
        t.host.clone()
    } else {
        format!("[{}]:{}", t.host, t.port)
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&t.host_key);
    format!("{host} {key_type} {b64}")
}

/// The system `ssh` command for an interactive shell on the board.
pub fn interactive_command(t: &SshTarget, known_hosts: &Path) -> String {
    shell_words::join([
        "ssh".to_string(),
        "-p".into(),
        t.port.to_string(),
        "-i".into(),
        t.identity.display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        format!("{}@{}", t.user, t.host),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use crate::boot::State;
    use crate::fake_board::tests::test_board;

    #[tokio::test]
    async fn a_command_prints_its_output_and_returns_its_status() {
        let tb = test_board(
            r#"[[fake.command]]
match = "^probe-link$"
output = "link up"
status = 5"#,
            |t| t,
        );
        // The fake board's SSH server runs while the board is powered.
        let mut s = tb.session();
        s.reach(State::LinuxSsh).await.unwrap();
        let target = tb.board.ssh_target(&tb.path).unwrap().unwrap();
        let log = tb.dir.path().join("verb-ssh.log");
        let t = Duration::from_secs(5);
        let mut out = Vec::new();
        let status = run(&target, "probe-link", t, t, &log, &mut out)
            .await
            .unwrap();
        assert_eq!(
            (String::from_utf8(out).unwrap().as_str(), status),
            ("link up\n", 5)
        );
        let mut out = Vec::new();
        let cmd = shell_words::join(["sh", "-c", "echo 'two words'; exit 0"]);
        let status = run(&target, &cmd, t, t, &log, &mut out).await.unwrap();
        assert_eq!(
            (String::from_utf8(out).unwrap().as_str(), status),
            ("two words\n", 0)
        );
        s.power_off().await.unwrap();

        // The board off: its SSH port is refused until ssh.connect_timeout_s.
        let e = run(
            &target,
            "true",
            Duration::from_secs(1),
            t,
            &log,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, SshError::Unreachable { .. }), "{e}");

        let line = known_hosts_line(&target);
        assert!(
            line.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", target.port)),
            "{line}"
        );
        let cmd = interactive_command(&target, Path::new("/tmp/kh"));
        assert!(
            cmd.starts_with(&format!(
                "ssh -p {} -i {}",
                target.port,
                target.identity.display()
            )) && cmd.ends_with(
                "-o 'UserKnownHostsFile=/tmp/kh' -o 'StrictHostKeyChecking=yes' root@127.0.0.1"
            ),
            "{cmd}"
        );
    }
}
