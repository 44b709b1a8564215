//! The `gpio` check: one GPIO line of the DUT (the guest by default) through sysfs.
//!
//! Flow: find the chip (sysfs `gpiochip*/label|base|ngpio`, and libgpiod's `gpiodetect` /
//! `gpioinfo` when installed, to see whether the kernel already uses the line), export
//! `base + line`, optionally set it as an output and read back 1 and 0, then for an edge
//! test: `direction=in`, `edge=...`, read the line's interrupt count in `/proc/interrupts`
//! (matched by chip label and hardware line, as the IRQ number varies), fire the stimulus
//! and poll the count until it rose by `expect_edges` or `edge_timeout_s` passed.
//! The line is unexported at the end, whatever happened.

use super::{Check, CheckCtx, CheckFuture, CheckOutput, ViaRule};
use crate::boot::BoardSession;
use crate::config::load::from_table;
use crate::config::{ConfigError, Via};
use crate::error::StepError;
use crate::outcome::Outcome;
use crate::shell::ConsoleShell;
use crate::stimulus::Stimulus;
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    Both,
    Rising,
    Falling,
}

impl Edge {
    fn sysfs(self) -> &'static str {
        match self {
            Edge::Both => "both",
            Edge::Rising => "rising",
            Edge::Falling => "falling",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    chip_label: Option<String>,
    chip: Option<String>,
    line: u32,
    #[serde(default)]
    direction_test: bool,
    edge: Option<Edge>,
    #[serde(default = "default_expect_edges")]
    expect_edges: u64,
    stimulus: Option<Stimulus>,
    #[serde(default = "default_edge_timeout")]
    edge_timeout_s: f64,
}

fn default_expect_edges() -> u64 {
    1
}

fn default_edge_timeout() -> f64 {
    10.0
}

/// How the chip is named in the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipSel {
    /// The chip's label (`9030000.pl061`, `e6055000.gpio`): stable across boots.
    Label(String),
    /// The sysfs name (`gpiochip504`).
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GpioCheck {
    pub chip: ChipSel,
    pub line: u32,
    pub direction_test: bool,
    pub edge: Option<Edge>,
    pub expect_edges: u64,
    pub stimulus: Option<Stimulus>,
    pub edge_timeout: Duration,
}

/// A chip as sysfs shows it (`/sys/class/gpio/gpiochipN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsChip {
    pub name: String,
    pub base: u32,
    pub ngpio: u32,
    pub label: String,
}

/// A chip as `gpiodetect` shows it (v1 and v2: `gpiochip0 [label] (N lines)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpiodChip {
    pub name: String,
    pub label: String,
    pub lines: u32,
}

/// One line of `gpioinfo` (libgpiod v1 or v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    /// The chip (from the `gpiochipN - M lines:` header or v2's `gpiochipN OFFSET` prefix).
    pub chip: Option<String>,
    pub offset: u32,
    pub name: Option<String>,
    pub consumer: Option<String>,
    /// `input` or `output`.
    pub direction: String,
    pub used: bool,
}

/// One shell command printing every sysfs chip and, when libgpiod is installed, gpiodetect.
pub const DISCOVER_COMMAND: &str =
    "for c in /sys/class/gpio/gpiochip*; do [ -d \"$c\" ] || continue; \
echo \"HIL_CHIP ${c##*/} $(cat $c/base) $(cat $c/ngpio) $(cat $c/label)\"; done; \
if command -v gpiodetect >/dev/null 2>&1; then echo HIL_GPIODETECT; gpiodetect; fi";

pub fn parse_sysfs_chips(out: &str) -> Vec<SysfsChip> {
    out.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("HIL_CHIP ")?;
            let mut it = rest.splitn(4, ' ');
            Some(SysfsChip {
                name: it.next()?.to_string(),
                base: it.next()?.parse().ok()?,
                ngpio: it.next()?.parse().ok()?,
                label: it.next().unwrap_or("").trim().to_string(),
            })
        })
        .collect()
}

/// `gpiochip0 [9030000.pl061] (8 lines)`, the same in libgpiod v1 and v2.
pub fn parse_gpiodetect(out: &str) -> Vec<GpiodChip> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(' ')?;
            if !name.starts_with("gpiochip") {
                return None;
            }
            let rest = rest.trim().strip_prefix('[')?;
            let (label, rest) = rest.split_once(']')?;
            let n = rest.trim().strip_prefix('(')?.split_whitespace().next()?;
            Some(GpiodChip {
                name: name.to_string(),
                label: label.to_string(),
                lines: n.parse().ok()?,
            })
        })
        .collect()
}

