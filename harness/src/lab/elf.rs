//! Just enough ELF reading to find which shared libraries an arm64 binary needs.
//!
//! The build host is x86_64 and cannot run the arm64 `ldd`, and relying on the
//! cross `readelf` would add a host package; the dynamic section is simple to read.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    /// PT_INTERP, e.g. `/lib/ld-linux-aarch64.so.1`.
    pub interp: Option<String>,
    /// DT_NEEDED sonames, in file order.
    pub needed: Vec<String>,
}

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(off..off + 8)?.try_into().ok()?))
}
fn cstr_at(d: &[u8], off: usize) -> Option<String> {
    let rest = d.get(off..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// Parses a little-endian ELF64 file (all Debian arm64 binaries are).
/// Returns `Ok(None)` for data that is not ELF at all (scripts, data files).
pub(crate) fn parse(d: &[u8]) -> Result<Option<ElfInfo>> {
    if d.len() < 64 || &d[..4] != b"\x7fELF" {
        return Ok(None);
    }
    if d[4] != 2 || d[5] != 1 {
        bail!("only little-endian ELF64 is supported");
    }
    let bad = || anyhow::anyhow!("truncated ELF header");
    let phoff = u64_at(d, 0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(d, 0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(d, 0x38).ok_or_else(bad)? as usize;

    // (vaddr, offset, filesz) of PT_LOAD segments, to turn DT_STRTAB (an address) into a file offset.
    let mut loads = Vec::new();
    let mut dynamic = None;
    let mut info = ElfInfo::default();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(d, ph).ok_or_else(bad)?;
        let p_offset = u64_at(d, ph + 8).ok_or_else(bad)? as usize;
        let p_vaddr = u64_at(d, ph + 16).ok_or_else(bad)?;
        let p_filesz = u64_at(d, ph + 32).ok_or_else(bad)? as usize;
        match p_type {
            1 => loads.push((p_vaddr, p_offset, p_filesz)),
            2 => dynamic = Some((p_offset, p_filesz)),
            3 => info.interp = cstr_at(d, p_offset),
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic else {
        return Ok(Some(info)); // static binary
    };
    let mut needed_offs = Vec::new();
    let mut strtab = None;
    let mut off = dyn_off;
    while off + 16 <= dyn_off + dyn_size {
        let tag = u64_at(d, off).ok_or_else(bad)?;
        let val = u64_at(d, off + 8).ok_or_else(bad)?;
        match tag {
            0 => break,
            1 => needed_offs.push(val as usize),
            5 => strtab = Some(val),
            _ => {}
        }
        off += 16;
    }
    if needed_offs.is_empty() {
        return Ok(Some(info));
    }
    let strtab = strtab.context("ELF has DT_NEEDED but no DT_STRTAB")?;
    let str_off = loads
        .iter()
        .find(|(va, _, sz)| strtab >= *va && strtab < va + *sz as u64)
        .map(|(va, fo, _)| (strtab - va) as usize + fo)
        .context("DT_STRTAB outside every PT_LOAD")?;
    for n in needed_offs {
        info.needed
            .push(cstr_at(d, str_off + n).context("bad DT_NEEDED string")?);
    }
    Ok(Some(info))
}

/// Follows symlinks of `rel` inside an extracted package tree `root` (absolute link
/// targets mean root-relative), returning the real file's path.
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = rel.to_path_buf();
    for _ in 0..32 {
        let full = root.join(cur.strip_prefix("/").unwrap_or(&cur));
        let meta = std::fs::symlink_metadata(&full)
            .with_context(|| format!("{} not found", full.display()))?;
        if !meta.file_type().is_symlink() {
            return Ok(full);
        }
        let target = std::fs::read_link(&full)?;
        cur = if target.is_absolute() {
            target
        } else {
            cur.parent().unwrap_or(Path::new("")).join(target)
        };
        cur = normalize(&cur);
    }
    bail!("symlink loop at {}", rel.display())
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Multiarch library directories of an extracted Debian arm64 tree, in ld.so's order.
pub(crate) const LIB_DIRS: &[&str] = &[
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib",
    "usr/lib",
];

/// Shared libraries needed (transitively) by `bins` (paths relative to `root`):
/// soname -> real file in `root`. Fails naming every soname that is not in the tree,
/// which is how a too-aggressive package skip list shows up.
pub(crate) fn lib_closure(root: &Path, bins: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    let mut queue: VecDeque<PathBuf> = VecDeque::new();
    for b in bins {
        queue.push_back(resolve_in_root(root, Path::new(b))?);
    }
    while let Some(file) = queue.pop_front() {
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let Some(info) = parse(&data).with_context(|| file.display().to_string())? else {
            continue;
        };
        for so in info.needed {
            if found.contains_key(&so) || missing.contains(&so) {
                continue;
            }
            let hit = LIB_DIRS
                .iter()
                .map(|d| Path::new(d).join(&so))
                .find(|p| std::fs::symlink_metadata(root.join(p)).is_ok());
            match hit {
                Some(p) => {
                    let real = resolve_in_root(root, &p)?;
                    found.insert(so, real.clone());
                    queue.push_back(real);
                }
                None => missing.push(so),
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "libraries not found in the extracted packages: {}",
            missing.join(", ")
        );
    }
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_own_test_binary() {
        let exe = std::env::current_exe().unwrap();
        let info = parse(&std::fs::read(exe).unwrap()).unwrap().unwrap();
        assert!(info.needed.iter().any(|n| n.starts_with("libc.so")));
        assert!(info.interp.unwrap().contains("ld-linux"));
    }

    #[test]
    fn non_elf_is_none() {
        assert_eq!(parse(b"#!/bin/sh\necho hi\n").unwrap(), None);
    }

    #[test]
    fn truncated_elf_is_error() {
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = 2;
        d[5] = 1;
        d[0x20] = 0xff; // phoff far beyond the data
        d[0x38] = 1;
        assert!(parse(&d).is_err());
    }

    #[test]
    fn resolves_symlinks_inside_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("lib/aarch64-linux-gnu")).unwrap();
        std::fs::write(r.join("lib/aarch64-linux-gnu/libx.so.1.2"), b"x").unwrap();
        std::os::unix::fs::symlink("libx.so.1.2", r.join("lib/aarch64-linux-gnu/libx.so.1"))
            .unwrap();
        std::os::unix::fs::symlink("/lib/aarch64-linux-gnu/libx.so.1", r.join("lib/abs")).unwrap();
        std::os::unix::fs::symlink("aarch64-linux-gnu/../abs", r.join("lib/rel")).unwrap();
        let want = r.join("lib/aarch64-linux-gnu/libx.so.1.2");
        assert_eq!(resolve_in_root(r, Path::new("lib/abs")).unwrap(), want);
        assert_eq!(resolve_in_root(r, Path::new("/lib/rel")).unwrap(), want);
    }
}
