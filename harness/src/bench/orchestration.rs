//! Orchestration overhead: a sim suite driven by `hil run` against a plain bash script
//! doing the same QEMU steps — the very QEMU command line hil used (read from its
//! qemu.log), the same U-Boot commands, the same Linux commands on the console, the same
//! SSH command — with no harness around them. The difference in wall time is what hil
//! costs on top of the board. Boots the sim board: run under the lab's lock.

use crate::config::{board, Board};
use anyhow::Context;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// One hil run and one script run, back to back.
#[derive(Debug, Serialize)]
pub struct OrchestrationRun {
    pub hil_wall_s: f64,
    pub script_wall_s: f64,
    /// The sim board's kernel uptime when it printed its ready line, in each run: the
    /// emulated board's own speed, which swings with the machine's load.
    pub hil_board_kernel_s: Option<f64>,
    pub script_board_kernel_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct OrchestrationResult {
    pub suite: String,
    pub board: String,
    pub runs: Vec<OrchestrationRun>,
    /// Medians over the runs.
    pub hil_wall_s: f64,
    pub script_wall_s: f64,
    pub overhead_pct: f64,
    /// Median of (hil wall − its board's boot) − (script wall − its board's boot): hil's
    /// cost with the emulated board's varying speed taken out, and that as a share of
    /// the script's median wall time.
    pub overhead_excl_board_s: Option<f64>,
    pub overhead_excl_board_pct: Option<f64>,
    /// hil's report of its run (console.log with per-line times) and the script, kept
    /// to see where the difference goes.
    pub report_dir: String,
}

impl OrchestrationResult {
    pub fn table(&self) -> String {
        format!(
            "orchestration ({} on {}, median of {} runs): hil run {:.1} s, shell script {:.1} s: overhead {:+.1}%; without the board's boot-time swings: {}\n  hil's last report and script: {}",
            self.suite,
            self.board,
            self.runs.len(),
            self.hil_wall_s,
            self.script_wall_s,
            self.overhead_pct,
            match (self.overhead_excl_board_s, self.overhead_excl_board_pct) {
                (Some(s), Some(p)) => format!("{s:+.2} s ({p:+.1}%)"),
                _ => "n/a (no kernel uptime line)".into(),
            },
            self.report_dir
        )
    }
}

pub async fn run(
    suite: &Path,
    board_name: &str,
    runs: usize,
) -> anyhow::Result<OrchestrationResult> {
    let path = board::find(board_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let raw_board = Board::load(&path)?;
    let (b, _) = crate::lab_ctl::sim_board(&path, &raw_board).await?;
    let mut all = Vec::new();
    let mut out = std::path::PathBuf::new();
    for i in 0..runs.max(1) {
        out = std::env::temp_dir().join(format!("hil-bench-orch-{}-{i}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        all.push(one_run(&b, suite, board_name, &out).await?);
        if i + 1 < runs.max(1) {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // an even count: the mean of the middle two
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    let hil = median(all.iter().map(|r| r.hil_wall_s).collect());
    let script = median(all.iter().map(|r| r.script_wall_s).collect());
    let excl: Option<Vec<f64>> = all
        .iter()
        .map(|r| {
            Some(
                (r.hil_wall_s - r.hil_board_kernel_s?)
                    - (r.script_wall_s - r.script_board_kernel_s?),
            )
        })
        .collect();
    let excl = excl.map(median);
    Ok(OrchestrationResult {
        suite: suite.display().to_string(),
        board: board_name.into(),
        runs: all,
        hil_wall_s: hil,
        script_wall_s: script,
        overhead_pct: (hil - script) / script * 100.0,
        overhead_excl_board_s: excl,
        overhead_excl_board_pct: excl.map(|e| e / script * 100.0),
        report_dir: out.display().to_string(),
    })
}

/// The board's kernel uptime at its ready line, as the sim's init prints it.
fn kernel_uptime(text: &str) -> Option<f64> {
    let re = regex::Regex::new(r"hil: kernel uptime ([0-9.]+) s").ok()?;
    re.captures(text)?.get(1)?.as_str().parse().ok()
}

async fn one_run(
    b: &Board,
    suite: &Path,
    board_name: &str,
    out: &Path,
) -> anyhow::Result<OrchestrationRun> {
    let t0 = Instant::now();
    let st = tokio::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg(suite)
        .args(["--board", board_name, "--out"])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    let hil_wall = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        st.success(),
        "hil run {} failed ({st}); see {}",
        suite.display(),
        out.display()
    );
    let board_dir = out.join("boards").join(board_name);
    let console = std::fs::read_to_string(board_dir.join("console.log")).unwrap_or_default();
    let qemu_log = board_dir.join("qemu.log");
    let log = std::fs::read_to_string(&qemu_log).with_context(|| qemu_log.display().to_string())?;
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("$ "))
        .context("no command line in qemu.log")?;
    let script = script(b, line, suite)?;
    let script_path = out.join("same-steps.sh");
    std::fs::write(&script_path, &script)?;
    let uptime_file = out.join("script-kernel-uptime.txt");

    let t0 = Instant::now();
    let st = tokio::process::Command::new("bash")
        .arg(&script_path)
        .env("HIL_BENCH_UPTIME_FILE", &uptime_file)
        .stdout(std::process::Stdio::null())
        .status()
        .await?;
    let script_wall = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        st.success(),
        "the shell script failed ({st}): {}",
        script_path.display()
    );
    let script_uptime = std::fs::read_to_string(&uptime_file).unwrap_or_default();
    Ok(OrchestrationRun {
        hil_wall_s: hil_wall,
        script_wall_s: script_wall,
        hil_board_kernel_s: kernel_uptime(&console),
        script_board_kernel_s: kernel_uptime(&script_uptime),
    })
}

/// The bash script: QEMU as a coprocess with QMP on its stdio, the console pty read in
/// 4 KiB pieces, each wait a substring test on what came since the last one.
fn script(b: &Board, qemu_line: &str, suite: &Path) -> anyhow::Result<String> {
    use shell_words::quote;
    let mut argv = shell_words::split(qemu_line)?;
    // QMP on the coprocess's stdio instead of hil's socket.
    if let Some(i) = argv.iter().position(|a| a == "-qmp") {
        argv[i + 1] = "stdio".into();
    }
    let bl = &b.bootloader;
    let linux = &b.linux;
    let ssh = b.ssh.as_ref().context("board has no [ssh]")?;
    let host_key_file = ssh
        .host_key_file
        .as_ref()
        .context("board has no ssh.host_key_file")?;
    let mut s = String::from(
        r#"#!/usr/bin/env bash
# The smoke steps without a harness (written by `hil bench`).
set -uo pipefail
err=$(mktemp); kh=$(mktemp)
coproc QEMU { exec "${argv[@]}" 2>"$err"; }
trap 'kill ${QEMU_PID:-} 2>/dev/null; rm -f "$err" "$kh"' EXIT
qmp() { # send one command, wait for its answer (skipping greetings, events, notices)
  echo "$1" >&"${QEMU[1]}"
  while IFS= read -r -t 30 line <&"${QEMU[0]}"; do
    [[ $line == *'"return"'* || $line == *'"error"'* ]] && return 0
  done
  echo "no QMP answer to $1; QEMU said:" >&2; cat "$err" >&2; exit 1
}
qmp '{"execute":"qmp_capabilities"}'
qmp '{"execute":"query-chardev"}'
[[ $line =~ pty:(/dev/pts/[0-9]+) ]] || { echo "no pty in $line" >&2; exit 1; }
pty=${BASH_REMATCH[1]}
exec 3<>"$pty"
stty -F "$pty" raw -echo
qmp '{"execute":"cont"}'
buf=
wait_for() {
  local end=$((SECONDS + $2)) chunk
  while [[ $buf != *"$1"* ]]; do
    (( SECONDS < end )) || { echo "timed out waiting for $1" >&2; exit 1; }
    chunk=
    IFS= read -r -t 0.02 -N 4096 -u 3 chunk
    buf+=$chunk
  done
  seen=${buf%%"$1"*}
  buf=${buf#*"$1"}
}
say() { printf '%s\r' "$1" >&3; }
"#,
    );
    s = s.replace(
        "\"${argv[@]}\"",
        &argv
            .iter()
            .map(|a| quote(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    );
    s += &format!("wait_for {} {}\n", quote(&bl.autoboot), bl.timeout_s);
    s += &format!("printf '%s' {} >&3\n", quote(&bl.interrupt));
    s += &format!("wait_for {} {}\n", quote(&bl.prompt), bl.timeout_s);
    let bootargs = format!("setenv bootargs '{}'", linux.bootargs.replace('\'', ""));
    for cmd in bl.commands.iter().chain([&bootargs]) {
        s += &format!(
            "say {}\nwait_for 'hil:rc=0' {t}\nwait_for {} {t}\n",
            quote(&format!("{cmd}; echo hil:rc=$?")),
            quote(&bl.prompt),
            t = bl.command_timeout_s
        );
    }
    s += &format!("say {}\n", quote(&bl.boot_command));
    if let Some(ready) = &linux.ready {
        // Keep what came before the ready line: the sim's init prints its kernel uptime.
        s += &format!(
            "before=$buf\nwait_for {} {}\nprintf '%s' \"$before$seen\" | grep -a 'hil: kernel uptime' > \"$HIL_BENCH_UPTIME_FILE\"\n",
            quote(ready),
            linux.boot_timeout_s
        );
    }
    s += &format!(
        "echo \"[{}]:{} $(cat {})\" > \"$kh\"\n",
        ssh.host,
        ssh.port,
        quote(host_key_file)
    );
    let text = std::fs::read_to_string(suite)?;
    let table: toml::Table = toml::from_str(&text)?;
    let default_via = table
        .get("defaults")
        .and_then(|d| d.get("via"))
        .and_then(|v| v.as_str())
        .unwrap_or("console")
        .to_string();
    let checks = table
        .get("check")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    for c in checks {
        let kind = c.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        anyhow::ensure!(
            kind == "shell",
            "the script replays shell checks only, not {kind:?}"
        );
        let cmd = c.get("command").and_then(|k| k.as_str()).unwrap_or("");
        let via = c
            .get("via")
            .and_then(|v| v.as_str())
            .unwrap_or(&default_via);
        let status = c
            .get("exit_status")
            .and_then(|v| v.as_integer())
            .unwrap_or(0);
        if via == "ssh" {
            // dropbear may still be starting: retry while ssh itself fails (255).
            s += &format!(
                "end=$((SECONDS + {t}))\nwhile :; do\n  ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\"$kh\" \
                 -o ConnectTimeout=5 -i {id} -p {port} {user}@{host} {cmd} >/dev/null; rc=$?\n  \
                 [ $rc != 255 ] && break\n  (( SECONDS < end )) || exit 1\n  sleep 0.5\ndone\n[ $rc = {status} ] || exit 1\n",
                t = ssh.connect_timeout_s,
                id = quote(&ssh.identity),
                port = ssh.port,
                user = quote(&ssh.user),
                host = quote(&ssh.host),
                cmd = quote(cmd),
            );
        } else {
            s += &format!(
                "say {}\nwait_for 'HIL_END_{status}' {}\n",
                quote(&format!("( {cmd} ); echo HIL_END_$?")),
                linux.shell_timeout_s
            );
        }
    }
    s += "echo '{\"execute\":\"quit\"}' >&\"${QEMU[1]}\"\nwait ${QEMU_PID:-} 2>/dev/null\nexit 0\n";
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_uptime_from_the_sim_init_line() {
        let log = "[+  39.206522] hil: kernel uptime 30.76 s\r\n[+  39.2] hil: board ready\r\n";
        assert_eq!(super::kernel_uptime(log), Some(30.76));
        assert_eq!(super::kernel_uptime("no such line"), None);
    }
}
