//! SSH keys of the sim lab: one client key for the harness, one host key per board.

use super::host::{self, Tools};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The harness's login key (OpenSSH ed25519), created once under `dir` and kept: its
/// public half is baked into the host initramfs, so changing it means a rebuild.
/// Returns (private key path, public key line).
pub(crate) fn ensure_client_key(tools: &Tools, dir: &Path) -> Result<(PathBuf, String)> {
    let key = dir.join("client_ed25519");
    let pubf = dir.join("client_ed25519.pub");
    if !key.exists() {
        std::fs::create_dir_all(dir)?;
        // Generate under a temporary name: a concurrent build must never see half a pair.
        let tmp = dir.join(format!(".client_ed25519.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        host::run(
            Command::new(&tools.ssh_keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "hil-client", "-f"])
                .arg(&tmp),
        )?;
        std::fs::rename(format!("{}.pub", tmp.display()), &pubf)?;
        std::fs::rename(&tmp, &key)?;
    }
    if !pubf.exists() {
        let out = host::run(
            Command::new(&tools.ssh_keygen)
                .arg("-y")
                .arg("-f")
                .arg(&key),
        )?;
        host::write_atomic(&pubf, &out.stdout)?;
    }
    let line = std::fs::read_to_string(&pubf)?;
    let line = public_key_line(&line).context("client public key is not ssh-ed25519")?;
    Ok((key, line))
}

/// A board's dropbear host key, generated once (kept across image rebuilds so the pin
/// stays valid). Returns the public key as "ssh-ed25519 AAAA…".
pub(crate) fn ensure_host_key(tools: &Tools, key: &Path) -> Result<String> {
    if !key.exists() {
        let tmp = key.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        host::run(
            Command::new(&tools.dropbearkey)
                .args(["-t", "ed25519", "-f"])
                .arg(&tmp),
        )?;
        std::fs::rename(&tmp, key)?;
    }
    let out = host::run(
        Command::new(&tools.dropbearkey)
            .arg("-y")
            .arg("-f")
            .arg(key),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    match public_key_line(&text) {
        Some(l) => Ok(l),
        None => bail!("dropbearkey -y printed no ssh-ed25519 key:\n{text}"),
    }
}

/// The "ssh-ed25519 <base64>" part of any text containing a public key line (drops the
/// comment, which dropbearkey sets to user@buildhost).
pub(crate) fn public_key_line(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        match (it.next(), it.next()) {
            (Some("ssh-ed25519"), Some(b64)) if b64.starts_with("AAAA") => {
                Some(format!("ssh-ed25519 {b64}"))
            }
            _ => None,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dropbear_output_parsed() {
        let t = "Public key portion is:\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK root@h\n\
                 Fingerprint: sha1!! 00:11\n";
        assert_eq!(
            public_key_line(t).as_deref(),
            Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK")
        );
        assert_eq!(public_key_line("ssh-rsa AAAAB3 x\n"), None);
    }
}
