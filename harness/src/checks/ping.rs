//! The `ping` check: ICMP echo from the DUT (board or guest) to a target; pass when the
//! packet loss and the average round trip are within the suite's limits. Reads the
//! summary of both busybox and iputils `ping`.

use super::{Check, CheckCtx, CheckFuture, CheckOutput, ViaRule};
use crate::config::load::from_table;
use crate::config::ConfigError;
use crate::outcome::Outcome;
use regex::Regex;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::LazyLock;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// QEMU user networking answers ICMP echo at its gateway, so the sim needs no peer.
    #[serde(default = "default_target")]
    target: String,
    #[serde(default = "default_count")]
    count: u32,
    interval_s: Option<f64>,
    #[serde(default)]
    max_loss_pct: f64,
    max_avg_rtt_ms: Option<f64>,
    interface: Option<String>,
}

fn default_target() -> String {
    "10.0.2.2".into()
}

fn default_count() -> u32 {
    5
}

#[derive(Debug, Clone, PartialEq)]
pub struct PingCheck {
    pub target: String,
    pub count: u32,
    pub interval_s: Option<f64>,
    pub max_loss_pct: f64,
    pub max_avg_rtt_ms: Option<f64>,
    pub interface: Option<String>,
}

/// The summary `ping` prints at the end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingStats {
    pub transmitted: u64,
    pub received: u64,
    /// As printed by ping (busybox rounds down to an integer, iputils does not).
    pub loss_pct: f64,
    /// iputils' `+N errors` (ICMP errors such as "Destination Host Unreachable"); these
    /// packets already count as lost. Busybox does not report them: 0.
    pub errors: u64,
    /// Absent when nothing came back (no round-trip line).
    pub rtt_min_ms: Option<f64>,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
}

/// busybox: `3 packets transmitted, 3 packets received, 0% packet loss`
/// (with `N duplicates, ` before the loss when there were some);
/// iputils: `3 packets transmitted, 3 received, +1 errors, 0% packet loss, time 2003ms`.
static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^(\d+) packets transmitted, (\d+) (?:packets )?received(.*)$")
        .expect("static regex")
});
static LOSS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([0-9]+(?:\.[0-9]+)?)% packet loss").expect("static regex"));
static ERRORS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+(\d+) errors").expect("static regex"));
/// busybox: `round-trip min/avg/max = a/b/c ms`; iputils: `rtt min/avg/max/mdev = a/b/c/d ms`.
static RTT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?m)^(?:rtt|round-trip) min/avg/max(?:/\w+)? = ([0-9.]+)/([0-9.]+)/([0-9.]+)(?:/[0-9.]+)? ms",
    )
    .expect("static regex")
});

impl Check for PingCheck {
    const KIND: &'static str = "ping";
    const VIA: ViaRule = ViaRule::CONSOLE_SHELL;

    fn from_params(path: &Path, key: &str, params: toml::Table) -> Result<Self, ConfigError> {
        let p: Params = from_table(path, key, params)?;
        let err = |field: &str, msg: String| ConfigError::new(path, format!("{key}.{field}"), msg);
        if !valid_target(&p.target) {
            return Err(err(
                "target",
                format!(
                    "is {:?}; expected an IPv4 address or a host name of letters, digits, \
                     '.', '-' and ':' (not starting with '-')",
                    p.target
                ),
            ));
        }
        if p.count == 0 {
            return Err(err("count", "is 0; expected at least 1 packet".into()));
        }
        if let Some(i) = p.interval_s {
            if !(i.is_finite() && i > 0.0) {
                return Err(err(
                    "interval_s",
                    format!("is {i}; expected a number of seconds > 0"),
                ));
            }
        }
        if !(0.0..=100.0).contains(&p.max_loss_pct) {
            return Err(err(
                "max_loss_pct",
                format!("is {}; expected a percentage from 0 to 100", p.max_loss_pct),
            ));
        }
        if let Some(r) = p.max_avg_rtt_ms {
            if !(r.is_finite() && r > 0.0) {
                return Err(err(
                    "max_avg_rtt_ms",
                    format!("is {r}; expected a number of milliseconds > 0"),
                ));
            }
        }
        if let Some(i) = &p.interface {
            if !valid_interface(i) {
                return Err(err(
                    "interface",
                    format!(
                        "is {i:?}; expected an interface name or source address of letters, \
                         digits, '.', '_', '-' and ':' (not starting with '-')"
                    ),
                ));
            }
        }
        Ok(PingCheck {
            target: p.target,
            count: p.count,
            interval_s: p.interval_s,
            max_loss_pct: p.max_loss_pct,
            max_avg_rtt_ms: p.max_avg_rtt_ms,
            interface: p.interface,
        })
    }

