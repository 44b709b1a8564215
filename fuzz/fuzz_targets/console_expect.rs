//! Console output through the expect engine the way a boot reads it: U-Boot's autoboot
//! line and prompt, a bootloader command's `hil:rc=N` marker, the Linux shell's
//! `HIL_S_n`/`HIL_E_n_STATUS` command markers and prompt, with U-Boot's failure lines and
//! the kernel's death patterns armed, then a watch to the end of the stream.
//!
//! Every call waits for all of these at once, as many times as they match.
//! The first byte of the input sets the chunk size the rest arrives in, so matches that
//! span chunks (and the engine's lookback window) are exercised too.
#![no_main]

use hil::console::Event;
use hil::expect::{linux_death_patterns, Expecter};
use libfuzzer_sys::fuzz_target;
use regex::bytes::Regex;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct Patterns {
    death: Vec<hil::expect::DeathPattern>,
    autoboot: Regex,
    uboot_prompt: Regex,
    rc: Regex,
    start: Regex,
    end: Regex,
    shell_prompt: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // compiled once: building regexes is most of an execution's time otherwise
        death: hil::boot::uboot_errors()
            .into_iter()
            .chain(linux_death_patterns())
            .collect(),
        autoboot: Regex::new(&regex::escape("Hit any key to stop autoboot")).unwrap(),
        uboot_prompt: Regex::new(&regex::escape("=> ")).unwrap(),
        // the same marker patterns as boot.rs and shell.rs use for command 1
        rc: Regex::new(r"hil:rc=(\d+)").unwrap(),
        start: Regex::new(r"HIL_S_1\r?\n").unwrap(),
        end: Regex::new(r"HIL_E_1_(\d+)").unwrap(),
        shell_prompt: hil::shell::prompt_regex("# $").unwrap(),
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fn status(re: &Regex, matched: &[u8]) -> Option<i32> {
    re.captures(matched)
        .and_then(|c| std::str::from_utf8(&c[1]).ok()?.parse::<i32>().ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(size % 64) + 1;
    let p = patterns();
    runtime().block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for chunk in stream.chunks(size) {
            tx.send(Event::Data(Arc::from(chunk))).unwrap();
        }
        tx.send(Event::Closed("end of input".into())).unwrap();
        let mut exp = Expecter::new(rx, p.death.clone());
        let t = Duration::from_secs(5);
        // One pattern set for every call: the engine compiles its combined regex once per
        // set, and compiling is most of an execution's time. The index says what matched.
        let all = [
            &p.autoboot,
            &p.uboot_prompt,
            &p.rc,
            &p.start,
            &p.end,
            &p.shell_prompt,
        ];
        for _ in 0..64 {
            match exp.expect(&all, t).await {
                Ok(m) => {
                    let _ = hil::text::clean(&m.before);
                    match m.index {
                        2 => drop(status(&p.rc, &m.matched)),
                        4 => drop(status(&p.end, &m.matched)),
                        _ => {}
                    }
                }
                Err(e) => {
                    let _ = e.to_string();
                    break;
                }
            }
        }
        let _ = exp.watch().await.to_string();
    });
});
