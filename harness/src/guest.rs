//! The KVM guest on the board: its QEMU command line from the board's `[guest]` section,
//! started over SSH with the guest's serial port on QEMU's stdio. That SSH stream is the
//! guest console: the same broker, log, expect engine and shell as the board's console.
//! QMP is reached through an SSH-forwarded port.

use crate::config::board::GuestCfg;
use crate::console::Console;
use crate::error::StepError;
use crate::expect::{linux_death_patterns, DeathPattern, ExpectError, Expecter};
use crate::qmp::Qmp;
use crate::shell::ConsoleShell;
use crate::ssh::{SshTarget, StreamKind};
use crate::vfio::Binding;
use regex::bytes::Regex;
use std::path::Path;
use std::time::Duration;

/// QEMU's own errors that mean the configuration cannot work (DOMAIN.md): blocked.
fn qemu_config_errors() -> Vec<DeathPattern> {
    vec![
        DeathPattern::new("vfio group not viable", r"group \d+ is not viable"),
        DeathPattern::new(
            "vfio group not viable",
            r"Please ensure all devices within the iommu_group are bound to their vfio bus driver",
        ),
        DeathPattern::new("vfio device node missing", r"failed to open /dev/vfio/\d+"),
        DeathPattern::new("vfio container", r"failed to setup container for group \d+"),
        DeathPattern::new("no IOMMU", r"no iommu_group found"),
        DeathPattern::new("guest memory map", r"VCPU supports less PA bits"),
        DeathPattern::new(
            "KVM unavailable",
            r"Could not access KVM kernel module|failed to initialize kvm",
        ),
    ]
}

pub struct Guest {
    pub console: Console,
    pub shell: ConsoleShell,
    qmp: Option<Qmp<tokio::net::UnixStream>>,
    /// Limit for each QMP wait: the guest's `shell_timeout_s` (the guest QEMU answers QMP
    /// at once unless it is hung).
    qmp_timeout: Duration,
}

/// The shell command that runs the guest's QEMU on the board.
pub fn command(cfg: &GuestCfg, bindings: &[Binding]) -> String {
    let mut args: Vec<String> = vec![cfg.binary.clone()];
    args.extend(cfg.args.iter().cloned());
    args.push("-qmp".into());
    args.push(format!("tcp:127.0.0.1:{},server=on,wait=off", cfg.qmp_port));
    for b in bindings {
        args.push("-device".into());
        args.push(format!(
            "vfio-pci,host={}",
            crate::power::qemu::opt_value(&b.address)
        ));
    }
    // exec: closing the stream ends QEMU, and stderr (its errors) is on the console too.
    format!("exec {} 2>&1", crate::shell::join(args))
}