    fn run<'a>(&'a self, ctx: &'a mut CheckCtx<'_>) -> CheckFuture<'a> {
        Box::pin(async move {
            let timeout = ctx.timeout;
            let shell = ctx.console_shell()?;
            let out = shell.run(&self.command(), timeout).await?;
            Ok(self.judge(parse(&out.output), out.status, &out.output))
        })
    }
}

impl PingCheck {
    /// `ping -c N [-i S] [-I IFACE] TARGET`; the options busybox and iputils share.
    pub fn command(&self) -> String {
        let mut args = vec!["ping".to_string(), "-c".into(), self.count.to_string()];
        if let Some(i) = self.interval_s {
            args.push("-i".into());
            args.push(i.to_string());
        }
        if let Some(iface) = &self.interface {
            args.push("-I".into());
            args.push(iface.clone());
        }
        args.push(self.target.clone());
        // Validation already allows only safe characters; quoting keeps a future relaxation
        // of it from turning suite text into shell syntax.
        crate::shell::join(args)
    }

    fn judge(&self, stats: Option<PingStats>, status: i32, output: &str) -> CheckOutput {
        let cmd = self.command();
        let Some(s) = stats else {
            // No summary: ping did not run (missing applet, bad address, no route...).
            return CheckOutput {
                outcome: Some(Outcome::Fail),
                message: format!(
                    "`{cmd}`: no ping summary in the output (exit status {status}); output: {:?}",
                    crate::text::excerpt(output)
                ),
                figures: serde_json::Map::new(),
            };
        };
        let mut figures = serde_json::Map::new();
        figures.insert("transmitted".into(), s.transmitted.into());
        figures.insert("received".into(), s.received.into());
        figures.insert("loss_pct".into(), s.loss_pct.into());
        for (k, v) in [
            ("rtt_min_ms", s.rtt_min_ms),
            ("rtt_avg_ms", s.rtt_avg_ms),
            ("rtt_max_ms", s.rtt_max_ms),
        ] {
            figures.insert(k.into(), v.map_or(serde_json::Value::Null, Into::into));
        }

        let mut problems = Vec::new();
        // busybox prints "0% packet loss" when nothing was sent: not a pass.
        if s.transmitted < u64::from(self.count) {
            problems.push(format!(
                "only {} of {} packets were sent",
                s.transmitted, self.count
            ));
        }
        if s.loss_pct > self.max_loss_pct {
            let errors = if s.errors > 0 {
                format!(", {} ICMP errors", s.errors)
            } else {
                String::new()
            };
            problems.push(format!(
                "{}% packet loss ({} of {} replies{errors}), limit {}%",
                s.loss_pct, s.received, s.transmitted, self.max_loss_pct
            ));
        }
        if let Some(limit) = self.max_avg_rtt_ms {
            match s.rtt_avg_ms {
                Some(avg) if avg > limit => {
                    problems.push(format!("average round trip {avg} ms, limit {limit} ms"))
                }
                Some(_) => {}
                None => problems.push(format!(
                    "no round trip measured (no replies), limit {limit} ms"
                )),
            }
        }
        let rtt = match (s.rtt_min_ms, s.rtt_avg_ms, s.rtt_max_ms) {
            (Some(a), Some(b), Some(c)) => format!(", rtt min/avg/max {a}/{b}/{c} ms"),
            _ => String::new(),
        };
        let summary = format!(
            "{}/{} replies from {}, {}% loss{rtt}",
            s.received, s.transmitted, self.target, s.loss_pct
        );
        if problems.is_empty() {
            CheckOutput {
                outcome: Some(Outcome::Pass),
                message: format!("`{cmd}`: {summary}"),
                figures,
            }
        } else {
            CheckOutput {
                outcome: Some(Outcome::Fail),
                message: format!("`{cmd}`: {}; {summary}", problems.join("; ")),
                figures,
            }
        }
    }
}

