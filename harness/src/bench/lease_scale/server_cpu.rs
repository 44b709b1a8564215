//! The CPU time of a PostgreSQL server, from /proc: the postmaster's own user and system
//! time, what it collected from children that exited (backends of closed connections),
//! and the live children's own. Read before and after a run, the difference is what the
//! server spent on it, whichever backend did the work.

use std::time::Duration;

/// User + system CPU of the server whose postmaster is `pid` and of all its children.
pub fn server_cpu(pid: u32) -> anyhow::Result<Duration> {
    let ticks = clock_ticks();
    let own = stat(pid)?;
    let mut total = own.utime + own.stime + own.cutime + own.cstime;
    for child in children(pid) {
        // A backend may exit between the listing and the read: then the postmaster
        // collects its time instead.
        if let Ok(s) = stat(child) {
            total += s.utime + s.stime;
        }
    }
    Ok(Duration::from_secs_f64(total as f64 / ticks as f64))
}

struct Stat {
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

fn stat(pid: u32) -> anyhow::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat: unexpected format"))
}

/// Fields 14–17 (utime, stime, cutime, cstime), counted after the command name, which
/// is in parentheses and may itself hold spaces and parentheses.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        cutime: field(16)?,
        cstime: field(17)?,
    })
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|t| parent_of(&t))
                == Some(pid)
        })
        .collect()
}

fn parent_of(text: &str) -> Option<u32> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_tricky_command_name_is_read() {
        let line = "4242 (postgres: hil (x) idle) S 4200 4200 4200 0 -1 4194560 500 0 0 0 \
                    17 9 3 2 20 0 1 0 100 200000 300 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.utime, s.stime, s.cutime, s.cstime), (17, 9, 3, 2));
        assert_eq!(parent_of(line), Some(4200));
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        // No children here; its own time is what is read.
        assert!(server_cpu(std::process::id()).is_ok());
    }
}
