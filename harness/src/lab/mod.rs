//! Simulated lab provisioning: the images an emulated aarch64 board boots, built from
//! Debian's arm64 packages, and per-board state (host key, TFTP dir, NVMe disk).
//!
//! Board boot: U-Boot (`-bios u-boot.bin`) fetches `Image.gz` and `initrd.gz` over
//! QEMU's user-net TFTP and `booti`s them; `/init` (fixtures/sim/board-init.sh) loads
//! drivers, mounts the tools disk (nested QEMU + guest images) read-only, starts
//! dropbear, prints `hil: board ready` and runs a root shell on the console.
//! See shared/SIM-LAB.md for the measured facts behind the choices here.

mod apt;
mod board;
mod cpio;
mod edudma;
mod elf;
mod host;
mod initramfs;
mod keys;
mod progress;
mod sertest;
mod tools_disk;

pub use board::{prepare_board, prepare_board_with, BoardDir};

use anyhow::{Context, Result};
use progress::Progress;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bump when the way images are assembled changes, so cached images are rebuilt.
pub const RECIPE_VERSION: &str = "4";

/// The board's /init.
pub const BOARD_INIT: &str = include_str!("../../../fixtures/sim/board-init.sh");
/// The nested guest's /init.
pub const GUEST_INIT: &str = include_str!("../../../fixtures/sim/guest-init.sh");
/// /usr/bin/qemu-system-aarch64 on the board.
pub const QEMU_WRAPPER: &str = include_str!("../../../fixtures/sim/qemu-wrapper.sh");
/// /usr/bin/lspci on the board (pciutils' lspci lives on the tools disk).
pub const LSPCI_WRAPPER: &str = include_str!("../../../fixtures/sim/lspci-wrapper.sh");
/// The kernel's build config in the board's initramfs (`/boot/config-<version>`); the
/// kernel has no CONFIG_IKCONFIG, so there is no /proc/config.gz.
pub fn board_kernel_config(kernel_version: &str) -> String {
    format!("/boot/config-{kernel_version}")
}

/// Guest kernel (uncompressed arm64 Image) on the board, on the tools disk.
pub const BOARD_GUEST_KERNEL: &str = "/opt/tools/guest/Image";
/// Guest initramfs on the board, on the tools disk.
pub const BOARD_GUEST_INITRD: &str = "/opt/tools/guest/initrd.gz";
/// Console line printed by the board's /init just before its shell starts.
pub const BOARD_READY: &str = "hil: board ready";
/// Console line printed by the nested guest's /init just before its shell starts.
pub const GUEST_READY: &str = "hil: guest ready";

/// Where booti moves Image.gz to before inflating it into kernel_addr_r. U-Boot 2023.01
/// qemu_arm64 has kernel_addr_r=0x40400000, ramdisk_addr_r=0x44000000,
/// fdt_addr=0x40000000 and relocates itself near the top of RAM (0xbdd.. with 2 GiB), so
/// 0x50000000..+48 MiB overlaps none of them (nor the inflated ~33 MB kernel).
pub const KERNEL_COMP_ADDR: &str = "0x50000000";
/// Upper bound of Image.gz's size for booti (it is ~11 MB).
pub const KERNEL_COMP_SIZE: &str = "0x3000000";

/// U-Boot commands (one per prompt) that TFTP-boot a sim board, as verified.
/// `eth`: the management NIC's U-Boot name, `virtio-net#N` as U-Boot prints it at
/// startup (e.g. `eth1: virtio-net#32`). Needed when the board also has an e1000e: U-Boot's
/// e1000 driver claims it, fails ("e1000#0 address not set") and is tried first.
pub fn uboot_boot_commands(eth: Option<&str>, bootargs: &str) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(eth) = eth {
        c.push(format!("setenv ethact {eth}"));
        c.push("setenv ethrotate no".to_string());
    }
    c.extend([
        "setenv ipaddr 10.0.2.15".to_string(),
        "setenv serverip 10.0.2.2".to_string(),
        format!("setenv kernel_comp_addr_r {KERNEL_COMP_ADDR}"),
        format!("setenv kernel_comp_size {KERNEL_COMP_SIZE}"),
        "tftp ${kernel_addr_r} Image.gz".to_string(),
        "tftp ${ramdisk_addr_r} initrd.gz".to_string(),
        format!("setenv bootargs {bootargs}"),
        "booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdt_addr}".to_string(),
    ]);
    c
}

