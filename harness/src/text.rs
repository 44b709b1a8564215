//! Turning raw console bytes into text for reports and matching: ANSI escape sequences
//! (colours, the `ESC[6n` cursor query busybox sends after its prompt, bracketed paste)
//! and carriage returns removed, invalid UTF-8 replaced.

use regex::bytes::Regex;
use std::sync::LazyLock;

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
        .expect("static regex")
});

/// Strips escape sequences and `\r`, keeps newlines, replaces invalid UTF-8 and NULs.
pub fn clean(raw: &[u8]) -> String {
    let stripped = ANSI.replace_all(raw, &b""[..]);
    let s = String::from_utf8_lossy(&stripped);
    s.chars().filter(|c| *c != '\r' && *c != '\0').collect()
}

/// The last 400 characters of a command's output, trimmed: the end says most (the error
/// or the summary), so that is what goes into a check's message.
pub fn excerpt(output: &str) -> String {
    let t = output.trim();
    let n = t.chars().count();
    if n <= 400 {
        t.to_string()
    } else {
        format!("...{}", t.chars().skip(n - 400).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_busybox_prompt_query_and_colours() {
        assert_eq!(clean(b"/ # \x1b[6n"), "/ # ");
        assert_eq!(clean(b"\x1b[1;32mTX: 1 bytes\x1b[0m\r\n"), "TX: 1 bytes\n");
        assert_eq!(clean(b"\x1b[?2004hx\x1b[?2004l"), "x");
        assert_eq!(clean(b"a\xffb\0c"), "a\u{fffd}bc");
    }
}
