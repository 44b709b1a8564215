//! The files of a run's report directory (`hil_runs.report_dir`), served under
//! `/runs/{run_id}/`: report.html and what it links to (console logs, results.json...).
//! Nothing outside that directory is served: a path with `..`, an absolute path, or a
//! symbolic link that leads out is refused.
//!
//! A nightly's report directory holds one report per suite (`runs/<suite file
//! stem>/report.html`); `report.html` at the top, which a nightly has not, names the one
//! of a suite (by its name in results.json), so a matrix cell links to it without
//! knowing the suite file's name.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, PartialEq)]
pub enum Refused {
    /// The path leaves the report directory (or is not a plain relative path).
    Escapes,
    /// No such file in the directory.
    Missing,
}

/// The file `rel` of `dir`, when it is a file inside `dir` once links are followed.
pub fn resolve(dir: &Path, rel: &str) -> Result<PathBuf, Refused> {
    if rel.contains('\0') || rel.contains('\\') {
        return Err(Refused::Escapes);
    }
    let rel = Path::new(rel);
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Refused::Escapes);
    }
    let root = dir.canonicalize().map_err(|_| Refused::Missing)?;
    let path = root
        .join(rel)
        .canonicalize()
        .map_err(|_| Refused::Missing)?;
    if !path.starts_with(&root) {
        return Err(Refused::Escapes);
    }
    if !path.is_file() {
        return Err(Refused::Missing);
    }
    Ok(path)
}

/// The report of suite `suite` (its name, as in results.json) in a nightly's report
/// directory, as a path relative to it; the first suite's when `suite` is none.
pub fn suite_report(dir: &Path, suite: Option<&str>) -> Option<String> {
    let mut stems: Vec<String> = std::fs::read_dir(dir.join("runs"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    stems.sort();
    stems.into_iter().find_map(|stem| {
        let rel = format!("runs/{stem}/report.html");
        resolve(dir, &rel).ok()?;
        let Some(want) = suite else {
            return Some(rel);
        };
        let text =
            std::fs::read_to_string(dir.join("runs").join(&stem).join("results.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["suite"].as_str() == Some(want)).then_some(rel)
    })
}

/// The content type of a report file, by its extension.
pub fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "log" | "md" | "txt" | "toml" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_report_dir_are_served() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("run");
        std::fs::create_dir_all(dir.join("boards/b")).unwrap();
        std::fs::write(dir.join("boards/b/console.log"), "log").unwrap();
        std::fs::write(t.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("boards/b/console.log"), dir.join("inside")).unwrap();
        assert_eq!(
            resolve(&dir, "boards/b/console.log").unwrap(),
            dir.canonicalize().unwrap().join("boards/b/console.log")
        );
        assert!(resolve(&dir, "inside").is_ok());
        for bad in [
            "../secret",
            "boards/../../secret",
            "/etc/passwd",
            "link",
            "./boards/b/console.log",
            "",
            "a\\..\\b",
        ] {
            assert_eq!(resolve(&dir, bad), Err(Refused::Escapes), "{bad}");
        }
        assert_eq!(resolve(&dir, "boards"), Err(Refused::Missing));
        assert_eq!(resolve(&dir, "nope.html"), Err(Refused::Missing));
    }

    #[test]
    fn a_nightly_dir_names_each_suites_report() {
        let t = tempfile::tempdir().unwrap();
        for (stem, name) in [("night", "fake-night"), ("smoke", "smoke")] {
            let d = t.path().join("runs").join(stem);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("report.html"), "<html>").unwrap();
            std::fs::write(d.join("results.json"), format!("{{\"suite\": \"{name}\"}}")).unwrap();
        }
        assert_eq!(
            suite_report(t.path(), Some("smoke")).as_deref(),
            Some("runs/smoke/report.html")
        );
        assert_eq!(
            suite_report(t.path(), Some("fake-night")).as_deref(),
            Some("runs/night/report.html")
        );
        assert_eq!(
            suite_report(t.path(), None).as_deref(),
            Some("runs/night/report.html")
        );
        assert_eq!(suite_report(t.path(), Some("other")), None);
    }
}