/// Root of all cached lab state: $HIL_CACHE if set, else $HOME/.cache/hil. With neither,
/// an error: a cache in a shared directory such as /tmp could be planted by anyone.
pub fn cache_root() -> Result<PathBuf> {
    cache_root_from(std::env::var_os("HIL_CACHE"), std::env::var_os("HOME")).ok_or_else(|| {
        anyhow::anyhow!(
            "no cache directory: HIL_CACHE and HOME are both unset; set one (hil does not fall back to /tmp)"
        )
    })
}

fn cache_root_from(hil_cache: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    match (hil_cache, home) {
        (Some(p), _) if !p.is_empty() => Some(PathBuf::from(p)),
        (_, Some(h)) if !h.is_empty() => Some(PathBuf::from(h).join(".cache/hil")),
        _ => None,
    }
}

/// The host's qemu-system-aarch64 (installed with the other host tools when missing).
pub fn host_qemu() -> Result<PathBuf> {
    Ok(host::ensure_tools(&|m| eprintln!("lab: {m}"))?.qemu)
}

/// The shared images of the sim lab (same for every sim board).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimImages {
    /// cache_root()/images/<key>/ ; key = hash of all inputs
    pub dir: PathBuf,
    /// u-boot.bin for qemu_arm64 (from host package u-boot-qemu)
    pub u_boot: PathBuf,
    /// Image.gz: gzip-compressed arm64 Image; booti needs kernel_comp_addr_r/kernel_comp_size
    pub kernel: PathBuf,
    /// e.g. "6.1.0-41-arm64"
    pub kernel_version: String,
    /// initrd.gz: busybox, dropbear + libs, modules, /init
    pub host_initrd: PathBuf,
    /// tools.img: ext4, mounted read-only on /opt/tools by the board
    pub tools_disk: PathBuf,
    /// OpenSSH ed25519 private key; its .pub is root's authorized key on every board
    pub client_key: PathBuf,
    /// The cache key (the name of `dir`).
    pub key: String,
    /// manifest.json: package versions, file hashes, kernel version, build time.
    pub manifest: PathBuf,
}

impl SimImages {
    fn at(dir: PathBuf, key: &str, kernel_version: &str, client_key: PathBuf) -> Self {
        Self {
            u_boot: dir.join("u-boot.bin"),
            kernel: dir.join("Image.gz"),
            kernel_version: kernel_version.to_string(),
            host_initrd: dir.join("initrd.gz"),
            tools_disk: dir.join("tools.img"),
            client_key,
            key: key.to_string(),
            manifest: dir.join("manifest.json"),
            dir,
        }
    }

    fn is_complete(&self) -> bool {
        // manifest.json is written last, inside a dir that is renamed into place.
        [
            &self.manifest,
            &self.u_boot,
            &self.kernel,
            &self.host_initrd,
            &self.tools_disk,
        ]
        .iter()
        .all(|p| p.is_file())
    }
}

/// Options: whether to draw progress bars (indicatif) – false when stderr is not a tty,
/// lines of text instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    pub progress: bool,
}

impl BuildOptions {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn detect() -> Self {
        use std::io::IsTerminal;
        Self {
            progress: std::io::stderr().is_terminal(),
        }
    }
}

/// Idempotent and cached: returns at once (well under 1 s) when everything is already
/// built for the same inputs. `HIL_REBUILD=1` forces re-resolution and a rebuild.
pub async fn build(opts: &BuildOptions) -> Result<SimImages> {
    let opts = *opts;
    tokio::task::spawn_blocking(move || build_blocking(&opts))
        .await
        .context("lab build task failed")?
}

