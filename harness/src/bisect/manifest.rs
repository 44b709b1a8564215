//! The builds manifest of `hil bisect --builds`: an ordered list of kernel builds (image
//! sets), oldest first. Strict TOML like board and suite files:
//!
//! ```toml
//! [[build]]
//! name = "v6.1.176"      # what --good / --bad name
//! dir = "builds/176"     # Image.gz + initrd.gz; relative to this file
//! ```

use crate::config::load::load_toml;
use crate::config::{ConfigError, ConfigErrors};
use crate::image_set::ImageSet;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    build: Vec<RawBuild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    name: String,
    dir: String,
}

/// The builds, in order.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub builds: Vec<ImageSet>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ConfigErrors> {
        let file: ManifestFile = load_toml(path).map_err(|e| ConfigErrors(vec![e]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut errs = Vec::new();
        let mut builds: Vec<ImageSet> = Vec::new();
        for (i, b) in file.build.into_iter().enumerate() {
            let dir = base.join(&b.dir);
            if builds.iter().any(|x| x.name == b.name) {
                errs.push(ConfigError::new(
                    path,
                    format!("build[{i}].name"),
                    format!("\"{}\" is used twice; expected unique build names", b.name),
                ));
            }
            if !dir.is_dir() {
                errs.push(ConfigError::new(
                    path,
                    format!("build[{i}].dir"),
                    format!(
                        "{} is not a directory; expected the build's image set (Image.gz, initrd.gz), relative to the manifest",
                        dir.display()
                    ),
                ));
            }
            builds.push(ImageSet { name: b.name, dir });
        }
        if builds.len() < 2 && errs.is_empty() {
            errs.push(ConfigError::new(
                path,
                "build",
                "lists fewer than two builds; expected the ordered builds from the good one to the bad one",
            ));
        }
        if errs.is_empty() {
            Ok(Manifest { builds })
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// The position of the build named `name`; the error lists the names there are.
    pub fn index(&self, flag: &str, name: &str) -> Result<usize, String> {
        self.builds
            .iter()
            .position(|b| b.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.builds.iter().map(|b| b.name.as_str()).collect();
                format!(
                    "{flag} {name}: no such build in the manifest; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_in_order_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        for n in ["a", "b"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        let p = d.path().join("builds.toml");
        std::fs::write(
            &p,
            "[[build]]\nname = \"one\"\ndir = \"a\"\n[[build]]\nname = \"two\"\ndir = \"b\"\n",
        )
        .unwrap();
        let m = Manifest::load(&p).unwrap();
        assert_eq!(m.builds[1].name, "two");
        assert_eq!(m.builds[1].dir, d.path().join("b"));
        assert_eq!(m.index("--bad", "two"), Ok(1));
        let e = m.index("--good", "three").unwrap_err();
        assert!(e.contains("expected one of: one, two"), "{e}");
    }

    #[test]
    fn errors_name_file_key_and_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        let p = d.path().join("builds.toml");
        std::fs::write(
            &p,
            "[[build]]\nname = \"one\"\ndir = \"a\"\n[[build]]\nname = \"one\"\ndir = \"gone\"\n",
        )
        .unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("build[1].name") && e.contains("used twice"),
            "{e}"
        );
        assert!(
            e.contains("build[1].dir") && e.contains("not a directory"),
            "{e}"
        );
        std::fs::write(&p, "[[build]]\nname = \"one\"\ndri = \"a\"\n").unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains("unknown field `dri`"), "{e}");
    }
}
