//! The R-Car flow on sim-rcar, in one board run (one board boot, one nested guest boot):
//! vfio-platform is blocked (the sim kernel has no VFIO_PLATFORM), GPIO value read-back and
//! an edge interrupt pulsed over QMP pass, and the sertest loopback (slave in the guest on
//! the passed-through 16550 0000:00:06.0, master on the board on the port wired to it,
//! 0000:00:05.0) moves 4 KiB each way. A stimulus that never comes and corrupted loopback
//! data make those checks fail.

use crate::common::*;
use crate::sim::{case, lock, out_dir};

fn run_rcar(suite: &str, out: &std::path::Path) -> (i32, serde_json::Value) {
    crate::sim::run_suite(suite, "sim-rcar", out, &[])
}

/// suites/rcar-passthrough.toml as shipped, with a 4 KiB sertest instead of 64 KiB (the
/// emulated link moves a few hundred bytes/s), followed by the failing checks of
/// tests/data/suites/rcar-faults.toml.
fn shipped_suite_then_faults(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(repo().join("suites/rcar-passthrough.toml")).unwrap();
    assert!(shipped.contains("\nbytes = 65536\n") && shipped.contains("\ntimeout_s = 1200\n"));
    let shipped = shipped
        .replace("\nbytes = 65536\n", "\nbytes = 4096\n")
        .replace("\ntimeout_s = 1200\n", "\ntimeout_s = 600\n");
    let faults = std::fs::read_to_string(data("suites/rcar-faults.toml")).unwrap();
    let checks = &faults[faults.find("\n[[check]]").expect("a check")..];
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("rcar-passthrough-then-faults.toml");
    std::fs::write(&p, format!("{shipped}\n{checks}")).unwrap();
    p
}

#[test]
fn rcar_flow_passes_gpio_and_sertest_blocks_vfio_platform_and_fails_on_missing_edges_and_corruption(
) {
    let _l = lock();
    let out = out_dir("rcar");
    let suite = shipped_suite_then_faults(&out_dir("rcar-suite"));
    let (code, results) = run_rcar(suite.to_str().unwrap(), &out);

    let vp = case(&results, "sim-rcar", "vfio-platform");
    assert_eq!(vp["outcome"], "blocked", "{vp}");
    let msg = vp["message"].as_str().unwrap();
    assert!(msg.starts_with("unsupported configuration:"), "{vp}");
    assert!(msg.contains("kernel has no vfio-platform driver"), "{vp}");
    assert!(msg.contains("CONFIG_VFIO_PLATFORM is not set"), "{vp}");

    let rb = case(&results, "sim-rcar", "gpio-readback");
    assert_eq!(rb["outcome"], "pass", "{rb}");
    assert_eq!(rb["figures"]["base"], 504, "{rb}");
    assert_eq!(rb["figures"]["value_readback"], "1,0", "{rb}");

    let e = case(&results, "sim-rcar", "gpio-edge");
    assert_eq!(e["outcome"], "pass", "{e}");
    let f = &e["figures"];
    assert_eq!(f["gpio"], 507, "{e}");
    let before = f["irq_count_before"].as_u64().unwrap();
    let after = f["irq_count_after"].as_u64().unwrap();
    assert!(after >= before + 2, "{e}");
    let latency = f["edge_latency_s"].as_f64().unwrap();
    assert!(latency > 0.0 && latency < 15.0, "{e}");

    // The same line with a stimulus that does nothing: the count stays where the QMP pulse
    // left it, and the check fails after its 5 s edge limit.
    let none = case(&results, "sim-rcar", "gpio-edge-no-stimulus");
    assert_eq!(none["outcome"], "fail", "{none}");
    let msg = none["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "no edge interrupt within 5 s (count stayed at {after}"
        )),
        "{none}"
    );
    assert_eq!(none["figures"]["irq_count_before"], after, "{none}");
    assert!(none["duration_s"].as_f64().unwrap_or(5.0) >= 5.0, "{none}");

    let c = case(&results, "sim-rcar", "sertest");
    assert_eq!(c["outcome"], "pass", "{c}");
    let f = &c["figures"];
    let tx = f["tx_bytes"].as_u64().unwrap();
    assert!(tx >= 4096, "{f}");
    assert_eq!(f["rx_bytes"].as_u64(), Some(tx), "{f}");
    assert!(f["tx_bps"].as_u64().unwrap() > 0 && f["rx_bps"].as_u64().unwrap() > 0);
    assert_eq!(f["errors"], 0);
    assert_eq!(f["slaves"], 1);
    // The slave in the guest saw and echoed every byte the master sent.
    assert_eq!(f["slave_rx_bytes"].as_u64(), Some(tx), "{f}");
    assert_eq!(f["slave_tx_bytes"].as_u64(), Some(tx), "{f}");
    assert_eq!(f["guest_port"], "/dev/ttyS0", "{f}");
    let after = crate::vfio::drivers(&out.join("boards/sim-rcar/artifacts/pci-after-bind.txt"));
    assert_eq!(
        after.get("0000:00:06.0").map(String::as_str),
        Some("vfio-pci")
    );

    let c = case(&results, "sim-rcar", "sertest-corrupted");
    assert_eq!(c["outcome"], "fail", "{c}");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("Data mismatch in message 20"), "{c}");
    assert_eq!(c["figures"]["errors"], 1, "{c}");

    assert_eq!(code, 1, "{results:#}");
}

