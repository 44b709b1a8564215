//! Strict TOML loading: unknown keys are errors, and a type error names the key path.

use super::error::ConfigError;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Config files are a few KiB; anything larger is not a board or suite file, and reading
/// it whole (a link to `/dev/zero`, a log picked up by mistake) would only use up memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads and deserializes `path`. The error names the file, the dotted key and the line.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = read_text(path)?;
    parse_toml(path, &text)
}

/// The text of a config file, refusing at once anything that is not a regular file of at
/// most [`MAX_FILE_BYTES`]: a FIFO would block the read forever, a device never ends.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let fail = |m: String| ConfigError::new(path, "", m);
    let cannot_read = |e: std::io::Error| {
        fail(format!(
            "cannot read the file: {e}; expected a readable TOML file"
        ))
    };
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    not_regular(&meta).map_or(Ok(()), |m| Err(fail(m)))?;
    // O_NONBLOCK: should the path be swapped for a FIFO between the check above and this
    // open, the open still returns at once (and the check below refuses it). It has no
    // effect on regular files.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    not_regular(&meta).map_or(Ok(()), |m| Err(fail(m)))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "is larger than {} KiB; expected a board or suite file (a few KiB of TOML): check the path",
            MAX_FILE_BYTES / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "is not UTF-8 text (invalid byte at offset {}); expected a TOML file",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Why a file of this type is refused, or `None` for a regular file.
fn not_regular(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let what = if t.is_file() {
        return None;
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Some(format!(
        "is {what}, not a regular file; expected a TOML file (hil does not read from pipes or devices)"
    ))
}

pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.span().map(|s| line_of(text, s.start));
        let mut message = inner.message().trim().to_string();
        // serde's wording for a wrong key is "unknown field `x`, expected one of ...": keep
        // it, it already lists what was expected.
        if message.starts_with("missing field") {
            message = format!("{message}; add it");
        }
        let key = if key == "." { String::new() } else { key };
        ConfigError {
            file: path.to_path_buf(),
            key,
            line,
            message,
        }
    })
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Deserializes a sub-table (a check's parameters) strictly, prefixing the key path.
pub fn from_table<T: DeserializeOwned>(
    path: &Path,
    prefix: &str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let sub = err.path().to_string();
        let key = if sub == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{sub}")
        };
        ConfigError::new(path, key, err.into_inner().to_string().trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Vec<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        timeout_s: u64,
    }

    #[test]
    fn type_error_names_key_and_line() {
        let text = "name = \"x\"\n[[inner]]\ntimeout_s = 1\n[[inner]]\ntimeout_s = \"ten\"\n";
        let e = parse_toml::<Outer>(Path::new("s.toml"), text).unwrap_err();
        assert_eq!(e.key, "inner[1].timeout_s");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("expected u64"), "{}", e.message);
        assert!(
            e.to_string()
                .starts_with("s.toml:5: key `inner[1].timeout_s`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_an_error() {
        let text = "name = \"x\"\ninner = []\nnmae = 3\n";
        let e = parse_toml::<Outer>(Path::new("b.toml"), text).unwrap_err();
        assert!(e.message.contains("unknown field `nmae`"), "{e}");
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let e = read_text(&fifo).unwrap_err();
        assert!(started.elapsed().as_secs() < 2, "returned at once");
        assert!(
            e.message
                .starts_with("is a FIFO (named pipe), not a regular file"),
            "{e}"
        );

        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert!(e.message.starts_with("is a character device"), "{e}");
        let e = read_text(dir.path()).unwrap_err();
        assert!(e.message.starts_with("is a directory"), "{e}");

        // a link to a device is judged by what it points at
        let link = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(read_text(&link)
            .unwrap_err()
            .message
            .contains("character device"));

        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let e = read_text(&big).unwrap_err();
        assert!(e.message.starts_with("is larger than 1024 KiB"), "{e}");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize]).unwrap();
        assert_eq!(read_text(&big).unwrap().len(), MAX_FILE_BYTES as usize);

        std::fs::write(&big, b"name = \"\xff\"").unwrap();
        assert!(read_text(&big).unwrap_err().message.contains("not UTF-8"));
    }

    #[test]
    fn missing_key_says_add_it() {
        let e = parse_toml::<Outer>(Path::new("b.toml"), "inner = []\n").unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{e}");
    }
}