/// Blocking version of [`build`], for callers outside a runtime.
pub fn build_blocking(opts: &BuildOptions) -> Result<SimImages> {
    let root = cache_root()?;
    let force = std::env::var("HIL_REBUILD").is_ok_and(|v| v == "1");
    let progress = Progress::new(opts.progress);
    let note = |m: &str| progress.note(m);
    let tools = host::ensure_tools(&note)?;
    let (client_key, client_pub) = keys::ensure_client_key(&tools, &root.join("keys"))?;
    let uboot_sha = host::sha256_file(&tools.u_boot)?;
    let images_root = root.join("images");
    let debs = root.join("debs");
    let mut lock = None;
    let mut reresolve = force;
    // Second round only after a failed download: lists older than the archive (a
    // security update replaced a version) are refreshed and everything re-resolved.
    for round in 0..2 {
        let res = apt::resolve(&tools, &root, RECIPE_VERSION, reresolve, &note)?;
        let key = cache_key(&res, &uboot_sha, &client_pub);
        let images = SimImages::at(
            images_root.join(&key),
            &key,
            &res.kernel_version,
            client_key.clone(),
        );
        if !force && images.is_complete() {
            return Ok(images);
        }
        if lock.is_none() {
            std::fs::create_dir_all(&images_root)?;
            lock = Some(Lock::exclusive(&images_root.join(".lock"), &note)?);
            if !force && images.is_complete() {
                return Ok(images); // a concurrent build finished while we waited
            }
        }
        match download_missing(&tools, &debs, &res, &progress) {
            Ok(()) => {}
            Err(e) if round == 0 && host::is_root() => {
                note(&format!("{e:#}"));
                note("refreshing apt lists and resolving again");
                host::apt_update()?;
                reresolve = true;
                continue;
            }
            Err(e) => {
                return Err(e.context(format!(
                    "downloading arm64 packages (stale apt lists? run: {})",
                    host::install_command(&[], false)
                )))
            }
        }
        assemble(
            &tools,
            &res,
            &root,
            &images,
            &client_pub,
            &uboot_sha,
            &progress,
        )?;
        apt::prune(&debs, &res.packages);
        prune_images(&images_root, KEEP_IMAGES);
        return Ok(images);
    }
    anyhow::bail!("arm64 package download failed even after refreshing apt lists")
}

/// Image sets kept in the cache (newest first): enough for switching between a couple of
/// checkouts without rebuilding, without letting every recipe change pile up ~120 MB.
const KEEP_IMAGES: usize = 3;

/// Deletes all but the `keep` newest image dirs. Boards are unaffected: their TFTP files
/// are their own links/copies, and a running QEMU keeps an unlinked tools.img open.
fn prune_images(images_root: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(images_root) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, d) in dirs.into_iter().skip(keep) {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn download_missing(
    tools: &host::Tools,
    debs: &Path,
    res: &apt::Resolution,
    progress: &Progress,
) -> Result<()> {
    std::fs::create_dir_all(debs)?;
    let missing = apt::missing(debs, &res.packages);
    if missing.is_empty() {
        progress.note(&format!("all {} packages cached", res.packages.len()));
        return Ok(());
    }
    let n = missing.len() as u64;
    let bytes: u64 = missing.iter().map(|p| p.size).sum();
    let step = progress.counted(&format!("downloading {n} packages"), n);
    apt::download(tools, debs, &missing, &|| step.inc())?;
    step.done(&host::mib(bytes));
    Ok(())
}

/// sha256 over everything the images are made of; the first 16 hex digits name the dir.
fn cache_key(res: &apt::Resolution, uboot_sha: &str, client_pub: &str) -> String {
    let mut h = Sha256::new();
    let mut line = |s: String| {
        h.update(s.as_bytes());
        h.update(b"\n");
    };
    line(format!("recipe {RECIPE_VERSION}"));
    line(format!("kernel {}", res.kernel_pkg));
    for p in &res.packages {
        line(format!("pkg {} {} {}", p.name, p.arch, p.version));
    }
    for (name, text) in [
        ("board-init", BOARD_INIT),
        ("guest-init", GUEST_INIT),
        ("qemu-wrapper", QEMU_WRAPPER),
        ("lspci-wrapper", LSPCI_WRAPPER),
        ("sertest-source", sertest::SOURCE),
        ("edudma-source", edudma::SOURCE),
    ] {
        line(format!("{name} {}", hex::encode(Sha256::digest(text))));
    }
    line(format!(
        "board-modules {}",
        initramfs::BOARD_MODULES.join(" ")
    ));
    line(format!(
        "guest-modules {}",
        initramfs::GUEST_MODULES.join(" ")
    ));
    line(format!("u-boot {uboot_sha}"));
    line(format!("client {}", client_pub.trim()));
    hex::encode(h.finalize())[..16].to_string()
}

/// Serializes builds across processes (flock; released when the file closes).
struct Lock(#[allow(dead_code)] std::fs::File);

impl Lock {
    fn exclusive(path: &Path, note: &dyn Fn(&str)) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            note("another lab build is running; waiting for it");
            // SAFETY: as above.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error()).context("flock");
            }
        }
        Ok(Self(f))
    }
}

