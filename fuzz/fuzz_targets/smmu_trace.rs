//! The SMMUv3 side of the dma check: QEMU's smmuv3 trace file, the on-board DMA tool's
//! report, and a stream ID from a PCI address.
#![no_main]

use hil::checks::dma::{parse_tool, parse_trace, stream_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for t in parse_trace(&text).values() {
        let _ = t.fault_events();
    }
    let _ = parse_tool(&text);
    for line in text.lines() {
        let _ = stream_id(line);
    }
});
