//! Flashing backends that talk to a board's boot ROM or a vendor flash tool.
//!
//! This module owns the *protocol knowledge* of the flash tools in DOMAIN.md: what each tool
//! prints, which of those lines mean success, and which mean that the lab, the board
//! configuration or the device's boot mode is at fault. The protocol modules are pure
//! functions of text, tested on the recorded transcripts in `tests/data/transcripts/`;
//! [`backend`] is the one place that runs tools and writes images on the lab host, and is
//! tested with fake tools that replay those transcripts (`tests/data/fake-tools/`).
//!
//! - [`rkdeveloptool`]: Rockchip RK3588 over USB (rockusb): `ld` parsing, a per-step
//!   classifier for `db`/`wl`/`rd`/`ul`/`ef`, `wl` progress, and the Maskrom flash plan.
//! - [`flash_writer`]: Renesas R-Car Gen3 Flash Writer over SCIF: prompt detection, the
//!   `XLS2`/`XLS3`/`EM_W` dialogues, outcome classification and 115200-baud pacing.
//!
//! Both map what they see onto one small [`FlashClass`], so the one place that turns errors
//! into outcomes (`crate::error`) does not need to know either tool.

pub mod backend;
pub mod flash_writer;
pub mod rkdeveloptool;
mod scif;

/// What a flash tool's message says about the run, independent of the tool.
///
/// This is a domain class, not an [`Outcome`](crate::outcome::Outcome): it keeps apart the
/// causes an operator fixes in different places (lab hardware, board/suite files, the
/// board's boot mode), and the classification into outcomes stays in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlashClass {
    /// The tool reported success (or progress towards it).
    Ok,
    /// Lab equipment or the board's hardware is at fault: USB cable or hub, DIP switches,
    /// eMMC not seated, serial link dropping bytes.
    Infrastructure,
    /// What hil was told to use is wrong: loader or image file, flash addresses, a writer
    /// build without the requested command.
    Configuration,
    /// The device is in a boot mode that cannot run the requested command (e.g. `db` in
    /// Loader mode); the message says which mode is needed.
    WrongMode,
}

impl FlashClass {
    pub fn label(self) -> &'static str {
        match self {
            FlashClass::Ok => "ok",
            FlashClass::Infrastructure => "infrastructure",
            FlashClass::Configuration => "configuration",
            FlashClass::WrongMode => "wrong mode",
        }
    }
}

impl std::fmt::Display for FlashClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// Console text as a terminal would show it, one entry per line: escape sequences dropped
/// (rkdeveloptool colours its errors and redraws progress with cursor-up/erase-line), every
/// `\r` treated as a line break (both tools mix `\r\n` and `\n\r`), and backspaces applied
/// (Flash Writer erases an answered DIP-switch prompt with `\b`s before printing the next).
pub(crate) fn screen_lines(raw: &str) -> Vec<String> {
    let unix = raw.replace('\r', "\n");
    let clean = crate::text::clean(unix.as_bytes());
    clean.split('\n').map(apply_backspaces).collect()
}

/// Replays one line's backspaces the way a terminal does: `\b` moves the cursor left and
/// later characters overwrite, so `"abc\b\b\b   \b\b\bX"` shows as `"X  "`.
fn apply_backspaces(line: &str) -> String {
    if !line.contains('\u{8}') {
        return line.to_string();
    }
    let mut cells: Vec<char> = Vec::with_capacity(line.len());
    let mut cursor = 0usize;
    for c in line.chars() {
        if c == '\u{8}' {
            cursor = cursor.saturating_sub(1);
        } else if cursor < cells.len() {
            cells[cursor] = c;
            cursor += 1;
        } else {
            cells.push(c);
            cursor += 1;
        }
    }
    cells.into_iter().collect()
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Transcript loading shared by both backends' tests.

    /// The transcript text without its `# source:` / `# board/tool version:` / `# note:`
    /// header, split into blocks at the `# [...]` trim markers (each block is continuous
    /// console output; text is missing between blocks).
    pub fn blocks(transcript: &str) -> Vec<String> {
        let mut blocks = vec![String::new()];
        for line in transcript.lines() {
            if is_header(line) {
                continue;
            }
            if line.starts_with("# [...]") {
                blocks.push(String::new());
                continue;
            }
            if let Some(last) = blocks.last_mut() {
                last.push_str(line);
                last.push('\n');
            }
        }
        blocks.retain(|b| !b.trim().is_empty());
        blocks
    }

    /// The whole body (all blocks joined) for tests that do not care about trims.
    pub fn body(transcript: &str) -> String {
        blocks(transcript).concat()
    }

    fn is_header(line: &str) -> bool {
        ["# source:", "# board/tool version:", "# note:"]
            .iter()
            .any(|h| line.starts_with(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backspaces_overwrite_like_a_terminal() {
        assert_eq!(
            apply_backspaces("abc\u{8}\u{8}\u{8}   \u{8}\u{8}\u{8}X"),
            "X  "
        );
        assert_eq!(apply_backspaces("\u{8}\u{8}ok"), "ok");
        assert_eq!(apply_backspaces("plain"), "plain");
    }

    #[test]
    fn screen_lines_split_cr_and_strip_colour() {
        let lines = screen_lines("a\r\n\x1b[30;41mErr!\x1b[0m\r\nb\n\rc");
        let shown: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(shown, ["a", "Err!", "b", "c"]);
    }

    #[test]
    fn headers_and_trims_are_removed() {
        let t = "# source: x\n# note: y\nA\n# [...] cut\nB\n";
        assert_eq!(testdata::blocks(t), ["A\n", "B\n"]);
        assert_eq!(testdata::body(t), "A\nB\n");
    }
}
