//! The boards of the lab and their lease state now: holder, queue, service. The same
//! sources as `hil boards`: the board files (or the lab file's boards), then every board
//! the lease coordinator knows that has no file here (held from another lab host).
//! Blocking (lease files under their locks, or the lease database): call off the
//! runtime's workers.

use crate::lease::{service, Leases};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holder {
    pub job: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    /// When the lease was granted (RFC 3339, UTC).
    pub since: String,
    /// The holder's last renewal (RFC 3339, UTC).
    pub heartbeat: String,
    pub heartbeat_age_s: f64,
    /// Seconds until the lease lapses without a renewal.
    pub expires_in_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEntry {
    pub job: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub run_id: String,
    /// Higher is served first.
    pub priority: i32,
    pub waiting_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub reason: String,
    /// RFC 3339, UTC.
    pub since: String,
    /// `user@host` of whoever took it out, or `hil` when it went by itself.
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardState {
    pub board: String,
    /// Whether this host has the board's file (a board held from another host may not).
    pub has_file: bool,
    /// The live lease; none when free or expired.
    pub holder: Option<Holder>,
    /// Live waiters in the order they will be served.
    pub queue: Vec<QueueEntry>,
    pub out_of_service: Option<Service>,
    pub infra_errors_in_a_row: u32,
    /// What could not be read of this board's state (a corrupt lease file, a database
    /// that is down), shown rather than guessed.
    pub error: Option<String>,
    /// The step the holding run is at, when it runs on this host (`serve::live`).
    pub step: Option<super::live::LiveStep>,
    /// The page that follows the board's console, when the holder publishes it here.
    pub live_console: Option<String>,
}

/// RFC 3339 of unix seconds, to the second: what a person reads on the page (the ages
/// and expiries beside it carry the fractions).
pub fn rfc3339(t: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.floor() as i64)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{t}"))
}

/// The board names: `lab_boards` when a lab file names them, else the board files in
/// `dir` (by file name, as `hil` finds them).
pub fn names(lab_boards: Option<&[String]>, dir: &Path) -> Vec<String> {
    match lab_boards {
        Some(b) => b.to_vec(),
        None => crate::config::board::list(dir)
            .iter()
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .collect(),
    }
}

/// Each of `names`, then the other boards the coordinator has a lease of.
pub fn gather(leases: &Leases, names: &[String]) -> Vec<BoardState> {
    let now = crate::lease::now();
    let mut all: Vec<(String, bool)> = names.iter().map(|n| (n.clone(), true)).collect();
    let mut list_error = None;
    match leases.list() {
        Ok(recs) => {
            for r in recs {
                if !all.iter().any(|(n, _)| *n == r.board) {
                    all.push((r.board, false));
                }
            }
        }
        Err(e) => list_error = Some(e.to_string()),
    }
    all.into_iter()
        .map(|(board, has_file)| {
            let mut errors: Vec<String> = list_error.iter().cloned().collect();
            let holder = match leases.read(&board) {
                Ok(Some(r)) if !r.expired(now) => Some(Holder {
                    job: r.owner.job.clone(),
                    user: r.owner.user.clone(),
                    host: r.owner.host.clone(),
                    pid: r.owner.pid,
                    run_id: r.owner.run_id.clone(),
                    since: rfc3339(r.acquired),
                    heartbeat: rfc3339(r.heartbeat),
                    heartbeat_age_s: (now - r.heartbeat).max(0.0),
                    expires_in_s: r.expires() - now,
                }),
                Ok(_) => None,
                Err(e) => {
                    errors.push(format!("lease: {e}"));
                    None
                }
            };
            let queue = match leases.queue(&board) {
                Ok(q) => q
                    .into_iter()
                    .filter(|w| !w.expired(now))
                    .map(|w| QueueEntry {
                        job: w.owner.job,
                        user: w.owner.user,
                        host: w.owner.host,
                        pid: w.owner.pid,
                        run_id: w.owner.run_id,
                        priority: w.priority,
                        waiting_s: (now - w.joined).max(0.0),
                    })
                    .collect(),
                Err(e) => {
                    errors.push(format!("queue: {e}"));
                    Vec::new()
                }
            };
            let (out_of_service, infra_errors_in_a_row) = match leases.service(&board) {
                Ok(service::Service {
                    out,
                    infra_errors_in_a_row,
                }) => (
                    out.map(|o| Service {
                        reason: o.reason,
                        since: rfc3339(o.since),
                        by: o.by,
                    }),
                    infra_errors_in_a_row,
                ),
                Err(e) => {
                    errors.push(format!("service: {e}"));
                    (None, 0)
                }
            };
            BoardState {
                board,
                has_file,
                holder,
                queue,
                out_of_service,
                infra_errors_in_a_row,
                error: (!errors.is_empty()).then(|| errors.join("; ")),
                step: None,
                live_console: None,
            }
        })
        .collect()
}