/// The final summary of busybox or iputils `ping`; `None` when there is none.
pub fn parse(output: &str) -> Option<PingStats> {
    let c = SUMMARY.captures_iter(output).last()?;
    let transmitted: u64 = c[1].parse().ok()?;
    let received: u64 = c[2].parse().ok()?;
    let rest = &c[3];
    let loss_pct = match LOSS.captures(rest) {
        Some(l) => l[1].parse().ok()?,
        None if transmitted > 0 => {
            (transmitted.saturating_sub(received)) as f64 * 100.0 / transmitted as f64
        }
        None => 0.0,
    };
    let errors = ERRORS
        .captures(rest)
        .and_then(|e| e[1].parse().ok())
        .unwrap_or(0);
    let rtt = RTT.captures_iter(output).last().and_then(|r| {
        Some((
            r[1].parse::<f64>().ok()?,
            r[2].parse::<f64>().ok()?,
            r[3].parse::<f64>().ok()?,
        ))
    });
    Some(PingStats {
        transmitted,
        received,
        loss_pct,
        errors,
        rtt_min_ms: rtt.map(|r| r.0),
        rtt_avg_ms: rtt.map(|r| r.1),
        rtt_max_ms: rtt.map(|r| r.2),
    })
}

/// A leading '-' would make ping read the target as an option.
fn valid_target(t: &str) -> bool {
    t.parse::<Ipv4Addr>().is_ok()
        || (!t.is_empty()
            && t.len() <= 253
            && !t.starts_with('-')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':')))
}

