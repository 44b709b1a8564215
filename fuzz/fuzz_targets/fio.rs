//! Block I/O tool output of the nvme_io check: fio's JSON (and text that is not JSON),
//! the device probe, dd's statistics and records lines, and the timing stamps.
#![no_main]

use hil::checks::nvme_io::{
    parse_dd_stats, parse_fio_json, parse_probe, parse_records_out, parse_stamps, transfer_seconds,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let _ = parse_fio_json(&out);
    let _ = parse_probe(&out);
    let _ = parse_dd_stats(&out);
    let _ = parse_records_out(&out);
    let _ = parse_stamps(&out);
    let _ = transfer_seconds(&out);
});