/// Splits a gpioinfo line's tail into words: `"quoted words"` stay one token (quotes
/// removed), as do `key="value with spaces"` attributes (quotes kept off the value).
fn tokens(s: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut tok = String::new();
        let mut quoted = false;
        if c == '"' {
            quoted = true;
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                tok.push(c);
            }
        } else {
            let mut in_q = false;
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() && !in_q {
                    break;
                }
                chars.next();
                if c == '"' {
                    in_q = !in_q;
                } else {
                    tok.push(c);
                }
            }
        }
        out.push((tok, quoted));
    }
    out
}

/// Lines of `gpioinfo` output, v1 (`line 3: unnamed "interrupt" input active-high [used]`)
/// or v2 (`line 3: "PG3" output consumer="green"`, or `gpiochip6 0 "PG0" input`).
pub fn parse_gpioinfo(out: &str) -> Vec<LineInfo> {
    let mut chip: Option<String> = None;
    let mut lines = Vec::new();
    for raw in out.lines() {
        let l = raw.trim();
        if let Some((name, rest)) = l.split_once(" - ") {
            if name.starts_with("gpiochip") && rest.ends_with("lines:") {
                chip = Some(name.to_string());
                continue;
            }
        }
        let (this_chip, offset, tail) = if let Some(r) = l.strip_prefix("line") {
            let Some((n, tail)) = r.split_once(':') else {
                continue;
            };
            let Ok(n) = n.trim().parse::<u32>() else {
                continue;
            };
            (chip.clone(), n, tail)
        } else if l.starts_with("gpiochip") {
            // v2 single-line form: `gpiochip6 0\t"PG0"\tinput`
            let mut it = l.splitn(3, char::is_whitespace);
            let (Some(c), Some(n), Some(tail)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u32>() else { continue };
            (Some(c.to_string()), n, tail)
        } else {
            continue;
        };
        let t = tokens(tail);
        if t.len() < 2 {
            continue;
        }
        let name = match &t[0] {
            (n, false) if n == "unnamed" => None,
            (n, _) => Some(n.clone()),
        };
        let is_dir = |s: &str| s == "input" || s == "output";
        let (consumer, direction, attrs) = if is_dir(&t[1].0) && !t[1].1 {
            // v2: direction, then attributes; a consumer only when the line is requested.
            let consumer = t[2..]
                .iter()
                .find_map(|(a, _)| a.strip_prefix("consumer=").map(str::to_string));
            (consumer, t[1].0.clone(), &t[2..])
        } else {
            // v1: consumer (`unused` or quoted), direction, active state, [flags].
            let consumer = match &t[1] {
                (c, false) if c == "unused" => None,
                (c, _) => Some(c.clone()),
            };
            let dir = t.get(2).map(|x| x.0.clone()).unwrap_or_default();
            (consumer, dir, &t[t.len().min(3)..])
        };
        let used = consumer.is_some() || attrs.iter().any(|(a, _)| a.starts_with("[used"));
        lines.push(LineInfo {
            chip: this_chip,
            offset,
            name,
            consumer,
            direction,
            used,
        });
    }
    lines
}

/// The interrupt count of a GPIO line in `/proc/interrupts`: the row whose chip column is
/// `label` and hardware IRQ is `line` (`9030000.pl061   3 Edge`), summed over CPUs.
/// Returns (Linux IRQ number, count).
pub fn irq_count(proc_interrupts: &str, label: &str, line: u32) -> Option<(String, u64)> {
    let mut cpus = None;
    let line_s = line.to_string();
    for l in proc_interrupts.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if cpus.is_none() && !words.is_empty() && words.iter().all(|w| w.starts_with("CPU")) {
            cpus = Some(words.len());
            continue;
        }
        let Some((irq, rest)) = words.split_first() else {
            continue;
        };
        let Some(irq) = irq.strip_suffix(':') else {
            continue;
        };
        let n =
            cpus.unwrap_or_else(|| rest.iter().take_while(|w| w.parse::<u64>().is_ok()).count());
        if rest.len() < n + 3 {
            continue;
        }
        let Some(counts) = rest[..n]
            .iter()
            .map(|w| w.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
        else {
            continue;
        };
        let tail = &rest[n..];
        let hit = tail
            .windows(3)
            .any(|w| w[0] == label && w[1] == line_s && w[2].starts_with("Edge"));
        if hit {
            // Saturating: counts are board output, and a sum that overflows must not
            // panic nor wrap round to a small number of edges.
            let total = counts.iter().fold(0u64, |a, c| a.saturating_add(*c));
            return Some((irq.to_string(), total));
        }
    }
    None
}

fn safe_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | ','))
}

