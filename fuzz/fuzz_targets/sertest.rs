//! linux-serial-test (`sertest`) output: the whole-report parser and each line parser.
#![no_main]

use hil::checks::sertest::{parse, parse_detected, parse_error, parse_lst_count, parse_stats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let _ = format!("{:?}", parse(&out));
    for line in out.lines() {
        let _ = parse_detected(line);
        let _ = parse_stats(line);
        let _ = parse_error(line);
        let _ = parse_lst_count(line);
    }
});
