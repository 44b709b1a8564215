//! arm64 package resolution and download through the host's apt.
//!
//! Nothing is installed: `apt-get download` fetches .debs into a cache and
//! `dpkg-deb -x` unpacks them. Resolution is cached against a fingerprint of apt's
//! package lists because `apt-cache` takes ~1 s per call, and `build()` must answer
//! well under a second when nothing changed.

use super::host::{self, Tools};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Packages whose closures make up the board images (the kernel is added separately:
/// its own dependencies are initramfs-tools & co, which the lab does not use).
/// pciutils: `lspci` on the board. Its library closure (libkmod pulls in libcrypto,
/// ~4.5 MB) is already on the tools disk for QEMU, so it lives there too and only
/// libpci and pci.ids are new.
pub(crate) const ROOTS: &[&str] = &[
    "busybox-static",
    "dropbear-bin",
    "pciutils",
    "qemu-system-arm",
];

/// Packages in those closures that carry nothing the board runs: maintainer-script
/// helpers and PAM/shadow tooling pulled in by libc-adjacent packages. Skipping them saves
/// downloads only; the ELF library closure check in the build catches an over-eager entry.
pub(crate) const SKIP: &[&str] = &[
    "adduser",
    "cdebconf",
    "debconf",
    "dpkg",
    "install-info",
    "iso-codes",
    "libaudit-common",
    "libaudit1",
    "libcap2-bin",
    "libdebian-installer4",
    "libnewt0.52",
    "libpam-modules",
    "libpam-modules-bin",
    "libpam0g",
    "libreadline8",
    "libsemanage-common",
    "libsemanage2",
    "libsepol2",
    "libslang2",
    "libtextwrap1",
    "passwd",
    "readline-common",
    "tar",
];

const DEPENDS_FLAGS: &[&str] = &[
    "--recurse",
    "--no-recommends",
    "--no-suggests",
    "--no-conflicts",
    "--no-breaks",
    "--no-replaces",
    "--no-enhances",
];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Pkg {
    pub name: String,
    /// `arm64` or `all`
    pub arch: String,
    pub version: String,
    pub size: u64,
    pub sha256: String,
}

impl Pkg {
    /// The name `apt-get download` gives the file (epoch colon URL-encoded).
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        )
    }
    fn apt_spec(&self) -> String {
        if self.arch == "all" {
            format!("{}={}", self.name, self.version)
        } else {
            format!("{}:{}={}", self.name, self.arch, self.version)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Resolution {
    /// e.g. `linux-image-6.1.0-41-arm64`
    pub kernel_pkg: String,
    /// e.g. `6.1.0-41-arm64`
    pub kernel_version: String,
    /// Everything to download, kernel included, sorted.
    pub packages: Vec<Pkg>,
}

#[derive(Serialize, Deserialize)]
struct CachedResolution {
    fingerprint: String,
    resolution: Resolution,
}

/// Changes whenever apt's view of the archive can have changed: package lists
/// (name, size, mtime), dpkg's foreign architectures, and this recipe.
fn lists_fingerprint(recipe: &str) -> Result<String> {
    let mut h = Sha256::new();
    h.update(recipe.as_bytes());
    let mut entries: Vec<_> = std::fs::read_dir("/var/lib/apt/lists")
        .map(|rd| rd.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(m) = e.metadata() else { continue };
        if !m.is_file() || e.file_name() == "lock" {
            continue;
        }
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(format!("{:?} {} {}\n", e.file_name(), m.len(), mtime).as_bytes());
    }
    h.update(std::fs::read("/var/lib/dpkg/arch").unwrap_or_default());
    Ok(hex::encode(h.finalize()))
}

/// Resolves the package set, from cache when apt's lists have not changed.
pub(crate) fn resolve(
    tools: &Tools,
    cache_root: &Path,
    recipe: &str,
    force: bool,
    log: &dyn Fn(&str),
) -> Result<Resolution> {
    let cache_file = cache_root.join("resolution.json");
    let fp = lists_fingerprint(recipe)?;
    if !force {
        if let Ok(text) = std::fs::read_to_string(&cache_file) {
            if let Ok(c) = serde_json::from_str::<CachedResolution>(&text) {
                if c.fingerprint == fp {
                    return Ok(c.resolution);
                }
            }
        }
    }
    log("resolving arm64 packages…");
    if host::ensure_arm64_arch()? {
        host::apt_update()?;
    }
    let kernel_pkg = match resolve_kernel(tools) {
        Ok(k) => k,
        Err(e) => {
            // Typical on a fresh machine: arm64 lists were never fetched.
            log(&format!("{e:#}; refreshing apt lists"));
            host::apt_update().context("arm64 package lookup failed")?;
            resolve_kernel(tools)?
        }
    };
    let kernel_version = kernel_pkg
        .strip_prefix("linux-image-")
        .context("odd kernel package name")?
        .to_string();

    let mut q = Command::new(&tools.apt_cache);
    q.arg("depends")
        .args(DEPENDS_FLAGS)
        .args(ROOTS.iter().map(|r| format!("{r}:arm64")));
    let out = host::run(&mut q)?;
    let mut names = parse_recursive_depends(&String::from_utf8_lossy(&out.stdout));
    names.retain(|n| !SKIP.contains(&n.split(':').next().unwrap_or(n)));
    names.insert(format!("{kernel_pkg}:arm64"));

    let mut q = Command::new(&tools.apt_cache);
    q.args(["show", "--no-all-versions"]).args(&names);
    let out = host::run(&mut q)?;
    let packages = select_target_packages(parse_show(&String::from_utf8_lossy(&out.stdout)));
    for want in ROOTS.iter().chain([&kernel_pkg.as_str()]) {
        if !packages.iter().any(|p| p.name == *want) {
            bail!("apt-cache show found no arm64 candidate for {want}");
        }
    }
    let resolution = Resolution {
        kernel_pkg,
        kernel_version,
        packages,
    };
    let cached = CachedResolution {
        fingerprint: fp,
        resolution: resolution.clone(),
    };
    std::fs::create_dir_all(cache_root)?;
    host::write_atomic(&cache_file, &serde_json::to_vec_pretty(&cached)?)?;
    Ok(resolution)
}

fn resolve_kernel(tools: &Tools) -> Result<String> {
    let out =
        host::run(Command::new(&tools.apt_cache).args(["depends", "linux-image-arm64:arm64"]))?;
    parse_kernel_depends(&String::from_utf8_lossy(&out.stdout))
        .context("linux-image-arm64:arm64 depends on no linux-image-<version>-arm64")
}

/// From `apt-cache depends linux-image-arm64:arm64`, the versioned image package.
pub(crate) fn parse_kernel_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().trim_end_matches(":arm64"))
        .find(|d| {
            d.strip_prefix("linux-image-").is_some_and(|v| {
                v.starts_with(|c: char| c.is_ascii_digit()) && v.ends_with("-arm64")
            })
        })
        .map(str::to_string)
}