/// `-I` takes an interface name or a source address.
fn valid_interface(i: &str) -> bool {
    !i.is_empty()
        && i.len() <= 64
        && !i.starts_with('-')
        && i.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(extra: &[(&str, toml::Value)]) -> PingCheck {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        PingCheck::from_params(Path::new("s.toml"), "check[0]", t).unwrap()
    }

    fn error(extra: &[(&str, toml::Value)]) -> ConfigError {
        let mut t = toml::Table::new();
        for (k, v) in extra {
            t.insert((*k).into(), v.clone());
        }
        PingCheck::from_params(Path::new("s.toml"), "check[2]", t).unwrap_err()
    }

    // Recorded on this machine with Debian's busybox-static 1.35.0 (`ping -c 3 -i 0.2
    // 127.0.0.1`).
    const BUSYBOX_OK: &str = "PING 127.0.0.1 (127.0.0.1): 56 data bytes
64 bytes from 127.0.0.1: seq=0 ttl=64 time=0.425 ms
64 bytes from 127.0.0.1: seq=1 ttl=64 time=0.117 ms
64 bytes from 127.0.0.1: seq=2 ttl=64 time=0.083 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 packets received, 0% packet loss
round-trip min/avg/max = 0.083/0.208/0.425 ms
";
    // busybox ping.c print_stats(): no round-trip line when nothing came back.
    const BUSYBOX_ALL_LOST: &str = "PING 10.0.2.2 (10.0.2.2): 56 data bytes

--- 10.0.2.2 ping statistics ---
5 packets transmitted, 0 packets received, 100% packet loss
";
    const BUSYBOX_DUPLICATES: &str = "--- 10.0.2.2 ping statistics ---
4 packets transmitted, 3 packets received, 1 duplicates, 25% packet loss
round-trip min/avg/max = 1.000/2.000/3.000 ms
";
    const IPUTILS_OK: &str = "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data.
64 bytes from 10.0.2.2: icmp_seq=1 ttl=255 time=0.079 ms
64 bytes from 10.0.2.2: icmp_seq=2 ttl=255 time=0.045 ms
64 bytes from 10.0.2.2: icmp_seq=3 ttl=255 time=0.059 ms

--- 10.0.2.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.045/0.061/0.079/0.013 ms
";
    const IPUTILS_ERRORS: &str = "PING 192.168.7.9 (192.168.7.9) 56(84) bytes of data.
From 192.168.7.1 icmp_seq=1 Destination Host Unreachable
From 192.168.7.1 icmp_seq=2 Destination Host Unreachable
From 192.168.7.1 icmp_seq=3 Destination Host Unreachable

--- 192.168.7.9 ping statistics ---
3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2036ms
";
    const IPUTILS_PARTIAL: &str = "--- 10.0.2.2 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2004ms
rtt min/avg/max/mdev = 0.045/0.050/0.055/0.005 ms
";

    #[test]
    fn parses_busybox() {
        let s = parse(BUSYBOX_OK).unwrap();
        assert_eq!((s.transmitted, s.received, s.errors), (3, 3, 0));
        assert_eq!(s.loss_pct, 0.0);
        assert_eq!(s.rtt_min_ms, Some(0.083));
        assert_eq!(s.rtt_avg_ms, Some(0.208));
        assert_eq!(s.rtt_max_ms, Some(0.425));

        let s = parse(BUSYBOX_ALL_LOST).unwrap();
        assert_eq!((s.transmitted, s.received, s.loss_pct), (5, 0, 100.0));
        assert_eq!(
            (s.rtt_min_ms, s.rtt_avg_ms, s.rtt_max_ms),
            (None, None, None)
        );

        let s = parse(BUSYBOX_DUPLICATES).unwrap();
        assert_eq!((s.transmitted, s.received, s.loss_pct), (4, 3, 25.0));
        assert_eq!(s.rtt_avg_ms, Some(2.0));
    }

    #[test]
    fn parses_iputils() {
        let s = parse(IPUTILS_OK).unwrap();
        assert_eq!((s.transmitted, s.received, s.loss_pct), (3, 3, 0.0));
        assert_eq!(s.rtt_min_ms, Some(0.045));
        assert_eq!(s.rtt_avg_ms, Some(0.061));
        assert_eq!(s.rtt_max_ms, Some(0.079));

        let s = parse(IPUTILS_ERRORS).unwrap();
        assert_eq!((s.transmitted, s.received, s.errors), (3, 0, 3));
        assert_eq!(s.loss_pct, 100.0);
        assert_eq!(s.rtt_avg_ms, None);

        let s = parse(IPUTILS_PARTIAL).unwrap();
        assert_eq!(s.loss_pct, 33.3333);
    }

    #[test]
    fn no_summary_is_none() {
        assert_eq!(parse("ping: bad address 'nosuchhost'\n"), None);
        assert_eq!(parse("/bin/sh: ping: not found\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn command_has_only_the_options_asked_for() {
        assert_eq!(check(&[]).command(), "ping -c 5 10.0.2.2");
        let c = check(&[
            ("target", "gw.lab-1.example".into()),
            ("count", 3.into()),
            ("interval_s", 0.2.into()),
            ("interface", "eth0".into()),
        ]);
        assert_eq!(c.command(), "ping -c 3 -i 0.2 -I eth0 gw.lab-1.example");
        assert_eq!(
            check(&[("interval_s", 1.0.into())]).command(),
            "ping -c 5 -i 1 10.0.2.2"
        );
    }

    #[test]
    fn judges_loss_and_rtt() {
        let c = check(&[("count", 3.into())]);
        let o = c.judge(parse(BUSYBOX_OK), 0, BUSYBOX_OK);
        assert_eq!(o.outcome, Some(Outcome::Pass), "{}", o.message);
        assert_eq!(o.figures["received"], 3);
        assert_eq!(o.figures["rtt_avg_ms"], 0.208);

        let o = c.judge(parse(IPUTILS_PARTIAL), 0, IPUTILS_PARTIAL);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message
                .contains("33.3333% packet loss (2 of 3 replies), limit 0%"),
            "{}",
            o.message
        );

        let lenient = check(&[("count", 3.into()), ("max_loss_pct", 50.0.into())]);
        let o = lenient.judge(parse(IPUTILS_PARTIAL), 0, IPUTILS_PARTIAL);
        assert_eq!(o.outcome, Some(Outcome::Pass), "{}", o.message);

        let slow = check(&[("count", 3.into()), ("max_avg_rtt_ms", 0.1.into())]);
        let o = slow.judge(parse(BUSYBOX_OK), 0, BUSYBOX_OK);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message
                .contains("average round trip 0.208 ms, limit 0.1 ms"),
            "{}",
            o.message
        );
    }

    #[test]
    fn total_loss_fails_with_figures() {
        let c = check(&[]);
        let o = c.judge(parse(BUSYBOX_ALL_LOST), 1, BUSYBOX_ALL_LOST);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message.contains("100% packet loss (0 of 5 replies)"),
            "{}",
            o.message
        );
        assert_eq!(o.figures["rtt_avg_ms"], serde_json::Value::Null);
        assert_eq!(o.figures["loss_pct"], 100.0);

        let c = check(&[("count", 3.into())]);
        let o = c.judge(parse(IPUTILS_ERRORS), 1, IPUTILS_ERRORS);
        assert!(o.message.contains("3 ICMP errors"), "{}", o.message);

        // Everything may be lost, but then there is no round trip to hold to a limit.
        let c = check(&[
            ("max_loss_pct", 100.0.into()),
            ("max_avg_rtt_ms", 5.0.into()),
        ]);
        let o = c.judge(parse(BUSYBOX_ALL_LOST), 1, BUSYBOX_ALL_LOST);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message.contains("no round trip measured"),
            "{}",
            o.message
        );
    }

    #[test]
    fn nothing_sent_is_not_a_pass() {
        let out = "--- 10.0.2.2 ping statistics ---\n0 packets transmitted, 0 packets received, 0% packet loss\n";
        let o = check(&[]).judge(parse(out), 1, out);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(
            o.message.contains("only 0 of 5 packets were sent"),
            "{}",
            o.message
        );
    }

    #[test]
    fn unparseable_output_fails_with_excerpt() {
        let out = "ping: sendto: Network is unreachable\n";
        let o = check(&[]).judge(parse(out), 1, out);
        assert_eq!(o.outcome, Some(Outcome::Fail));
        assert!(o.message.contains("no ping summary"), "{}", o.message);
        assert!(
            o.message.contains("Network is unreachable"),
            "{}",
            o.message
        );
        assert!(o.message.contains("exit status 1"), "{}", o.message);
    }

    #[test]
    fn bad_params_name_the_key() {
        let e = error(&[("target", "10.0.2.2; reboot".into())]);
        assert_eq!(e.key, "check[2].target");
        assert!(e.message.contains("IPv4 address or a host name"), "{e}");
        assert_eq!(error(&[("target", "-f".into())]).key, "check[2].target");
        assert_eq!(error(&[("target", "".into())]).key, "check[2].target");
        assert_eq!(error(&[("count", 0.into())]).key, "check[2].count");
        assert_eq!(
            error(&[("max_loss_pct", 101.0.into())]).key,
            "check[2].max_loss_pct"
        );
        assert_eq!(
            error(&[("max_loss_pct", (-1.0).into())]).key,
            "check[2].max_loss_pct"
        );
        assert_eq!(
            error(&[("max_loss_pct", f64::NAN.into())]).key,
            "check[2].max_loss_pct"
        );
        assert_eq!(
            error(&[("interval_s", 0.0.into())]).key,
            "check[2].interval_s"
        );
        assert_eq!(
            error(&[("max_avg_rtt_ms", (-3.0).into())]).key,
            "check[2].max_avg_rtt_ms"
        );
        assert_eq!(
            error(&[("interface", "eth0 $(x)".into())]).key,
            "check[2].interface"
        );
        let e = error(&[("tagret", "10.0.2.2".into())]);
        assert!(e.message.contains("unknown field `tagret`"), "{e}");
        let e = error(&[("count", "five".into())]);
        assert_eq!(e.key, "check[2].count");
    }

    #[test]
    fn accepts_addresses_and_names() {
        for t in ["10.0.2.2", "localhost", "board-7.lab.example", "fe80::1"] {
            assert_eq!(check(&[("target", t.into())]).target, t);
        }
    }
}