/// NOT run with the other CLI tests' filters here: boots QEMU. sim-rcar-flashed: the
/// flash-writer backend writes the lab's U-Boot and an mkenvimage environment through the
/// simulated boot ROM and Flash Writer into {board_dir}/hyperflash.img, QEMU boots U-Boot
/// from it as pflash 0, and U-Boot's imported environment reaches the kernel command line.
#[test]
fn sim_rcar_flashed_boots_u_boot_and_its_environment_written_by_the_flash_writer() {
    let _l = lock();
    let board_dir = hil::lab::cache_root()
        .unwrap()
        .join("boards/sim-rcar-flashed");
    std::fs::create_dir_all(&board_dir).unwrap();
    let flash = board_dir.join("hyperflash.img");
    let _ = std::fs::remove_file(&flash);
    let sim = rcar_bootrom_sim::Sim::start(rcar_bootrom_sim::Options::new(&flash)).unwrap();
    let link = board_dir.join("rcar-scif");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&sim.path, &link).unwrap();
    // A writer image for the boot ROM to load (the simulator runs its own writer).
    let mut mot = String::from("S00600004844521B\r\n");
    for i in 0..32u32 {
        let addr = 0xE630_0400 + 16 * i;
        let mut body = addr.to_be_bytes().to_vec();
        body.extend((0..16u8).map(|b| b.wrapping_mul(i as u8)));
        let count = (body.len() + 1) as u8;
        let sum = body.iter().fold(count, |a, &x| a.wrapping_add(x));
        let hex: String = body.iter().map(|b| format!("{b:02X}")).collect();
        mot.push_str(&format!("S3{count:02X}{hex}{:02X}\r\n", !sum));
    }
    mot.push_str("S705E6300400E0\r\n");
    std::fs::write(
        board_dir.join("AArch64_Flash_writer_SCIF_DUMMY_CERT_E6300400_sim.mot"),
        mot,
    )
    .unwrap();
    let env_txt = board_dir.join("u-boot-env.txt");
    std::fs::write(&env_txt, "hil_flashed=by-flash-writer\n").unwrap();
    let st = std::process::Command::new("mkenvimage")
        .args(["-s", "8192", "-o"])
        .arg(board_dir.join("u-boot-env.bin"))
        .arg(&env_txt)
        .status()
        .expect("mkenvimage (u-boot-tools)");
    assert!(st.success());

    let out = out_dir("rcar-flashed");
    let suite = repo().join("suites/rcar-flashed.toml");
    let (code, r) = crate::sim::run_suite(suite.to_str().unwrap(), "sim-rcar-flashed", &out, &[]);
    let events = sim.events();
    sim.stop().unwrap();
    let _ = std::fs::remove_file(&link);
    assert_eq!(code, 0, "{r:#}\n{events:?}");
    assert_eq!(
        case(&r, "sim-rcar-flashed", "flash")["outcome"],
        "pass",
        "{r:#}"
    );
    assert_eq!(
        case(&r, "sim-rcar-flashed", "flashed-env")["outcome"],
        "pass",
        "{r:#}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("XLS3: wrote 8192 bytes at H'03FC0000")),
        "{events:?}"
    );
}
