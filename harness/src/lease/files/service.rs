//! A board's service state as a file: `<dir>/<board>.oos`, read and rewritten only while
//! the board's lease file is locked, opened like the lease file (never through a symlink,
//! created exclusively, mode 0666, a regular file with one link). Empty or missing: in
//! service with no infrastructure errors counted. What it holds is checked before it is
//! believed: a file that cannot be read is [`LeaseError::Corrupt`], never "in service",
//! since that would hand a broken board to the next run.

use super::{FileLeases, LeaseFile, CLOCK_SLACK_S};
use crate::lease::service::Service;
use crate::lease::{now, LeaseError};

const EXT: &str = "oos";

impl FileLeases {
    /// The board's service state; nothing is created by looking.
    pub fn service(&self, board: &str) -> Result<Service, LeaseError> {
        match std::fs::symlink_metadata(&self.dir) {
            Ok(meta) => self.check_dir(&meta)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Service::default()),
            Err(e) => return Err(self.io(e)),
        }
        let Some(lease) = self.open_existing(board, self.file(board))? else {
            return Ok(Service::default());
        };
        self.lock(&lease)?;
        match self.open_existing(board, self.side_file(board, EXT))? {
            Some(f) => read(&f),
            None => Ok(Service::default()),
        }
    }

    /// Replaces the board's service state by `f` of it, under the board's lock.
    pub fn update_service(
        &self,
        board: &str,
        f: impl FnOnce(Service) -> Service,
    ) -> Result<Service, LeaseError> {
        self.locked(board, |_| {
            let file = self.open_or_create(board, self.side_file(board, EXT))?;
            let old = read(&file)?;
            let new = f(old.clone());
            if new != old {
                let r = if new == Service::default() {
                    file.clear()
                } else {
                    file.store_json(&new)
                };
                r.map_err(|e| self.io(format!("{}: {e}", file.path.display())))?;
            }
            Ok(new)
        })
    }
}

fn read(f: &LeaseFile) -> Result<Service, LeaseError> {
    let text = f.text()?;
    if text.trim().is_empty() {
        return Ok(Service::default());
    }
    let s: Service = serde_json::from_str(&text).map_err(|e| f.corrupt(e))?;
    if let Some(out) = &s.out {
        if !out.since.is_finite() || out.since < 0.0 || out.since > now() + CLOCK_SLACK_S {
            return Err(f.corrupt(format!(
                "out of service since {:?}, not a time of the past",
                out.since
            )));
        }
    }
    Ok(s)
}
