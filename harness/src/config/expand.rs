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
    expand_with(s, vars, |v| v.to_string())
}

/// QEMU options after which the argument is a plain value (a file name, a kernel command
/// line), not a `key=value,...` option string: a placeholder's value goes in as it is.
const QEMU_PLAIN_VALUE: &[&str] = &[
    "-kernel", "-initrd", "-dtb", "-bios", "-append", "-L", "-pidfile", "-D",
];

/// Expands one of `qemu.args`, `previous` being the argument before it. In an option
/// string (every argument except the value of a [`QEMU_PLAIN_VALUE`] option) placeholder
/// values are escaped with [`crate::power::qemu::opt_value`], so a path holding a comma
/// stays one value instead of adding sub-options. The board file's own text is left as
/// written: its commas are the options it means.
pub fn expand_qemu_arg(s: &str, previous: Option<&str>, vars: &Vars) -> Result<String, String> {
    if previous.is_some_and(|p| QEMU_PLAIN_VALUE.contains(&p)) {
        expand(s, vars)
    } else {
        expand_with(s, vars, crate::power::qemu::opt_value)
    }
}

/// [`expand`], each value passed through `escape` first.
pub fn expand_with(
    s: &str,
    vars: &Vars,
    escape: impl Fn(&str) -> String,
) -> Result<String, String> {
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
                out.push_str(&escape(value));
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

    #[test]
    fn a_comma_in_a_placeholder_value_adds_no_qemu_sub_option() {
        let mut v = Vars::new();
        v.insert("board_dir", "/c/a,format=qcow2,b".into());
        let drive = "if=none,id=nvm,file={board_dir}/nvme.img,format=raw";
        let e = expand_qemu_arg(drive, Some("-drive"), &v).unwrap();
        assert_eq!(
            e,
            "if=none,id=nvm,file=/c/a,,format=qcow2,,b/nvme.img,format=raw"
        );
        // Split as QEMU splits an option string: `,,` is a comma inside a value.
        assert_eq!(
            crate::power::qemu::split_opts(&e),
            vec![
                "if=none",
                "id=nvm",
                "file=/c/a,format=qcow2,b/nvme.img",
                "format=raw"
            ]
        );
        // A plain value (a file name after -kernel) is not an option string.
        assert_eq!(
            expand_qemu_arg("{board_dir}/Image", Some("-kernel"), &v).unwrap(),
            "/c/a,format=qcow2,b/Image"
        );
    }
}
