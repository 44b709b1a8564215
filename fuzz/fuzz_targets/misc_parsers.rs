//! The other parsers of board, tool and wire text, one input through all of them: ping's
//! summary, the kernel config and IOMMU probe of preflight, the vfio-platform probe, an
//! OpenSSH public key line, the follow socket's header, QEMU's
//! `query-chardev` answer, pdudaemon's HTTP answer, and the board file's small value
//! parsers (console device, serial format, SSH console address, PCI ranges, BARs, windows
//! and class prefixes, `{placeholder}` expansion).
#![no_main]

use hil::config::board::ConsoleDevice;
use hil::config::serial_line::{Flow, SerialLine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hil::checks::ping::parse(&text);
    let _ = hil::checks::preflight::config_source(&text);
    let _ = hil::checks::preflight::iommu_found(&text);
    let config = hil::checks::preflight::parse_config(&text);
    let _ = hil::checks::preflight::missing_options(
        &config,
        &["CONFIG_VFIO".to_string(), "CONFIG_ARM_SMMU_V3".to_string()],
    );
    let _ = hil::checks::preflight::shorten(&text, 40);
    let _ = hil::checks::vfio_platform::parse_probe(&text);
    let _ = hil::console::follow::proto::Header::parse(&text);
    let _ = hil::power::pdudaemon::parse_answer(data);
    let _ = hil::text::clean(data);
    let _ = hil::text::excerpt(&text);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let _ = hil::qmp::pty_of(&v, "serial0");
    }
    let _ = hil::config::expand::placeholders(&text);
    let _ = hil::config::expand::unknown_placeholder(&text);
    let mut vars = hil::config::expand::Vars::new();
    vars.insert("images", "/srv/images".into());
    let _ = hil::config::expand::expand(&text, &vars);
    for line in text.lines() {
        let _ = hil::ssh::parse_public_key(line);
        let _ = ConsoleDevice::parse(line);
        for flow in [Flow::None, Flow::XonXoff, Flow::RtsCts] {
            let _ = SerialLine::parse(115_200, line, flow);
        }
        if let Some(rest) = line.strip_prefix("ssh://") {
            let _ = hil::config::console_ssh::parse_addr(line, rest);
        }
        let _ = hil::config::pcie::parse_range(line);
        let _ = hil::config::pcie::parse_bar(line);
        let _ = hil::config::pcie::parse_window(line);
        let _ = hil::config::pcie::parse_class_prefix(line);
    }
});
