//! The fake board's U-Boot: banner, autoboot countdown, prompt and a small hush shell.
//!
//! Only what hil and a lab's board files use: `setenv`, `printenv`, `echo`, `tftp` /
//! `tftpboot`, `booti` / `bootm` / `bootz` / `boot`, `version`; commands separated by `;`,
//! `'...'` and `"..."` quoting, `$?`, `$name` and `${name}`. Messages are U-Boot 2023.01's
//! own, since hil classifies some of them (boot.rs): `TFTP error: 'File not found' (1)`,
//! `Bad Linux ARM64 Image magic!`, `Unknown command 'x' - try 'help'`.

use super::line::{Editor, Key};
use super::{Con, PowerOn};
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// The first line of every boot; hil's Linux death patterns know it (a board reset).
pub const BANNER: &str = "U-Boot 2023.01 (hil fake board)";

/// Runs U-Boot from reset until it starts Linux (by a boot command, or on its own when
/// autoboot was not stopped); returns the kernel's `bootargs`. An error: the console is
/// gone.
pub async fn run(con: &mut Con, on: &PowerOn) -> io::Result<String> {
    let spec = &on.spec;
    con.say(&format!(
        "\n\n{BANNER}\n\nDRAM:  2 GiB\nCore:  hil fake board ({})\nIn:    serial\nOut:   serial\nErr:   serial\nNet:   eth0: fake-net\n",
        spec.name
    ))
    .await?;
    let stopped = countdown(con, on).await?;
    if !stopped {
        // Nobody stopped it: the board boots its default OS (hil expected a prompt).
        con.say("## Booting the default boot source (bootcmd)\nStarting kernel ...\n\n")
            .await?;
        return Ok(String::new());
    }
    let mut hush = Hush::new(on);
    let mut editor = Editor::default();
    con.raw(spec.uboot_prompt.as_bytes()).await?;
    loop {
        let data = con.read().await?;
        con.raw(&editor.feed(&data)).await?;
        while let Some(key) = editor.keys.pop_front() {
            let line = match key {
                Key::Interrupt => {
                    con.say("<INTERRUPT>\n").await?;
                    con.raw(spec.uboot_prompt.as_bytes()).await?;
                    continue;
                }
                Key::Line(l) => l,
            };
            let (out, boot) = hush.run_line(&line);
            con.say(&out).await?;
            if boot {
                return Ok(hush.env.get("bootargs").cloned().unwrap_or_default());
            }
            con.raw(spec.uboot_prompt.as_bytes()).await?;
        }
    }
}

/// U-Boot's bootdelay countdown (`Hit any key to stop autoboot:  2 `, then `\b\b\b 1 `
/// each second). True when a key stopped it; on the first `miss_autoboot` power-ons keys
/// are ignored, as when the key came too late.
async fn countdown(con: &mut Con, on: &PowerOn) -> io::Result<bool> {
    let spec = &on.spec;
    let miss = on.boot <= spec.miss_autoboot;
    let mut left = spec.autoboot_s;
    con.say(&format!("{}: {left:2} ", spec.autoboot_text))
        .await?;
    while left > 0 {
        let second = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(second, con.read()).await {
                Err(_) => break,
                Ok(r) => {
                    r?;
                    if !miss {
                        con.say("\x08\x08\x08 0 \n").await?;
                        return Ok(true);
                    }
                }
            }
        }
        left -= 1;
        con.raw(format!("\x08\x08\x08{left:2} ").as_bytes()).await?;
    }
    con.say("\n").await?;
    Ok(false)
}

/// U-Boot's shell state for one power-on.
pub struct Hush {
    env: BTreeMap<String, String>,
    rc: i32,
    tftp_files: Option<Vec<String>>,
    /// Addresses a file was loaded to, so `booti` can tell an image from empty memory.
    loaded: Vec<u64>,
}

