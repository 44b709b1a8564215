//! `{name}` placeholders in board-file values (paths and QEMU arguments).
//!
//! Sim boards refer to lab-built files through `{images}` and `{board_dir}`; they are
//! resolved when the run starts, after `hil lab build`. U-Boot's own `${var}` syntax is left
//! alone: only a `{` that is not preceded by `$` opens a placeholder.

use std::collections::BTreeMap;

/// Names a board file may use, with what they stand for (shown in errors).
pub const KNOWN: &[(&str, &str)] = &[
    ("images", "the sim lab's shared images directory"),
    ("board_dir", "the sim board's persistent state directory"),
    ("cache", "hil's cache root ($HIL_CACHE or ~/.cache/hil)"),
    ("run_dir", "this run's per-board report directory"),
    (
        "build",
        "the kernel build under test (hil bisect, --images)",
    ),
];

pub type Vars = BTreeMap<&'static str, String>;

/// The placeholder names used in `s`, in order.
pub fn placeholders(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' && (i == 0 || b[i - 1] != b'$') {
            if let Some(end) = s[i + 1..].find('}') {
                out.push(s[i + 1..i + 1 + end].to_string());
                i += end + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The first unknown placeholder in `s`, if any.
pub fn unknown_placeholder(s: &str) -> Option<String> {
    placeholders(s)
        .into_iter()
        .find(|p| !KNOWN.iter().any(|(k, _)| k == p))
}

/// Replaces placeholders; names missing from `vars` are an error naming them.
pub fn expand(s: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'{' && (i == 0 || b[i - 1] != b'$') {
            if let Some(end) = s[i + 1..].find('}') {
                let name = &s[i + 1..i + 1 + end];
                let value = vars.get(name).ok_or_else(|| {
                    format!(
                        "placeholder {{{name}}} has no value here (known: {})",
                        known_list()
                    )
                })?;
                out.push_str(&s[last..i]);
                out.push_str(value);
                i += end + 2;
                last = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    Ok(out)
}

pub fn known_list() -> String {
    KNOWN
        .iter()
        .map(|(k, _)| format!("{{{k}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uboot_variables_are_not_placeholders() {
        assert!(placeholders("tftp ${kernel_addr_r} Image.gz").is_empty());
        assert_eq!(placeholders("{images}/u-boot.bin"), vec!["images"]);
    }

    #[test]
    fn expands_and_reports_unknown() {
        let mut v = Vars::new();
        v.insert("images", "/c/img".into());
        assert_eq!(
            expand("-bios {images}/u.bin ${x}", &v).unwrap(),
            "-bios /c/img/u.bin ${x}"
        );
        assert!(expand("{board_dir}/a", &v)
            .unwrap_err()
            .contains("{board_dir}"));
        assert_eq!(unknown_placeholder("{imagse}/x").as_deref(), Some("imagse"));
        assert_eq!(unknown_placeholder("{images}/x"), None);
    }
}
