//! A console reached through a console server over SSH: `console.device =
//! "ssh://USER@HOST[:PORT]"` and a `[console.ssh]` table with the command that attaches to
//! the board's serial line on that server, the key to log in with and the server's pinned
//! host key.
//!
//! Many labs wire their boards' UARTs to a console server (a Linux box full of USB-serial
//! adapters, or a rack console server) that people reach with `ssh console-server` and
//! then `microcom -s 1500000 /dev/ttyUSB3`. hil does the same: it logs in with the ssh
//! module, runs the command on a channel of its own, and the channel's stdin/stdout is the
//! console (every byte logged, fanned out and expected on like any other transport). When
//! the link drops (the server rebooted, the command exited because the adapter vanished),
//! the broker logs in again and runs the command again, within `console.reopen_timeout_s`.
//!
//! The command's line settings are its own (`-s 1500000` above): hil cannot set a line it
//! does not own, and a BREAK cannot be sent this way (an SSH exec channel has no break).

use super::error::ConfigError;
use super::validate::Validation;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[console.ssh]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSshCfg {
    /// Run on the console server; its stdin and stdout are the board's serial line
    /// (`microcom -s 1500000 /dev/serial/by-id/...`, `picocom -qb 115200 ...`, or a
    /// console server's own attach command).
    pub command: String,
    /// Private key hil logs in with.
    pub identity: String,
    /// The console server's pinned host key, `ssh-ed25519 AAAA...` (or `host_key_file`).
    pub host_key: Option<String>,
    pub host_key_file: Option<String>,
}

/// `USER@HOST[:PORT]` of an `ssh://` console device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConsoleAddr {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for SshConsoleAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ssh://{}@{}:{}", self.user, self.host, self.port)
    }
}

const EXAMPLE: &str = "ssh://console@192.0.2.20 or ssh://console@192.0.2.20:2222";

/// Parses what follows `ssh://` in `d` (the whole value, for messages).
pub fn parse_addr(d: &str, rest: &str) -> Result<SshConsoleAddr, String> {
    let Some((user, host_port)) = rest.split_once('@') else {
        return Err(format!(
            "is \"{d}\" with no user; expected ssh://USER@HOST[:PORT], e.g. {EXAMPLE}"
        ));
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    };
    if !name_ok(user) {
        return Err(format!(
            "is \"{d}\"; \"{user}\" is not a user name: expected ssh://USER@HOST[:PORT], e.g. {EXAMPLE}"
        ));
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(n) if n > 0 => (h, n),
            _ => {
                return Err(format!(
                    "is \"{d}\"; the port \"{p}\" is not a TCP port: expected 1 to 65535, e.g. {EXAMPLE}"
                ))
            }
        },
        None => (host_port, 22),
    };
    if !name_ok(host) {
        return Err(format!(
            "is \"{d}\"; \"{host}\" is not a host name or IPv4 address (no path after the port): expected ssh://USER@HOST[:PORT], e.g. {EXAMPLE}"
        ));
    }
    Ok(SshConsoleAddr {
        user: user.to_string(),
        host: host.to_string(),
        port,
    })
}

impl ConsoleSshCfg {
    /// The attach command is typed by no one but still runs in the server's shell: one
    /// line, no control characters (a stray `\r` or Ctrl-U would change what runs).
    pub fn validate(&self, v: &mut Validation) {
        if self.command.trim().is_empty() {
            v.err(
                "console.ssh.command",
                "is empty; expected the command that attaches to the board's serial line on the console server, e.g. \"microcom -s 115200 /dev/serial/by-id/usb-FTDI_...\"",
            );
        } else if let Some(c) = self.command.chars().find(|c| c.is_control()) {
            v.err(
                "console.ssh.command",
                format!("holds the control character {c:?}; expected one line of plain text"),
            );
        }
        if self.identity.trim().is_empty() {
            v.err(
                "console.ssh.identity",
                "is empty; expected the private key file hil logs in to the console server with",
            );
        }
        match (&self.host_key, &self.host_key_file) {
            (None, None) => v.err(
                "console.ssh.host_key",
                "is missing; expected the console server's public host key (`ssh-keyscan -t ed25519 HOST`, or its /etc/ssh/ssh_host_ed25519_key.pub) as host_key = \"ssh-ed25519 AAAA...\" or host_key_file = \"PATH\"",
            ),
            (Some(_), Some(_)) => v.err(
                "console.ssh.host_key_file",
                "is set together with console.ssh.host_key; expected one of the two",
            ),
            (Some(k), None) if crate::ssh::parse_public_key(k).is_none() => v.err(
                "console.ssh.host_key",
                "expected \"<type> <base64>\" as in an OpenSSH .pub file",
            ),
            _ => {}
        }
    }

    /// The login to make: `addr` from `console.device`, the rest from this table. Reads
    /// `host_key_file`; errors name `path` and the key.
    pub fn target(
        &self,
        addr: &SshConsoleAddr,
        path: &Path,
    ) -> Result<crate::ssh::SshTarget, ConfigError> {
        let host_key = super::host_key::pinned(
            path,
            self.host_key.as_deref(),
            self.host_key_file.as_deref(),
            "console.ssh",
        )?;
        Ok(crate::ssh::SshTarget {
            host: addr.host.clone(),
            port: addr.port,
            user: addr.user.clone(),
            identity: PathBuf::from(&self.identity),
            host_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_a_default_port_and_bad_ones_say_what_to_write() {
        let a = parse_addr("x", "console@192.0.2.20").unwrap();
        assert_eq!(
            (a.user.as_str(), a.host.as_str(), a.port),
            ("console", "192.0.2.20", 22)
        );
        let a = parse_addr("x", "hil@lab-cs1.example:2222").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("lab-cs1.example", 2222));
        assert_eq!(a.to_string(), "ssh://hil@lab-cs1.example:2222");
        for (rest, says) in [
            ("192.0.2.20", "no user"),
            ("@h", "not a user name"),
            ("u@h:0", "not a TCP port"),
            ("u@h:99999", "not a TCP port"),
            ("u@h/dev/ttyUSB0", "not a host name"),
            ("u@", "not a host name"),
        ] {
            let e = parse_addr(&format!("ssh://{rest}"), rest).unwrap_err();
            assert!(e.contains(says), "{rest}: {e}");
        }
    }
}