/// The state a run leaves behind for the figures, whatever its outcome.
#[derive(Default)]
struct Run {
    figures: serde_json::Map<String, serde_json::Value>,
    exported: Option<u32>,
}

impl Check for GpioCheck {
    const KIND: &'static str = "gpio";
    const VIA: ViaRule = ViaRule::CONSOLE_SHELL;

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let p: Params = from_table(path, key, params)?;
        let err = |field: &str, msg: String| ConfigError::new(path, format!("{key}.{field}"), msg);
        let chip = match (p.chip_label, p.chip) {
            (Some(l), None) if safe_label(&l) => ChipSel::Label(l),
            (Some(l), None) => {
                return Err(err(
                    "chip_label",
                    format!("is {l:?}; expected a chip label such as \"9030000.pl061\""),
                ))
            }
            (None, Some(c))
                if c.strip_prefix("gpiochip")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit())) =>
            {
                ChipSel::Name(c)
            }
            (None, Some(c)) => {
                return Err(err(
                    "chip",
                    format!("is {c:?}; expected a sysfs chip name such as \"gpiochip504\""),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    "chip",
                    "is given with chip_label; expected one of them".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    "chip_label",
                    "is missing; expected chip_label (e.g. \"9030000.pl061\") or chip (e.g. \"gpiochip504\")".into(),
                ))
            }
        };
        if !p.direction_test && p.edge.is_none() {
            return Err(err(
                "edge",
                "is missing and direction_test is false; expected something to test".into(),
            ));
        }
        if p.edge.is_none() && p.stimulus.is_some() {
            return Err(err(
                "stimulus",
                "is given without edge; expected edge = \"both\"|\"rising\"|\"falling\"".into(),
            ));
        }
        if p.expect_edges == 0 {
            return Err(err("expect_edges", "is 0; expected at least 1".into()));
        }
        if !(p.edge_timeout_s.is_finite() && p.edge_timeout_s > 0.0 && p.edge_timeout_s <= 3600.0) {
            return Err(err(
                "edge_timeout_s",
                format!(
                    "is {}; expected a number of seconds > 0 and <= 3600",
                    p.edge_timeout_s
                ),
            ));
        }
        if let Some(s) = &p.stimulus {
            if let Err((field, msg)) = s.validate() {
                return Err(err(&format!("stimulus.{field}"), msg));
            }
        }
        Ok(GpioCheck {
            chip,
            line: p.line,
            direction_test: p.direction_test,
            edge: p.edge,
            expect_edges: p.expect_edges,
            stimulus: p.stimulus,
            edge_timeout: Duration::from_secs_f64(p.edge_timeout_s),
        })
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let (via, timeout) = (ctx.via, ctx.timeout);
            let s = &mut *ctx.session;
            let mut r = Run::default();
            let result = self.run_inner(s, via, timeout, &mut r).await;
            if let Some(gpio) = r.exported {
                if let Ok(sh) = shell(s, via) {
                    let _ = sh
                        .run(&Self::unexport_command(gpio), Duration::from_secs(10))
                        .await;
                }
            }
            result.map(|(outcome, message)| CheckOutput {
                outcome: Some(outcome),
                message,
                figures: r.figures,
            })
        })
    }
}

