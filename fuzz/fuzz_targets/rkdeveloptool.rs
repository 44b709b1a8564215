//! rkdeveloptool's output (harness/src/flash/rkdeveloptool.rs): the `ld` device list, the
//! message scanner, `wl` progress, and the per-step classifier for every step hil runs.
#![no_main]

use hil::flash::rkdeveloptool::{
    class_of, classify_step, last_write_progress, parse_ld, scan, Step,
};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    // The first byte is the exit status (or none), the rest is what the tool printed.
    let Some((&code, rest)) = data.split_first() else {
        return;
    };
    let out = String::from_utf8_lossy(rest);
    if let Ok(devs) = parse_ld(&out) {
        for d in &devs {
            let _ = d.soc();
        }
    }
    let _ = scan(&out);
    let _ = last_write_progress(&out);
    let status = match code {
        0xff => None,
        c => Some(i32::from(c as i8)),
    };
    let steps = [
        Step::ListDevices,
        Step::DownloadBoot {
            loader: PathBuf::from("loader.bin"),
        },
        Step::UpgradeLoader {
            loader: PathBuf::from("loader.bin"),
        },
        Step::WriteLba {
            sector: 0,
            image: PathBuf::from("image.img"),
        },
        Step::EraseFlash,
        Step::ResetDevice { subcode: None },
        Step::ResetDevice { subcode: Some(3) },
    ];
    for step in &steps {
        let r = classify_step(step, &out, status);
        let _ = class_of(&r);
        let _ = format!("{r:?}");
    }
});