/// Package heads of `apt-cache depends --recurse` (unindented lines), without virtual
/// packages (`<name>`).
pub(crate) fn parse_recursive_depends(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('<'))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Stanzas of `apt-cache show`: only the fields used here.
pub(crate) fn parse_show(text: &str) -> Vec<Pkg> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut p = Pkg {
            name: String::new(),
            arch: String::new(),
            version: String::new(),
            size: 0,
            sha256: String::new(),
        };
        for line in stanza.lines() {
            let Some((k, v)) = line.split_once(": ") else {
                continue;
            };
            match k {
                "Package" => p.name = v.trim().to_string(),
                "Architecture" => p.arch = v.trim().to_string(),
                "Version" => p.version = v.trim().to_string(),
                "Size" => p.size = v.trim().parse().unwrap_or(0),
                "SHA256" => p.sha256 = v.trim().to_string(),
                _ => {}
            }
        }
        if !p.name.is_empty() && !p.version.is_empty() {
            out.push(p);
        }
    }
    out
}

/// The recursion also walks native (amd64) dependencies of arch-all packages; keep
/// what the board can use: arm64 and arch-independent packages, once each.
pub(crate) fn select_target_packages(stanzas: Vec<Pkg>) -> Vec<Pkg> {
    let mut seen = BTreeSet::new();
    let mut v: Vec<Pkg> = stanzas
        .into_iter()
        .filter(|p| p.arch == "arm64" || p.arch == "all")
        .filter(|p| seen.insert((p.name.clone(), p.arch.clone())))
        .collect();
    v.sort();
    v
}

fn cached_ok(debs: &Path, p: &Pkg) -> bool {
    std::fs::metadata(debs.join(p.deb_file_name()))
        .map(|m| p.size == 0 || m.len() == p.size)
        .unwrap_or(false)
}

/// Packages not yet in the deb cache.
pub(crate) fn missing<'a>(debs: &Path, pkgs: &'a [Pkg]) -> Vec<&'a Pkg> {
    pkgs.iter().filter(|p| !cached_ok(debs, p)).collect()
}