impl GpioCheck {
    /// The chip the suite means, among those sysfs shows.
    pub fn find_chip<'a>(&self, chips: &'a [SysfsChip]) -> Result<&'a SysfsChip, String> {
        let found = chips.iter().find(|c| match &self.chip {
            ChipSel::Label(l) => &c.label == l,
            ChipSel::Name(n) => &c.name == n,
        });
        let found = found.ok_or_else(|| {
            let have: Vec<String> = chips
                .iter()
                .map(|c| format!("{} [{}] base {}", c.name, c.label, c.base))
                .collect();
            let want = match &self.chip {
                ChipSel::Label(l) => format!("labelled {l}"),
                ChipSel::Name(n) => format!("named {n}"),
            };
            format!(
                "no GPIO chip {want} in /sys/class/gpio (found: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )
        })?;
        if self.line >= found.ngpio {
            return Err(format!(
                "line {} is out of range: {} has {} lines",
                self.line, found.name, found.ngpio
            ));
        }
        Ok(found)
    }

    /// `out`, 1, read, 0, read: prints the two values read back. A subshell, so the `cd`
    /// stays local (no `exit`: the command runs in the console's own shell).
    pub fn readback_command(gpio: u32) -> String {
        format!(
            "(cd /sys/class/gpio/gpio{gpio} && echo out > direction && echo 1 > value && cat value \
             && echo 0 > value && cat value)"
        )
    }

    pub fn export_command(gpio: u32) -> String {
        format!("[ -d /sys/class/gpio/gpio{gpio} ] || echo {gpio} > /sys/class/gpio/export")
    }

    pub fn edge_command(&self, gpio: u32, edge: Edge) -> String {
        format!(
            "echo in > /sys/class/gpio/gpio{gpio}/direction && echo {} > /sys/class/gpio/gpio{gpio}/edge",
            edge.sysfs()
        )
    }

    pub fn unexport_command(gpio: u32) -> String {
        format!("[ ! -d /sys/class/gpio/gpio{gpio} ] || echo {gpio} > /sys/class/gpio/unexport")
    }

    async fn run_inner(
        &self,
        s: &mut BoardSession,
        via: Via,
        t: Duration,
        r: &mut Run,
    ) -> Result<(Outcome, String), StepError> {
        let sh = shell(s, via)?;
        let disc = sh.run(DISCOVER_COMMAND, t).await?;
        let chips = parse_sysfs_chips(&disc.output);
        let chip = self.find_chip(&chips).map_err(StepError::Blocked)?.clone();
        let gpio = chip.base + self.line;
        r.figures.insert("chip".into(), chip.name.clone().into());
        r.figures.insert("label".into(), chip.label.clone().into());
        r.figures.insert("base".into(), chip.base.into());
        r.figures.insert("gpio".into(), gpio.into());
        let mut notes = vec![format!(
            "{} [{}] base {} line {} = gpio {gpio}",
            chip.name, chip.label, chip.base, self.line
        )];

        // libgpiod, when present: its chip name, and whether the kernel holds the line.
        if let Some((_, det)) = disc.output.split_once("HIL_GPIODETECT") {
            if let Some(gc) = parse_gpiodetect(det)
                .into_iter()
                .find(|c| c.label == chip.label)
            {
                r.figures
                    .insert("gpiod_chip".into(), gc.name.clone().into());
                let info = sh
                    .run(&format!("gpioinfo {}", crate::shell::quote(&gc.name)), t)
                    .await?;
                if let Some(li) = parse_gpioinfo(&info.output)
                    .into_iter()
                    .find(|l| l.offset == self.line)
                {
                    if li.used {
                        return Err(StepError::Blocked(format!(
                            "{} line {} is in use by {} (gpioinfo)",
                            gc.name,
                            self.line,
                            li.consumer.as_deref().unwrap_or("the kernel")
                        )));
                    }
                }
            }
        }

        let ex = sh.run(&Self::export_command(gpio), t).await?;
        if ex.status != 0 {
            return Err(StepError::Blocked(format!(
                "cannot export gpio {gpio} ({} line {}): {}",
                chip.label,
                self.line,
                ex.output.trim()
            )));
        }
        r.exported = Some(gpio);

        if self.direction_test {
            let o = sh.run(&Self::readback_command(gpio), t).await?;
            let vals: Vec<&str> = o.output.split_whitespace().collect();
            r.figures
                .insert("value_readback".into(), vals.join(",").into());
            if o.status != 0 || vals != ["1", "0"] {
                return Ok((
                    Outcome::Fail,
                    format!(
                        "wrong GPIO value on gpio {gpio}: wrote 1 then 0 as output, read back {:?} (exit status {})",
                        o.output.trim(),
                        o.status
                    ),
                ));
            }
            notes.push("output read back 1 and 0".into());
        }

        let Some(edge) = self.edge else {
            return Ok((Outcome::Pass, notes.join("; ")));
        };
        let e = sh.run(&self.edge_command(gpio, edge), t).await?;
        if e.status != 0 {
            return Err(StepError::Blocked(format!(
                "gpio {gpio} cannot be an interrupt (edge={}): {}",
                edge.sysfs(),
                e.output.trim()
            )));
        }
        let count = |out: &str| irq_count(out, &chip.label, self.line);
        // Only the chip's rows: the console is slow under nested emulation.
        let irq_cmd = format!(
            "grep -F {} /proc/interrupts",
            crate::shell::quote(&chip.label)
        );
        let o = sh.run(&irq_cmd, t).await?;
        let Some((irq, before)) = count(&o.output) else {
            return Ok((
                Outcome::Fail,
                format!(
                    "no /proc/interrupts row for `{} {} Edge` after edge={}",
                    chip.label,
                    self.line,
                    edge.sysfs()
                ),
            ));
        };
        r.figures.insert("irq".into(), irq.clone().into());
        r.figures.insert("irq_count_before".into(), before.into());

        let started = Instant::now();
        if let Some(st) = &self.stimulus {
            st.fire(s).await?;
        }
        let sh = shell(s, via)?;
        let mut after = before;
        loop {
            let o = sh.run(&irq_cmd, t).await?;
            if let Some((_, c)) = count(&o.output) {
                after = c;
            }
            let waited = started.elapsed();
            // `before + expect_edges` could overflow on a count near u64::MAX.
            if after.saturating_sub(before) >= self.expect_edges {
                r.figures.insert("irq_count_after".into(), after.into());
                r.figures
                    .insert("edge_latency_s".into(), waited.as_secs_f64().into());
                notes.push(format!(
                    "IRQ {irq} count {before} -> {after} {:.2} s after {}",
                    waited.as_secs_f64(),
                    self.stimulus
                        .as_ref()
                        .map_or("the start".into(), Stimulus::describe)
                ));
                return Ok((Outcome::Pass, notes.join("; ")));
            }
            if waited >= self.edge_timeout {
                r.figures.insert("irq_count_after".into(), after.into());
                return Ok((
                    Outcome::Fail,
                    format!(
                        "no edge interrupt within {} s (count stayed at {after}, expected {} more){}",
                        fmt_secs(self.edge_timeout),
                        self.expect_edges,
                        self.stimulus
                            .as_ref()
                            .map_or(String::new(), |s| format!(" after {}", s.describe()))
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn shell(s: &mut BoardSession, via: Via) -> Result<&mut ConsoleShell, StepError> {
    match via {
        Via::Guest => s.guest_shell(),
        _ => s.shell(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPIOINFO_V1: &str =
        include_str!("../../tests/data/transcripts/gpioinfo-v1-odroid-m1-rk3568.txt");
    const GPIOINFO_V2: &str = include_str!("../../tests/data/transcripts/gpioinfo-v2-stm32mp1.txt");

    fn check(extra: &[(&str, toml::Value)]) -> Result<GpioCheck, ConfigError> {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        GpioCheck::from_params(Path::new("s.toml"), "check[3]", t)
    }

    #[test]
    fn parses_gpioinfo_v1() {
        let l = parse_gpioinfo(GPIOINFO_V1);
        assert_eq!(l.len(), 20);
        assert!(l.iter().all(|x| x.chip.as_deref() == Some("gpiochip0")));
        assert_eq!(
            l[0],
            LineInfo {
                chip: Some("gpiochip0".into()),
                offset: 0,
                name: None,
                consumer: None,
                direction: "input".into(),
                used: false
            }
        );
        assert_eq!(l[2].direction, "output");
        assert!(!l[2].used);
        assert_eq!(l[3].consumer.as_deref(), Some("interrupt"));
        assert!(l[3].used);
        assert_eq!(l[4].consumer.as_deref(), Some("cd"));
        assert_eq!(l[5].consumer.as_deref(), Some("vcc5v0-usb-otg"));
        assert_eq!(l[5].direction, "output");
        assert_eq!(l[15].consumer.as_deref(), Some("blue:heartbeat"));
        assert!(!l[19].used);
    }

    #[test]
    fn parses_gpioinfo_v2() {
        let l = parse_gpioinfo(GPIOINFO_V2);
        // The single-line form, then the 13 lines of the full listing.
        assert_eq!(l.len(), 14);
        assert_eq!(l[0].chip.as_deref(), Some("gpiochip6"));
        assert_eq!(l[0].offset, 0);
        assert_eq!(l[0].name.as_deref(), Some("PG0"));
        assert_eq!(l[0].direction, "input");
        assert!(!l[0].used);
        let pg3 = &l[4];
        assert_eq!((pg3.offset, pg3.name.as_deref()), (3, Some("PG3")));
        assert_eq!(pg3.direction, "output");
        assert_eq!(pg3.consumer.as_deref(), Some("green"));
        assert!(pg3.used);
        assert_eq!(l[7].consumer.as_deref(), Some("kernel"));
        assert!(!l[6].used);
        // v2 with attributes and an unnamed line.
        let l = parse_gpioinfo(
            "gpiochip0 - 8 lines:\n\tline   3:\tunnamed\tinput edges=both consumer=\"my app\"\n\tline   4:\tunnamed\tinput\n",
        );
        assert_eq!(l[0].consumer.as_deref(), Some("my app"));
        assert_eq!(l[0].name, None);
        assert!(l[0].used && !l[1].used);
    }

    #[test]
    fn parses_gpiodetect() {
        let c = parse_gpiodetect(
            "gpiochip0 [9030000.pl061] (8 lines)\ngpiochip1 [e6055000.gpio] (32 lines)\nnoise\n",
        );
        assert_eq!(
            c[0],
            GpiodChip {
                name: "gpiochip0".into(),
                label: "9030000.pl061".into(),
                lines: 8
            }
        );
        assert_eq!(c[1].label, "e6055000.gpio");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn parses_sysfs_discovery() {
        let c = parse_sysfs_chips(
            "HIL_CHIP gpiochip504 504 8 9030000.pl061\nHIL_CHIP gpiochip0 0 16 my chip\nHIL_GPIODETECT\n",
        );
        assert_eq!(
            c[0],
            SysfsChip {
                name: "gpiochip504".into(),
                base: 504,
                ngpio: 8,
                label: "9030000.pl061".into()
            }
        );
        assert_eq!(c[1].label, "my chip");
        let g = check(&[
            ("chip_label", "9030000.pl061".into()),
            ("line", 3.into()),
            ("edge", "both".into()),
        ])
        .unwrap();
        assert_eq!(g.find_chip(&c).unwrap().base + g.line, 507);
        let g = check(&[
            ("chip", "gpiochip504".into()),
            ("line", 8.into()),
            ("direction_test", true.into()),
        ])
        .unwrap();
        assert!(g.find_chip(&c).unwrap_err().contains("out of range"));
        let g = check(&[
            ("chip_label", "e6055000.gpio".into()),
            ("line", 1.into()),
            ("direction_test", true.into()),
        ])
        .unwrap();
        let e = g.find_chip(&c).unwrap_err();
        assert!(e.contains("no GPIO chip labelled e6055000.gpio"), "{e}");
        assert!(e.contains("gpiochip504 [9030000.pl061] base 504"), "{e}");
    }

    // The guest's /proc/interrupts on the sim (GICv3, one CPU), and a two-CPU variant.
    const INTERRUPTS_1CPU: &str = "           CPU0       
 11:       4467     GICv3  27 Level     arch_timer
 13:        145     GICv3  33 Level     uart-pl011
 14:          0     GICv3  23 Level     arm-pmu
 42:          2  9030000.pl061   3 Edge      gpiolib
IPI0:          0       Rescheduling interrupts
Err:          0
";
    const INTERRUPTS_2CPU: &str = "           CPU0       CPU1       
 11:       4467       3310     GICv3  27 Level     arch_timer
 40:          1          0  9030000.pl061   2 Edge      gpiolib
 41:          3          4  9030000.pl061   3 Edge      gpiolib
 77:          9          9  e6055000.gpio  13 Edge      gpio-keys
";

    #[test]
    fn counts_interrupts_by_chip_and_line() {
        assert_eq!(
            irq_count(INTERRUPTS_1CPU, "9030000.pl061", 3),
            Some(("42".into(), 2))
        );
        assert_eq!(
            irq_count(INTERRUPTS_2CPU, "9030000.pl061", 3),
            Some(("41".into(), 7))
        );
        assert_eq!(
            irq_count(INTERRUPTS_2CPU, "9030000.pl061", 2),
            Some(("40".into(), 1))
        );
        assert_eq!(
            irq_count(INTERRUPTS_2CPU, "e6055000.gpio", 13),
            Some(("77".into(), 18))
        );
        assert_eq!(irq_count(INTERRUPTS_1CPU, "9030000.pl061", 4), None);
        assert_eq!(irq_count(INTERRUPTS_1CPU, "GICv3", 3), None);
        assert_eq!(irq_count("", "9030000.pl061", 3), None);
        // `grep -F LABEL /proc/interrupts`: no CPU header, the counts are the leading numbers.
        assert_eq!(
            irq_count(
                " 40:          1          0  9030000.pl061   2 Edge      gpiolib\n 41:          3          4  9030000.pl061   3 Edge      gpiolib\n",
                "9030000.pl061",
                3
            ),
            Some(("41".into(), 7))
        );
    }

    #[test]
    fn an_irq_count_sum_that_overflows_saturates() {
        // An input of the gpio fuzz target: the per-CPU counts summed with `+` panicked (with
        // overflow checks) or wrapped round to a small count.
        let out = " 42:  18446744073709551615  1  9030000.pl061   3 Edge      gpiolib\n";
        assert_eq!(
            irq_count(out, "9030000.pl061", 3),
            Some(("42".into(), u64::MAX))
        );
    }

    #[test]
    fn command_builders() {
        assert_eq!(
            GpioCheck::export_command(507),
            "[ -d /sys/class/gpio/gpio507 ] || echo 507 > /sys/class/gpio/export"
        );
        assert_eq!(
            GpioCheck::unexport_command(507),
            "[ ! -d /sys/class/gpio/gpio507 ] || echo 507 > /sys/class/gpio/unexport"
        );
        let g = check(&[
            ("chip_label", "9030000.pl061".into()),
            ("line", 3.into()),
            ("edge", "both".into()),
        ])
        .unwrap();
        assert_eq!(
            g.edge_command(507, Edge::Both),
            "echo in > /sys/class/gpio/gpio507/direction && echo both > /sys/class/gpio/gpio507/edge"
        );
        assert!(GpioCheck::readback_command(504)
            .starts_with("(cd /sys/class/gpio/gpio504 && echo out > direction && echo 1 > value"));
    }

    #[test]
    fn params_validate() {
        let g = check(&[
            ("chip_label", "9030000.pl061".into()),
            ("line", 3.into()),
            ("edge", "both".into()),
            ("expect_edges", 2.into()),
            ("edge_timeout_s", 8.into()),
            (
                "stimulus",
                toml::Value::Table(toml::toml! { kind = "qmp"
                command = "system_powerdown" }),
            ),
        ])
        .unwrap();
        assert_eq!(g.edge, Some(Edge::Both));
        assert_eq!(g.edge_timeout, Duration::from_secs(8));
        assert_eq!(
            g.stimulus,
            Some(Stimulus::Qmp {
                command: "system_powerdown".into()
            })
        );
        let key = |e: Result<GpioCheck, ConfigError>| e.unwrap_err().key;
        assert_eq!(
            key(check(&[("line", 3.into()), ("edge", "both".into())])),
            "check[3].chip_label"
        );
        assert_eq!(
            key(check(&[
                ("chip", "504".into()),
                ("line", 3.into()),
                ("edge", "both".into())
            ])),
            "check[3].chip"
        );
        assert_eq!(
            key(check(&[
                ("chip_label", "x; reboot".into()),
                ("line", 3.into()),
                ("edge", "both".into())
            ])),
            "check[3].chip_label"
        );
        assert_eq!(
            key(check(&[("chip", "gpiochip0".into()), ("line", 3.into())])),
            "check[3].edge"
        );
        assert_eq!(
            key(check(&[
                ("chip", "gpiochip0".into()),
                ("line", 3.into()),
                ("edge", "up".into())
            ])),
            "check[3].edge"
        );
        assert_eq!(
            key(check(&[
                ("chip", "gpiochip0".into()),
                ("line", 3.into()),
                ("edge", "both".into()),
                ("edge_timeout_s", 0.into())
            ])),
            "check[3].edge_timeout_s"
        );
        assert_eq!(
            key(check(&[
                ("chip", "gpiochip0".into()),
                ("line", 3.into()),
                ("edge", "both".into()),
                (
                    "stimulus",
                    toml::Value::Table(toml::toml! { kind = "qmp"
                    command = "quit; x" })
                )
            ])),
            "check[3].stimulus.command"
        );
    }
}