fn file_entry(path: &Path) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "size": std::fs::metadata(path)?.len(),
        "sha256": host::sha256_file(path)?,
    }))
}

/// The slow path: extract and assemble everything into a fresh dir, then rename it into
/// place (so an interrupted build never looks complete).
fn assemble(
    tools: &host::Tools,
    res: &apt::Resolution,
    root: &Path,
    images: &SimImages,
    client_pub: &str,
    uboot_sha: &str,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let kver = &res.kernel_version;
    let debs = root.join("debs");
    let work_root = root.join("work");
    // We hold the build lock: anything under work/ is a leftover of a killed build.
    let _ = std::fs::remove_dir_all(&work_root);
    let work = work_root.join(&images.key);
    let out = images.dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&out);
    for d in [&work, &out] {
        std::fs::create_dir_all(d)?;
    }

    let step = progress.step("cross-compiling sertest");
    let sertest_bin = sertest::build(&work.join("sertest"), &|m| progress.note(m))?;
    step.done(&host::mib(sertest_bin.len() as u64));
    let step = progress.step("cross-compiling edudma");
    let edudma_bin = edudma::build(&work.join("edudma"), &|m| progress.note(m))?;
    step.done(&host::mib(edudma_bin.len() as u64));

    let ext = work.join("root");
    let step = progress.counted(
        &format!("extracting {} packages", res.packages.len()),
        res.packages.len() as u64,
    );
    // The kernel .deb is most of the unpacking work: give it the second core.
    let (kernel_pkgs, others): (Vec<_>, Vec<_>) =
        res.packages.iter().partition(|p| p.name == res.kernel_pkg);
    std::thread::scope(|s| -> Result<()> {
        let k = s.spawn(|| -> Result<()> {
            for p in &kernel_pkgs {
                apt::extract(tools, &apt::deb_path(&debs, p), &ext)?;
                step.inc();
            }
            Ok(())
        });
        for p in &others {
            apt::extract(tools, &apt::deb_path(&debs, p), &ext)?;
            step.inc();
        }
        k.join()
            .map_err(|_| anyhow::anyhow!("kernel extraction panicked"))?
    })?;
    step.done("");

    let vmlinuz = ext.join(format!("boot/vmlinuz-{kver}"));
    let kimage = std::fs::read(&vmlinuz)
        .with_context(|| format!("{} missing from {}", vmlinuz.display(), res.kernel_pkg))?;
    // Image.gz on a second core while the rest is assembled.
    let kernel_gz = std::thread::scope(|s| -> Result<u64> {
        let gz = s.spawn(|| -> Result<u64> {
            let z = host::gzip(tools, &kimage, 9)?;
            std::fs::write(out.join("Image.gz"), &z)?;
            Ok(z.len() as u64)
        });

        let step = progress.step("selecting kernel modules");
        host::run(
            std::process::Command::new(&tools.depmod)
                .arg("-b")
                .arg(&ext)
                .arg(kver),
        )?;
        let board_mods = work.join("board-modules");
        let guest_mods = work.join("guest-modules");
        let b = initramfs::modules_tree(tools, &ext, kver, initramfs::BOARD_MODULES, &board_mods)?;
        let g = initramfs::modules_tree(tools, &ext, kver, initramfs::GUEST_MODULES, &guest_mods)?;
        step.done(&format!("board {}, guest {}", host::mib(b), host::mib(g)));

        let step = progress.step("assembling host initramfs");
        let wrappers = initramfs::Wrappers {
            qemu: QEMU_WRAPPER,
            lspci: LSPCI_WRAPPER,
        };
        let mut board =
            initramfs::board(&ext, &board_mods, kver, BOARD_INIT, &wrappers, client_pub)?;
        board
            .archive
            .file(sertest::INSTALL_PATH, sertest_bin.clone(), 0o755);
        board.archive.file(edudma::INSTALL_PATH, edudma_bin, 0o755);
        let z = initramfs::gzip_archive(tools, &board.archive)?;
        std::fs::write(out.join("initrd.gz"), &z)?;
        step.done(&format!(
            "{} ({} unpacked)",
            host::mib(z.len() as u64),
            host::mib(board.archive.data_size())
        ));

        let step = progress.step("assembling guest initramfs");
        let mut guest = initramfs::guest(&ext, &guest_mods, GUEST_INIT)?;
        guest.file(sertest::INSTALL_PATH, sertest_bin.clone(), 0o755);
        let guest_gz = initramfs::gzip_archive(tools, &guest)?;
        step.done(&host::mib(guest_gz.len() as u64));

        let step = progress.step("assembling tools disk");
        let tree = work.join("tools");
        let ids = ext.join(tools_disk::PCI_IDS_SRC);
        let ids = std::fs::read(&ids).with_context(|| format!("reading {}", ids.display()))?;
        let ids_gz = host::gzip(tools, &ids, 9)?;
        let t = tools_disk::populate(&ext, &board.libs, &vmlinuz, &guest_gz, &ids_gz, &tree)?;
        let size = tools_disk::make_image(tools, &tree, &t, &out.join("tools.img"))?;
        step.done(&format!(
            "{} of files ({} libraries) in a {} ext4 image",
            host::mib(t.bytes),
            t.libs,
            host::mib(size)
        ));

        let step = progress.step("compressing kernel");
        let n = gz
            .join()
            .map_err(|_| anyhow::anyhow!("kernel compression panicked"))??;
        step.done(&format!("Image.gz {}", host::mib(n)));
        Ok(n)
    })?;

    std::fs::copy(&tools.u_boot, out.join("u-boot.bin"))?;

    let step = progress.step("writing manifest");
    let mut files = serde_json::Map::new();
    for f in ["u-boot.bin", "Image.gz", "initrd.gz", "tools.img"] {
        files.insert(f.to_string(), file_entry(&out.join(f))?);
    }
    let built_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let manifest = serde_json::json!({
        "recipe_version": RECIPE_VERSION,
        "key": images.key,
        "built_at": built_at,
        "build_seconds": started.elapsed().as_secs_f64(),
        "kernel_package": res.kernel_pkg,
        "kernel_version": kver,
        "kernel_config": board_kernel_config(kver),
        "kernel_gz_size": kernel_gz,
        "u_boot_source": tools.u_boot,
        "u_boot_sha256": uboot_sha,
        "tools_disk": { "fs": "ext4", "label": tools_disk::LABEL, "mount": "/opt/tools" },
        "packages": res.packages.iter().map(|p| serde_json::json!({
            "name": p.name, "arch": p.arch, "version": p.version, "sha256": p.sha256,
        })).collect::<Vec<_>>(),
        "files": files,
    });
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    if images.dir.exists() {
        std::fs::remove_dir_all(&images.dir)?; // HIL_REBUILD=1 over a complete build
    }
    std::fs::rename(&out, &images.dir)?;
    let _ = std::fs::remove_dir_all(&work_root);
    step.done(&format!(
        "images in {} ({:.0} s in all)",
        images.dir.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res(version: &str) -> apt::Resolution {
        apt::Resolution {
            kernel_pkg: "linux-image-6.1.0-41-arm64".into(),
            kernel_version: "6.1.0-41-arm64".into(),
            packages: vec![apt::Pkg {
                name: "libc6".into(),
                arch: "arm64".into(),
                version: version.into(),
                size: 1,
                sha256: "x".into(),
            }],
        }
    }

    #[test]
    fn cache_key_tracks_inputs() {
        let a = cache_key(&res("2.36-9"), "u", "ssh-ed25519 AAAA1");
        assert_eq!(a.len(), 16);
        assert_eq!(a, cache_key(&res("2.36-9"), "u", "ssh-ed25519 AAAA1"));
        assert_ne!(a, cache_key(&res("2.36-10"), "u", "ssh-ed25519 AAAA1"));
        assert_ne!(a, cache_key(&res("2.36-9"), "v", "ssh-ed25519 AAAA1"));
        assert_ne!(a, cache_key(&res("2.36-9"), "u", "ssh-ed25519 AAAA2"));
    }

    #[test]
    fn cache_root_prefers_hil_cache() {
        let os = |s: &str| Some(OsString::from(s));
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(cache_root_from(os("/x/y"), os("/h")), p("/x/y"));
        assert_eq!(cache_root_from(os(""), os("/h")), p("/h/.cache/hil"));
        assert_eq!(cache_root_from(None, os("/h")), p("/h/.cache/hil"));
        // Neither: no cache, rather than one under /tmp.
        assert_eq!(cache_root_from(None, None), None);
        assert_eq!(cache_root_from(os(""), os("")), None);
    }

    #[test]
    fn prune_keeps_newest_image_dirs() {
        let t = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..5u64 {
            let d = t.path().join(format!("k{i}"));
            std::fs::create_dir(&d).unwrap();
            let f = std::fs::File::open(&d).unwrap();
            f.set_modified(base + std::time::Duration::from_secs(i * 10))
                .unwrap();
        }
        std::fs::write(t.path().join(".lock"), b"").unwrap();
        prune_images(t.path(), 3);
        let mut left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".lock", "k2", "k3", "k4"]);
    }

    #[test]
    fn uboot_sequence() {
        let c = uboot_boot_commands(Some("virtio-net#32"), "console=ttyAMA0 panic=-1");
        assert_eq!(c[0], "setenv ethact virtio-net#32");
        assert!(c
            .iter()
            .any(|l| l == "setenv kernel_comp_addr_r 0x50000000"));
        assert!(c.last().unwrap().starts_with("booti "));
        assert_eq!(uboot_boot_commands(None, "x").len(), c.len() - 2);
    }

    #[test]
    fn scripts_are_embedded() {
        assert!(BOARD_INIT.contains("log \"board ready\""));
        assert!(BOARD_READY.ends_with("board ready") && GUEST_READY.ends_with("guest ready"));
        assert!(GUEST_INIT.contains("guest ready"));
        assert!(BOARD_INIT.starts_with("#!/bin/sh"));
        assert!(LSPCI_WRAPPER.starts_with("#!/bin/sh"));
        assert!(LSPCI_WRAPPER.contains(&format!("$T/{}", tools_disk::LSPCI_BIN)));
    }

    #[test]
    fn guest_init_gives_checks_what_they_need() {
        // /tmp on tmpfs, the ready line, then a prompt ending in "# " (the board files'
        // `prompt = "# $"`), and the applets guest checks use.
        assert!(GUEST_INIT.contains("mount -t tmpfs -o mode=1777 tmpfs /tmp"));
        let ready = GUEST_INIT.find("log \"guest ready\"").unwrap();
        let ps1 = GUEST_INIT.find("export PS1='\\w # '").unwrap();
        let shell = GUEST_INIT.find("setsid cttyhack /bin/sh").unwrap();
        assert!(ps1 < ready && ready < shell);
        for a in ["dd", "sha256sum", "cmp", "ping", "date", "sync"] {
            assert!(GUEST_INIT.contains(&format!(" {a}")), "{a}");
        }
    }

    #[test]
    fn kernel_config_path() {
        assert_eq!(
            board_kernel_config("6.1.0-41-arm64"),
            "/boot/config-6.1.0-41-arm64"
        );
    }
}
