//! GPIO tool and sysfs output: `gpioinfo` (libgpiod v1 and v2), `gpiodetect`, the sysfs
//! chip listing, and a line's count in `/proc/interrupts`.
#![no_main]

use hil::checks::gpio::{irq_count, parse_gpiodetect, parse_gpioinfo, parse_sysfs_chips};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let _ = parse_gpioinfo(&out);
    let _ = parse_gpiodetect(&out);
    let _ = parse_sysfs_chips(&out);
    // the chip labels and line numbers the output itself names, and a fixed one
    let _ = irq_count(&out, "9030000.pl061", 3);
    for chip in parse_gpiodetect(&out) {
        let _ = irq_count(&out, &chip.label, 0);
    }
});
