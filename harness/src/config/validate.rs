//! Building blocks of board and suite validation: one collector of [`ConfigError`]s for a
//! file and the checks that recur across keys (duration ranges, non-empty text, text typed
//! on a console, patterns).

use super::error::ConfigError;
use super::limits::SecsRange;
use regex::Regex;
use std::path::Path;

/// Collects every problem of one file, so one edit fixes them all.
pub struct Validation<'a> {
    path: &'a Path,
    errs: Vec<ConfigError>,
}

impl<'a> Validation<'a> {
    pub fn new(path: &'a Path) -> Self {
        Validation {
            path,
            errs: Vec::new(),
        }
    }

    pub fn path(&self) -> &'a Path {
        self.path
    }

    pub fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errs.push(ConfigError::new(self.path, key, message));
    }

    /// For validators that push into a plain `Vec` (config/pcie.rs).
    pub fn errors_mut(&mut self) -> &mut Vec<ConfigError> {
        &mut self.errs
    }

    pub fn into_errors(self) -> Vec<ConfigError> {
        self.errs
    }

    /// A duration in whole seconds within `range`.
    pub fn secs(&mut self, key: &str, value: u64, range: SecsRange) {
        if let Some(m) = range.check(value) {
            self.err(key, m);
        }
    }

    /// Text that must not be empty (or only blanks); `expected` says what goes there.
    pub fn not_empty(&mut self, key: &str, value: &str, expected: &str) {
        if value.trim().is_empty() {
            self.err(key, format!("is empty; expected {expected}"));
        }
    }

    /// Text hil types on a console: no control characters (see [`control_char`]).
    pub fn typed(&mut self, key: &str, value: &str) {
        if let Some(m) = typed_problem(value) {
            self.err(key, m);
        }
    }

    /// A regex that hil waits for on a console: it must compile and must not match the
    /// empty string (it would match before the board printed anything).
    pub fn pattern(&mut self, key: &str, value: &str, example: &str) {
        if let Some(m) = pattern_problem(value, example) {
            self.err(key, m);
        }
    }
}

/// The first control character in `s` and its position (in characters, from 0).
pub fn control_char(s: &str) -> Option<(usize, char)> {
    s.chars().enumerate().find(|(_, c)| c.is_control())
}

/// `U+0015 (Ctrl-U)`, `U+0009 (tab)`: the code point and how a keyboard makes it.
pub fn describe_char(c: char) -> String {
    let code = c as u32;
    let name = match c {
        '\0' => "NUL".to_string(),
        '\t' => "tab".to_string(),
        '\n' => "newline".to_string(),
        '\r' => "carriage return".to_string(),
        '\u{1b}' => "escape".to_string(),
        '\u{7f}' => "delete".to_string(),
        _ if code < 0x20 => format!("Ctrl-{}", char::from_u32(code + 0x40).unwrap_or('?')),
        _ => "a C1 control character".to_string(),
    };
    format!("U+{code:04X} ({name})")
}

/// Why `value` must not be typed on a console, or `None` if it may.
///
/// A console is a line editor, not a byte pipe: U-Boot's and the shell's line discipline
/// act on control characters (Ctrl-U erases the line typed so far, Ctrl-C abandons it, a
/// newline or carriage return runs what came before, a tab completes), so a value holding
/// one runs something other than what the file shows. C1 controls (U+0080 to U+009F) are
/// refused too: their UTF-8 encoding holds bytes that an 8-bit terminal reads as controls.
pub fn typed_problem(value: &str) -> Option<String> {
    let (at, c) = control_char(value)?;
    Some(format!(
        "contains {} at character {at}; hil types this value on the console, where a control character is a key press the line editor acts on (Ctrl-U erases the line, Ctrl-C abandons it, a newline runs what came before) instead of text: expected printable characters only, remove it",
        describe_char(c)
    ))
}

/// Why `value` is not a usable console pattern, or `None` if it is.
pub fn pattern_problem(value: &str, example: &str) -> Option<String> {
    match Regex::new(value) {
        Err(e) => Some(format!("is not a valid regex: {e}")),
        Ok(re) if re.is_match("") => Some(format!(
            "is {value:?}, which matches the empty string, so it would match before the board printed anything; expected a pattern for the text itself, such as {example:?}"
        )),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_named_by_code_point_and_key() {
        assert_eq!(control_char("reboot"), None);
        assert_eq!(control_char("\u{15}reboot #"), Some((0, '\u{15}')));
        assert_eq!(describe_char('\u{15}'), "U+0015 (Ctrl-U)");
        assert_eq!(describe_char('\u{3}'), "U+0003 (Ctrl-C)");
        assert_eq!(describe_char('\t'), "U+0009 (tab)");
        assert_eq!(describe_char('\u{7f}'), "U+007F (delete)");
        assert_eq!(describe_char('\u{9b}'), "U+009B (a C1 control character)");
        let m = typed_problem("ls\u{15}reboot").unwrap();
        assert!(
            m.starts_with("contains U+0015 (Ctrl-U) at character 2;"),
            "{m}"
        );
        // printable non-ASCII text is text
        assert_eq!(typed_problem("echo grüße → ok"), None);
    }

    #[test]
    fn patterns_must_compile_and_not_match_nothing() {
        assert_eq!(pattern_problem("# $", "# $"), None);
        assert!(pattern_problem("(", "# $")
            .unwrap()
            .contains("not a valid regex"));
        for empty in ["", "$", ".*", "x?"] {
            let m = pattern_problem(empty, "# $").unwrap();
            assert!(m.contains("matches the empty string"), "{empty}: {m}");
        }
    }

    #[test]
    fn collects_errors_with_file_and_key() {
        let mut v = Validation::new(Path::new("b.toml"));
        v.secs("linux.boot_timeout_s", 0, SecsRange::STEP);
        v.not_empty("bootloader.prompt", " ", "the prompt");
        v.typed("linux.bootargs", "console=ttyS0\n");
        v.typed("bootloader.boot_command", "booti");
        let e = v.into_errors();
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "linux.boot_timeout_s",
                "bootloader.prompt",
                "linux.bootargs"
            ]
        );
        assert!(e.iter().all(|e| e.file == Path::new("b.toml")));
        assert!(e[2].message.contains("U+000A (newline)"), "{}", e[2]);
    }
}