impl Hush {
    pub fn new(on: &PowerOn) -> Hush {
        let env = [
            ("arch", "arm"),
            ("baudrate", "1500000"),
            ("board", "fake"),
            ("bootdelay", "2"),
            ("fdt_addr", "40000000"),
            ("fdt_addr_r", "40000000"),
            ("kernel_addr_r", "0x40400000"),
            ("ramdisk_addr_r", "0x44000000"),
            ("loadaddr", "0x40200000"),
            ("ethact", "eth0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Hush {
            env,
            rc: 0,
            tftp_files: on.spec.tftp_files.clone(),
            loaded: Vec::new(),
        }
    }

    /// Runs one typed line; returns its output and whether a boot command started Linux.
    pub fn run_line(&mut self, line: &str) -> (String, bool) {
        let mut out = String::new();
        for raw in split_commands(line) {
            let words = self.words(&raw);
            let Some((cmd, args)) = words.split_first() else {
                continue;
            };
            let (text, rc, boot) = self.command(cmd, args);
            out.push_str(&text);
            self.rc = rc;
            if boot {
                return (out, true);
            }
        }
        (out, false)
    }

    fn command(&mut self, cmd: &str, args: &[String]) -> (String, i32, bool) {
        match cmd {
            "setenv" | "env" if cmd == "setenv" || args.first().is_some_and(|a| a == "set") => {
                let args = if cmd == "env" { &args[1..] } else { args };
                match args.split_first() {
                    None => ("Usage:\nsetenv name value ...\n".into(), 1, false),
                    Some((name, [])) => {
                        self.env.remove(name);
                        (String::new(), 0, false)
                    }
                    Some((name, value)) => {
                        self.env.insert(name.clone(), value.join(" "));
                        (String::new(), 0, false)
                    }
                }
            }
            "printenv" => {
                if args.is_empty() {
                    let all: String = self.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                    return (all, 0, false);
                }
                let mut out = String::new();
                let mut rc = 0;
                for a in args {
                    match self.env.get(a) {
                        Some(v) => out.push_str(&format!("{a}={v}\n")),
                        None => {
                            out.push_str(&format!("## Error: \"{a}\" not defined\n"));
                            rc = 1;
                        }
                    }
                }
                (out, rc, false)
            }
            "echo" => (format!("{}\n", args.join(" ")), 0, false),
            "version" => (format!("{BANNER}\n"), 0, false),
            "tftp" | "tftpboot" => {
                let (text, rc) = self.tftp(args);
                (text, rc, false)
            }
            "booti" => match self.booti(args) {
                Ok(text) => (text, 0, true),
                Err(text) => (text, 1, false),
            },
            "bootm" | "bootz" | "boot" | "bootefi" => ("Starting kernel ...\n\n".into(), 0, true),
            _ => (format!("Unknown command '{cmd}' - try 'help'\n"), 1, false),
        }
    }

    fn tftp(&mut self, args: &[String]) -> (String, i32) {
        let (addr, file) = match args {
            [a, f, ..] => (parse_hex(a), Some(f.clone())),
            [one] if parse_hex(one).is_some() && !one.contains('.') => {
                (parse_hex(one), self.env.get("bootfile").cloned())
            }
            [f] => (None, Some(f.clone())),
            [] => (None, self.env.get("bootfile").cloned()),
        };
        let addr = addr
            .or_else(|| self.env.get("loadaddr").and_then(|a| parse_hex(a)))
            .unwrap_or(0x4020_0000);
        let Some(file) = file else {
            return ("*** ERROR: `bootfile' not set\n".into(), 1);
        };
        let Some(server) = self.env.get("serverip").cloned() else {
            return ("*** ERROR: `serverip' not set\n".into(), 1);
        };
        let ip = self
            .env
            .get("ipaddr")
            .cloned()
            .unwrap_or_else(|| "0.0.0.0".into());
        let mut out = format!(
            "Using fake-net device\nTFTP from server {server}; our IP address is {ip}\nFilename '{file}'.\nLoad address: 0x{addr:x}\nLoading: "
        );
        let present = self
            .tftp_files
            .as_ref()
            .is_none_or(|files| files.contains(&file));
        if !present {
            out.push_str("*\nTFTP error: 'File not found' (1)\nNot retrying...\n");
            return (out, 1);
        }
        let size = fake_size(&file);
        out.push_str(&format!(
            "#################################################################\n\t 12.5 MiB/s\ndone\nBytes transferred = {size} ({size:x} hex)\n"
        ));
        self.env.insert("filesize".into(), format!("{size:x}"));
        self.loaded.push(addr);
        (out, 0)
    }

    fn booti(&self, args: &[String]) -> Result<String, String> {
        let kernel = args
            .first()
            .and_then(|a| parse_hex(a))
            .or_else(|| self.env.get("loadaddr").and_then(|a| parse_hex(a)));
        if !kernel.is_some_and(|k| self.loaded.contains(&k)) {
            return Err("Bad Linux ARM64 Image magic!\n".into());
        }
        let fdt = args.get(2).cloned().unwrap_or_else(|| "40000000".into());
        let fdt = fdt.trim_start_matches("0x");
        let mut out = format!(
            "## Flattened Device Tree blob at {fdt}\n   Booting using the fdt blob at 0x{fdt}\nWorking FDT set to {fdt}\n"
        );
        if args.get(1).is_some_and(|r| r != "-") {
            out.push_str("   Loading Ramdisk to 7d8e3000, end 7e000000 ... OK\n");
        }
        out.push_str("\nStarting kernel ...\n\n");
        Ok(out)
    }

    /// Splits one command into words, expanding variables and removing quotes.
    fn words(&self, raw: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut chars = raw.chars().peekable();
        let mut dquote = false;
        while let Some(c) = chars.next() {
            match c {
                '\'' if !dquote => {
                    in_word = true;
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                        cur.push(c);
                    }
                }
                '"' => {
                    in_word = true;
                    dquote = !dquote;
                }
                '\\' => {
                    in_word = true;
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                '$' => {
                    in_word = true;
                    let name: String = match chars.peek() {
                        Some('?') => {
                            chars.next();
                            cur.push_str(&self.rc.to_string());
                            continue;
                        }
                        Some('{') => {
                            chars.next();
                            chars.by_ref().take_while(|c| *c != '}').collect()
                        }
                        _ => {
                            let mut n = String::new();
                            while let Some(c) = chars.peek() {
                                if c.is_ascii_alphanumeric() || *c == '_' {
                                    n.push(*c);
                                    chars.next();
                                } else {
                                    break;
                                }
                            }
                            if n.is_empty() {
                                cur.push('$');
                                continue;
                            }
                            n
                        }
                    };
                    if let Some(v) = self.env.get(&name) {
                        cur.push_str(v);
                    }
                }
                c if c.is_whitespace() && !dquote => {
                    if in_word {
                        words.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    in_word = true;
                    cur.push(c);
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        words
    }
}

/// Splits a line at `;` outside quotes.
fn split_commands(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut squote, mut dquote, mut escaped) = (false, false, false);
    for c in line.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if !squote => {
                escaped = true;
                cur.push(c);
            }
            '\'' if !dquote => {
                squote = !squote;
                cur.push(c);
            }
            '"' if !squote => {
                dquote = !dquote;
                cur.push(c);
            }
            ';' if !squote && !dquote => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// U-Boot reads addresses as hex, with or without `0x`.
fn parse_hex(s: &str) -> Option<u64> {
    let s = s.split(':').next()?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// A plausible size for a file, the same every time.
fn fake_size(name: &str) -> u64 {
    let h = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    8 * 1024 * 1024 + h % (4 * 1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_board::tests::power_on;

    #[test]
    fn hush_runs_a_board_files_commands_with_rc_and_variables() {
        let on = power_on(|t| t.replace("\"Image.gz\", \"initrd.gz\"", "\"Image.gz\""));
        let mut h = Hush::new(&on);
        let (out, boot) = h.run_line("setenv serverip 10.0.2.2; echo hil:rc=$?");
        assert_eq!((out.as_str(), boot), ("hil:rc=0\n", false));
        let (out, _) = h.run_line("tftp ${kernel_addr_r} Image.gz; echo hil:rc=$?");
        assert!(out.contains("Bytes transferred = "), "{out}");
        assert!(out.ends_with("hil:rc=0\n"), "{out}");
        let (out, _) = h.run_line("setenv initrd_size ${filesize}; printenv initrd_size");
        assert_eq!(out, format!("initrd_size={}\n", h.env["filesize"]));
        let (out, _) = h.run_line("tftp ${ramdisk_addr_r} initrd.gz; echo hil:rc=$?");
        assert!(
            out.contains("TFTP error: 'File not found' (1)") && out.ends_with("hil:rc=1\n"),
            "{out}"
        );
        let (out, _) =
            h.run_line("setenv bootargs 'console=ttyAMA0 panic=-1'; echo \"[$bootargs]\"");
        assert_eq!(out, "[console=ttyAMA0 panic=-1]\n");
        let (out, _) = h.run_line("frobnicate; echo hil:rc=$?");
        assert_eq!(out, "Unknown command 'frobnicate' - try 'help'\nhil:rc=1\n");
        // Nothing at the ramdisk address: not an image.
        let (out, boot) = h.run_line("booti ${ramdisk_addr_r} - ${fdt_addr}");
        assert_eq!(
            (out.as_str(), boot),
            ("Bad Linux ARM64 Image magic!\n", false)
        );
        let (out, boot) = h.run_line("booti ${kernel_addr_r} - ${fdt_addr}");
        assert!(boot && out.ends_with("Starting kernel ...\n\n"), "{out}");
    }
}