impl Guest {
    pub async fn start(
        target: &SshTarget,
        cfg: &GuestCfg,
        bindings: &[Binding],
        run_dir: &Path,
    ) -> Result<Guest, StepError> {
        let cmd = command(cfg, bindings);
        let stream = target
            .open_stream(StreamKind::Exec(cmd.clone()), Duration::from_secs(30))
            .await?;
        let console = Console::from_stream(stream, &run_dir.join("guest-console.log"), "guest")
            .map_err(|e| StepError::Harness(format!("guest console: {e}")))?;
        console.mark(format!("$ {cmd}"));
        let mut death = qemu_config_errors();
        death.extend(linux_death_patterns());
        let mut exp = Expecter::new(console.subscribe(), death);
        let t = Duration::from_secs(cfg.boot_timeout_s);
        let started = tokio::time::Instant::now();
        let classify = |e: ExpectError| match e {
            ExpectError::Death { name, line }
                if qemu_config_errors().iter().any(|d| d.name == name) =>
            {
                StepError::Blocked(format!("guest QEMU: {name}: {line}"))
            }
            ExpectError::Closed { tail, .. } => StepError::GuestFailed(format!(
                "guest QEMU exited during boot; last output: {tail:?}"
            )),
            ExpectError::Timeout { tail, .. } => StepError::GuestFailed(format!(
                "guest did not come up within {} s; last output: {tail:?}",
                t.as_secs()
            )),
            e => e.into(),
        };
        if let Some(r) = &cfg.ready {
            let re = Regex::new(r).map_err(|e| StepError::Harness(e.to_string()))?;
            exp.expect(&[&re], t).await.map_err(classify)?;
        }
        exp.death = linux_death_patterns();
        let mut shell = ConsoleShell::new(console.clone(), exp, &cfg.prompt)
            .map_err(|e| StepError::Harness(e.to_string()))?;
        let left = t
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(cfg.shell_timeout_s));
        shell.init(left).await?;
        let qmp_timeout = Duration::from_secs(cfg.shell_timeout_s);
        let qmp = match target
            .open_stream(StreamKind::Tcp(cfg.qmp_port), qmp_timeout)
            .await
        {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                match tokio::net::UnixStream::from_std(s) {
                    Ok(s) => Qmp::handshake(s, qmp_timeout)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let qmp = match qmp {
            Ok(q) => Some(q),
            Err(e) => {
                console.mark(format!(
                    "QMP not reachable ({e}): the guest will be stopped by closing its console"
                ));
                None
            }
        };
        Ok(Guest {
            console,
            shell,
            qmp,
            qmp_timeout,
        })
    }

    /// Sends a QMP command to the guest's QEMU (stimulus, status).
    pub async fn qmp(&mut self, cmd: &str) -> Result<serde_json::Value, StepError> {
        let q = self
            .qmp
            .as_mut()
            .ok_or_else(|| StepError::Infra("guest QMP is not connected".into()))?;
        q.execute_timeout(cmd, None, self.qmp_timeout)
            .await
            .map_err(|e| StepError::Infra(e.to_string()))
    }

    /// Stops the guest's QEMU and waits until its console closes (the devices stay busy,
    /// and cannot be unbound, until QEMU has exited).
    pub async fn stop(mut self) {
        let mut rx = self.console.subscribe();
        let t = self.qmp_timeout;
        if let Some(q) = self.qmp.as_mut() {
            let _ = q.execute_timeout("quit", None, t).await;
        }
        let closed = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(ev) = rx.recv().await {
                if matches!(ev, crate::console::Event::Closed(_)) {
                    break;
                }
            }
        })
        .await;
        if closed.is_err() {
            self.console
                .mark("guest QEMU still running 15 s after quit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_appends_qmp_and_devices_quoted() {
        let cfg = GuestCfg {
            binary: "qemu-system-aarch64".into(),
            args: vec!["-append".into(), "console=ttyAMA0 panic=-1".into()],
            qmp_port: 4444,
            ready: None,
            prompt: "# $".into(),
            boot_timeout_s: 1,
            shell_timeout_s: 1,
            upload: Default::default(),
        };
        let b = Binding {
            name: "nvme".into(),
            address: "0000:00:03.0".into(),
            group: 2,
            original_driver: Some("nvme".into()),
        };
        let c = command(&cfg, &[b]);
        assert_eq!(
            c,
            "exec qemu-system-aarch64 -append 'console=ttyAMA0 panic=-1' -qmp 'tcp:127.0.0.1:4444,server=on,wait=off' -device 'vfio-pci,host=0000:00:03.0' 2>&1"
        );
        // A hostile address stays one value of one option, in one shell word.
        let evil = Binding {
            name: "x".into(),
            address: "0000:00:03.0,x-evil=on'; reboot; '".into(),
            group: 2,
            original_driver: None,
        };
        let c = command(&cfg, &[evil]);
        let words = shell_words::split(&c).unwrap();
        let dev = &words[words.iter().position(|w| w == "-device").unwrap() + 1];
        assert_eq!(
            crate::power::qemu::split_opts(dev),
            vec!["vfio-pci", "host=0000:00:03.0,x-evil=on'; reboot; '"]
        );
        assert_eq!(words.last().map(String::as_str), Some("2>&1"));
    }
}
