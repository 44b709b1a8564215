//! Strict TOML loading: unknown keys are errors, and a type error names the key path.

use super::error::ConfigError;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Reads and deserializes `path`. The error names the file, the dotted key and the line.
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            path,
            "",
            format!("cannot read the file: {e}; expected a readable TOML file"),
        )
    })?;
    parse_toml(path, &text)
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

fn line_of(text: &str, offset: usize) -> usize {
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
    fn missing_key_says_add_it() {
        let e = parse_toml::<Outer>(Path::new("b.toml"), "inner = []\n").unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{e}");
    }
}
