//! Commands run on the lab host from board and suite files (relay and PDU power, stimulus
//! relays): `sh -c` with a time limit. The command text is the lab's own, like a Makefile
//! recipe; nothing a DUT prints is ever substituted into it.

use std::time::Duration;

/// Runs `cmd`; the error names `label` (e.g. "power on command") and says what happened.
pub async fn run_sh(label: &str, cmd: &str, timeout: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => Err(format!(
            "{label} `{cmd}` did not finish within {} s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("{label} `{cmd}`: {e}")),
        Ok(Ok(out)) if !out.status.success() => Err(format!(
            "{label} `{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Ok(_)) => Ok(()),
    }
}
