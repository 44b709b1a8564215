//! newc cpio writer for initramfs archives.
//!
//! Written here rather than shelling out to `cpio` so that ownership (root), modes and
//! the `/dev/console` device node are right without running as root, and so that the
//! output is reproducible (fixed order, inode numbers and mtimes).

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev(u32, u32),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    perm: u32,
}

/// An in-memory archive. Paths are relative ("etc/passwd"); parents are created as
/// needed. A BTreeMap keeps parents before children, which the kernel's unpacker needs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Archive {
    entries: BTreeMap<String, Entry>,
}

fn clean(path: &str) -> String {
    path.trim_matches('/').to_string()
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    fn parents(&mut self, path: &str) {
        let mut acc = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            self.entries.entry(acc.clone()).or_insert(Entry {
                kind: Kind::Dir,
                perm: 0o755,
            });
        }
    }

    fn put(&mut self, path: &str, kind: Kind, perm: u32) {
        let p = clean(path);
        self.parents(&p);
        self.entries.insert(p, Entry { kind, perm });
    }

    pub fn dir(&mut self, path: &str, perm: u32) {
        self.put(path, Kind::Dir, perm);
    }
    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, perm: u32) {
        self.put(path, Kind::File(data.into()), perm);
    }
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.put(path, Kind::Symlink(target.to_string()), 0o777);
    }
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, perm: u32) {
        self.put(path, Kind::CharDev(major, minor), perm);
    }

    /// Adds a host file's content, keeping its permission bits.
    pub fn file_from(&mut self, path: &str, src: &Path) -> Result<()> {
        let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        let perm = std::fs::metadata(src)?.permissions().mode() & 0o7777;
        self.file(path, data, perm);
        Ok(())
    }

    /// Adds a host directory tree (files, dirs, symlinks) under `dest`.
    pub fn tree_from(&mut self, dest: &str, src: &Path) -> Result<()> {
        for entry in std::fs::read_dir(src).with_context(|| src.display().to_string())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let d = format!("{}/{}", clean(dest), name);
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                let t = std::fs::read_link(entry.path())?;
                self.symlink(&d, &t.to_string_lossy());
            } else if ft.is_dir() {
                self.dir(&d, 0o755);
                self.tree_from(&d, &entry.path())?;
            } else {
                self.file_from(&d, &entry.path())?;
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&clean(path))
    }

    /// Sum of regular file sizes (for progress messages).
    pub fn data_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    pub fn write_newc(&self, w: &mut impl Write) -> Result<()> {
        let mut written = 0u64;
        for (ino, (name, e)) in (1u32..).zip(&self.entries) {
            let (fmt, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match &e.kind {
                Kind::Dir => (0o040000, &[], 2, (0, 0)),
                Kind::File(d) => (0o100000, d, 1, (0, 0)),
                Kind::Symlink(t) => (0o120000, t.as_bytes(), 1, (0, 0)),
                Kind::CharDev(ma, mi) => (0o020000, &[], 1, (*ma, *mi)),
            };
            written += write_entry(w, name, ino, fmt | e.perm, nlink, data, rdev)?;
        }
        written += write_entry(w, "TRAILER!!!", 0, 0, 1, &[], (0, 0))?;
        // Pad to 512 like GNU cpio; harmless and keeps concatenated archives aligned.
        let pad = (512 - written % 512) % 512;
        w.write_all(&vec![0u8; pad as usize])?;
        Ok(())
    }
}

fn write_entry(
    w: &mut impl Write,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    data: &[u8],
    rdev: (u32, u32),
) -> Result<u64> {
    let namesize = name.len() + 1;
    let header = format!(
        "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
        ino,
        mode,
        0, // uid root
        0, // gid root
        nlink,
        0, // mtime: fixed for reproducible archives
        data.len(),
        0,
        0,
        rdev.0,
        rdev.1,
        namesize,
        0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    let hlen = header.len() + namesize;
    let hpad = (4 - hlen % 4) % 4;
    w.write_all(&[0u8; 3][..hpad])?;
    w.write_all(data)?;
    let dpad = (4 - data.len() % 4) % 4;
    w.write_all(&[0u8; 3][..dpad])?;
    Ok((hlen + hpad + data.len() + dpad) as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_are_created() {
        let mut a = Archive::new();
        a.file("etc/dropbear/key", b"k".to_vec(), 0o600);
        a.symlink("bin/sh", "busybox");
        let names: Vec<_> = a.entries.keys().cloned().collect();
        assert_eq!(
            names,
            ["bin", "bin/sh", "etc", "etc/dropbear", "etc/dropbear/key"]
        );
    }

    #[test]
    fn newc_layout() {
        let mut a = Archive::new();
        a.file("/x", b"hello".to_vec(), 0o644);
        let mut out = Vec::new();
        a.write_newc(&mut out).unwrap();
        assert_eq!(out.len() % 512, 0);
        let s = String::from_utf8_lossy(&out);
        assert!(s.starts_with("070701"));
        // mode field of the first entry: regular file 0644
        assert_eq!(&s[14..22], "000081A4");
        // name "x\0" after the 110-byte header, then pad to 4 → data at 112
        assert_eq!(&out[110..112], b"x\0");
        assert_eq!(&out[112..117], b"hello");
        assert!(s.contains("TRAILER!!!"));
    }

    #[test]
    fn roundtrip_with_cpio_tool_if_present() {
        // Cross-checks the format against GNU cpio when the host has it.
        if !Path::new("/usr/bin/cpio").exists() {
            return;
        }
        let mut a = Archive::new();
        a.file("d/f", b"data".to_vec(), 0o640);
        a.symlink("d/l", "f");
        a.char_dev("dev/console", 5, 1, 0o600);
        let mut out = Vec::new();
        a.write_newc(&mut out).unwrap();
        let mut child = std::process::Command::new("/usr/bin/cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let o = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success());
        assert!(listing.contains("-rw-r-----"), "{listing}");
        assert!(listing.contains("d/l -> f"), "{listing}");
        assert!(listing.contains("crw-------"), "{listing}");
    }
}
