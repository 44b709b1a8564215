//! `hil run` with a `[flash]` step on the fake board: the real `rkdeveloptool` with no
//! device attached, and the flash-writer backend against the simulated R-Car boot ROM and
//! Flash Writer (fixtures/rcar-bootrom-sim) on a pty, before the board boots as usual.

use crate::fake_board::{suite, Fake, BOARD, LIMIT};
use crate::sim::{case, wait_exit};
use std::path::{Path, PathBuf};

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        }
    }
    None
}

#[test]
fn rkdeveloptool_with_no_device_attached_is_an_infrastructure_error_exit_3() {
    // Debian's real rkdeveloptool; this machine has no Rockchip board on USB.
    let probe = std::process::Command::new("rkdeveloptool")
        .arg("ld")
        .output();
    let probe = probe.expect("rkdeveloptool (Debian package rkdeveloptool) is installed");
    assert!(
        String::from_utf8_lossy(&probe.stdout).contains("not found any devices!"),
        "a rockusb device is attached: {probe:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let loader = dir.path().join("rk3588_spl_loader_v1.15.113.bin");
    let image = dir.path().join("sdcard.img");
    std::fs::write(&loader, b"loader").unwrap();
    std::fs::write(&image, b"image").unwrap();
    let fake = Fake::new(|t| {
        t + &format!(
            "\n[flash]\nbackend = \"rkdeveloptool\"\nloader = \"{}\"\nimage = \"{}\"\nsector = 0\ntimeout_s = 60\n",
            loader.display(),
            image.display()
        )
    });
    let out = fake.out("rk-no-device");
    let (mut g, _rx) = fake.spawn(&suite("fake-pass"), &out, &[]);
    let code = wait_exit(&mut g, LIMIT);
    let r = crate::sim::read_json(&out.join("results.json"));
    assert_eq!(code, 3, "{r:#}");
    let flash = case(&r, BOARD, "flash");
    assert_eq!(flash["outcome"], "error:infrastructure", "{flash:#}");
    let msg = flash["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("no rockusb device: put the board in Maskrom"),
        "{msg}"
    );
    assert!(msg.contains("printed 'not found any devices!'"), "{msg}");
    // Nothing was booted after the failed flash.
    let passed: Vec<&serde_json::Value> = r["boards"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "pass")
        .collect();
    assert!(passed.is_empty(), "{r:#}");
    let log = std::fs::read_to_string(find(&out, "flash.log").expect("flash.log")).unwrap();
    assert!(log.contains("not found any devices!"), "{log}");
}

/// `data` as S-records (S0, S3 records of 32 bytes from `addr`, S7).
fn srec(addr: u32, data: &[u8]) -> String {
    fn rec(kind: u8, body: &[u8]) -> String {
        let count = u8::try_from(body.len() + 1).unwrap();
        let sum = body.iter().fold(count, |a, &x| a.wrapping_add(x));
        let hex: String = body.iter().map(|b| format!("{b:02X}")).collect();
        format!("S{kind}{count:02X}{hex}{:02X}\r\n", !sum)
    }
    let mut out = rec(0, &[0, 0, b'h', b'i', b'l']);
    for (i, c) in data.chunks(32).enumerate() {
        let mut body = (addr + 32 * i as u32).to_be_bytes().to_vec();
        body.extend_from_slice(c);
        out.push_str(&rec(3, &body));
    }
    out.push_str(&rec(7, &addr.to_be_bytes()));
    out
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn flash_writer_writes_u_boot_and_its_environment_then_the_board_boots() {
    let dir = tempfile::tempdir().unwrap();
    let flash_img = dir.path().join("hyperflash.img");
    let sim = rcar_bootrom_sim::Sim::start(rcar_bootrom_sim::Options::new(&flash_img)).unwrap();
    let writer = dir
        .path()
        .join("AArch64_Flash_writer_SCIF_DUMMY_CERT_E6300400_sim.mot");
    let code: Vec<u8> = (0..1536u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&writer, srec(0xE630_0400, &code)).unwrap();
    // A U-Boot-sized stand-in (the test must not take minutes at 115200 baud) and a real
    // environment image made by mkenvimage.
    let uboot: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let uboot_path = dir.path().join("u-boot.bin");
    std::fs::write(&uboot_path, &uboot).unwrap();
    let env_txt = dir.path().join("env.txt");
    std::fs::write(&env_txt, "hil_flashed=yes\nbootdelay=1\n").unwrap();
    let env_path = dir.path().join("env.bin");
    let st = std::process::Command::new("mkenvimage")
        .args(["-s", "8192", "-o"])
        .arg(&env_path)
        .arg(&env_txt)
        .status()
        .expect("mkenvimage (u-boot-tools) is installed");
    assert!(st.success());
    let env = std::fs::read(&env_path).unwrap();

    let table = format!(
        "\n[flash]\nbackend = \"flash-writer\"\nwriter = \"{}\"\nport = \"{}\"\nbaud = 115200\ntimeout_s = 120\n\n[[flash.images]]\nname = \"u-boot\"\nfile = \"{}\"\nformat = \"binary\"\nflash_addr = 0x0\n\n[[flash.images]]\nname = \"u-boot-env\"\nfile = \"{}\"\nformat = \"binary\"\nflash_addr = 0x3fc0000\n",
        writer.display(),
        sim.path,
        uboot_path.display(),
        env_path.display()
    );
    let fake = Fake::new(|t| t + &table);
    let out = fake.out("flash-writer");
    let (mut g, _rx) = fake.spawn(&suite("fake-pass"), &out, &[]);
    let code = wait_exit(&mut g, LIMIT);
    let r = crate::sim::read_json(&out.join("results.json"));
    let log = std::fs::read_to_string(find(&out, "flash.log").expect("flash.log")).unwrap();
    assert_eq!(code, 0, "{r:#}\n{log}");
    assert_eq!(case(&r, BOARD, "flash")["outcome"], "pass", "{r:#}");
    assert_eq!(case(&r, BOARD, "kernel")["outcome"], "pass", "{r:#}");

    // Read back: the flash file holds exactly those bytes at their offsets.
    let flash = std::fs::read(&flash_img).unwrap();
    assert_eq!(flash.len(), 64 << 20);
    assert_eq!(sha(&flash[..uboot.len()]), sha(&uboot));
    assert_eq!(sha(&flash[0x3fc_0000..0x3fc_0000 + env.len()]), sha(&env));
    // The report and flash.log carry the same hashes.
    let props = r["boards"][0]["properties"].to_string();
    assert!(props.contains(&sha(&uboot)), "{props}");
    assert!(props.contains(&sha(&env)), "{props}");
    assert!(log.contains(&format!("sha256 {}", sha(&env))), "{log}");
    assert!(
        log.contains("writer saved H'03FC0000-H'03FC1FFF; expected H'03FC0000-H'03FC1FFF"),
        "{log}"
    );
    assert!(
        log.contains("SCIF Download mode (w/o verification)"),
        "{log}"
    );
    let events = sim.events();
    assert!(
        events
            .iter()
            .any(|e| e == "XLS3: wrote 8192 bytes at H'03FC0000-H'03FC1FFF"),
        "{events:?}"
    );
    sim.stop().unwrap();
}
