//! A pinned SSH host key from a config table: `host_key = "ssh-ed25519 AAAA..."` or
//! `host_key_file = "PATH"` (an OpenSSH `.pub` line). Used by the board's `[ssh]` and by a
//! console server's `[console.ssh]`.

use super::error::ConfigError;
use std::path::Path;

/// The key blob; errors name `path` and `<table>.host_key` or `<table>.host_key_file`.
pub fn pinned(
    path: &Path,
    key: Option<&str>,
    key_file: Option<&str>,
    table: &str,
) -> Result<Vec<u8>, ConfigError> {
    let (text, name) = match (key, key_file) {
        (Some(k), _) => (k.to_string(), format!("{table}.host_key")),
        (None, Some(f)) => {
            let name = format!("{table}.host_key_file");
            let text = std::fs::read_to_string(f).map_err(|e| {
                ConfigError::new(
                    path,
                    &name,
                    format!("cannot read {f}: {e}; expected a public host key file"),
                )
            })?;
            (text, name)
        }
        (None, None) => {
            return Err(ConfigError::new(
                path,
                format!("{table}.host_key"),
                "is missing",
            ))
        }
    };
    let (_, blob) = crate::ssh::parse_public_key(&text).ok_or_else(|| {
        ConfigError::new(
            path,
            name,
            "expected \"<type> <base64>\" as in an OpenSSH .pub file",
        )
    })?;
    Ok(blob)
}
