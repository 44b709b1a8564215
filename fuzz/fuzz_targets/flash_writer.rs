//! Renesas Flash Writer's output (harness/src/flash/flash_writer.rs): prompt detection,
//! DIP-switch instructions, the banner, SCIF download mode, outcome classification, and
//! each plan's dialogue fed the output in pieces as the backend feeds it.
#![no_main]

use hil::flash::flash_writer::{
    classify, detect_prompt, dip_instructions, in_scif_download_mode, parse_banner, EmmcPartition,
    EmmcWritePlan, LoadWriterPlan, Next, SpiFlash, Xls2Plan, Xls3Plan,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let _ = detect_prompt(&out);
    let _ = dip_instructions(&out);
    let _ = parse_banner(&out);
    let _ = in_scif_download_mode(&out);
    if let Some(o) = classify(&out) {
        let _ = o.class();
    }
    let dialogues = [
        Xls2Plan::hyperflash(0xe630_0400, 0x4_0000, "bl2.srec").dialogue(),
        Xls3Plan {
            size: 0x1000,
            flash_addr: 0,
            bin: "bl2.bin".into(),
            flash: SpiFlash::OnBoardQspi,
        }
        .dialogue(),
        EmmcWritePlan {
            partition: EmmcPartition::Boot1,
            start_sector: 0,
            program_addr: 0xe630_0400,
            srec: "bl2.srec".into(),
        }
        .dialogue(),
        LoadWriterPlan {
            mot: "writer.mot".into(),
        }
        .dialogue(),
    ];
    // The output arrives in pieces split at NUL bytes; a reply starts a new buffer, as
    // the backend does.
    for mut d in dialogues {
        let mut since = String::new();
        for piece in out.split('\0') {
            since.push_str(piece);
            match d.advance(&since) {
                Ok(Next::Wait) => {}
                Ok(Next::Reply(r)) => {
                    let _ = r.typed_bytes();
                    since.clear();
                }
                Ok(Next::Finished(o)) => {
                    let _ = o.class();
                    break;
                }
                Err(e) => {
                    let _ = (e.class(), e.to_string());
                    break;
                }
            }
        }
    }
});