/// Downloads `pkgs` into `debs` with one `apt-get download` (apt verifies hashes);
/// `tick` is called per fetched package. Files land in a private partial dir first
/// so an interrupted run never leaves a truncated .deb under its final name.
pub(crate) fn download(tools: &Tools, debs: &Path, pkgs: &[&Pkg], tick: &dyn Fn()) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    let partial = debs.join(format!(".partial-{}", std::process::id()));
    std::fs::create_dir_all(&partial)?;
    let errlog = partial.join("apt-get.stderr");
    let mut cmd = Command::new(&tools.apt_get);
    if host::is_root() {
        // apt drops to _apt for downloads and warns when that user cannot write here.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.arg("download")
        .args(pkgs.iter().map(|p| p.apt_spec()))
        .current_dir(&partial)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&errlog)?);
    let desc = format!("apt-get download ({} packages)", pkgs.len());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {desc}"))?;
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            if line?.starts_with("Get:") {
                tick();
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let err = std::fs::read_to_string(&errlog).unwrap_or_default();
        bail!("{desc} failed ({status}):\n{err}");
    }
    for p in pkgs {
        let f = p.deb_file_name();
        std::fs::rename(partial.join(&f), debs.join(&f))
            .with_context(|| format!("apt-get download did not produce {f}"))?;
    }
    std::fs::remove_dir_all(&partial)?;
    Ok(())
}

/// Unpacks a .deb's data into `dest` (no maintainer scripts run: nothing is installed).
pub(crate) fn extract(tools: &Tools, deb: &Path, dest: &Path) -> Result<()> {
    host::run(Command::new(&tools.dpkg_deb).arg("-x").arg(deb).arg(dest))?;
    Ok(())
}

/// Removes .debs (and leftover partial dirs) that the current resolution does not use:
/// old versions would otherwise pile up with every security update.
pub(crate) fn prune(debs: &Path, keep: &[Pkg]) {
    let keep: BTreeSet<String> = keep.iter().map(Pkg::deb_file_name).collect();
    let Ok(rd) = std::fs::read_dir(debs) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".partial-") {
            let _ = std::fs::remove_dir_all(e.path());
        } else if name.ends_with(".deb") && !keep.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

pub(crate) fn deb_path(debs: &Path, p: &Pkg) -> PathBuf {
    debs.join(p.deb_file_name())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kernel_from_meta_package() {
        let t = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-41-arm64:arm64\n";
        assert_eq!(
            parse_kernel_depends(t).as_deref(),
            Some("linux-image-6.1.0-41-arm64")
        );
        assert_eq!(parse_kernel_depends("linux-image-arm64:arm64\n"), None);
        let t2 = "x\n  Depends: linux-image-arm64-signed-template\n  Depends: linux-image-6.1.0-56-arm64\n";
        assert_eq!(
            parse_kernel_depends(t2).as_deref(),
            Some("linux-image-6.1.0-56-arm64")
        );
    }

    #[test]
    fn recursive_depends_heads() {
        let t = "qemu-system-arm:arm64\n  Depends: libc6:arm64\n |Depends: <debconf-2.0>\n\
                 libc6:arm64\n  Depends: libgcc-s1:arm64\n<debconf-2.0>\nqemu-system-data\nlibc6\n";
        let got: Vec<_> = parse_recursive_depends(t).into_iter().collect();
        assert_eq!(
            got,
            [
                "libc6",
                "libc6:arm64",
                "qemu-system-arm:arm64",
                "qemu-system-data"
            ]
        );
    }

    #[test]
    fn show_stanzas_filtered_to_target_arches() {
        let t = "Package: libc6\nVersion: 2.36-9\nArchitecture: arm64\nSize: 10\nSHA256: aa\n\
                 Description: GNU C\n multi line\n\n\
                 Package: qemu-system-data\nVersion: 1:7.2+dfsg-7\nArchitecture: all\nSize: 5\n\n\
                 Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\n\n\
                 Package: libc6\nVersion: 2.36-9\nArchitecture: arm64\n";
        let pkgs = select_target_packages(parse_show(t));
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "libc6");
        assert_eq!(pkgs[0].sha256, "aa");
        assert_eq!(
            pkgs[1].deb_file_name(),
            "qemu-system-data_1%3a7.2+dfsg-7_all.deb"
        );
        assert_eq!(pkgs[1].apt_spec(), "qemu-system-data=1:7.2+dfsg-7");
        assert_eq!(pkgs[0].apt_spec(), "libc6:arm64=2.36-9");
    }
}
