//! A board's queue as a file: `<dir>/<board>.queue`, read and rewritten only while the
//! board's lease file is locked, so one lock orders the lease and the queue together. It
//! is opened like the lease file (never through a symlink, created exclusively, mode
//! 0666, a regular file with one link), and what it holds is checked before it is
//! believed: a queue no live waiter could have written is [`LeaseError::Corrupt`], never
//! an empty queue, since dropping it would let a run jump the waiters.

use super::{FileLeases, LeaseFile, CLOCK_SLACK_S, MAX_TTL_S};
use crate::lease::queue::{in_turn, Spot, Waiter};
use crate::lease::{LeaseError, Owner};
use serde::{Deserialize, Serialize};

pub(super) const EXT: &str = "queue";

/// What a queue file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueRecord {
    /// The next arrival's `seq`: it only grows, so a waiter's place never changes while
    /// it stays.
    next_seq: u64,
    waiters: Vec<Waiter>,
}

/// A board's queue, read under the lease file's lock; written back by [`Queue::save`]
/// only if it changed.
pub(super) struct Queue {
    file: Option<LeaseFile>,
    rec: QueueRecord,
    changed: bool,
}

impl FileLeases {
    /// The board's queue, with lapsed waiters dropped. `create`: make the file if it is
    /// missing (a waiter joins); else a missing file is an empty queue. Call only while
    /// the board's lease file is locked.
    pub(super) fn queue_locked(
        &self,
        board: &str,
        create: bool,
        now: f64,
    ) -> Result<Queue, LeaseError> {
        let path = self.side_file(board, EXT);
        let file = if create {
            Some(self.open_or_create(board, path)?)
        } else {
            self.open_existing(board, path)?
        };
        let rec = match &file {
            Some(f) => read(f, now)?,
            None => QueueRecord::default(),
        };
        let mut q = Queue {
            file,
            rec,
            changed: false,
        };
        let before = q.rec.waiters.len();
        q.rec.waiters.retain(|w| !w.expired(now));
        q.changed = q.rec.waiters.len() != before;
        Ok(q)
    }
}

impl Queue {
    /// Joins the queue, or refreshes this owner's place (same arrival, new heartbeat and
    /// priority).
    pub(super) fn join(&mut self, owner: &Owner, spot: &Spot, now: f64) {
        self.changed = true;
        if let Some(w) = self.rec.waiters.iter_mut().find(|w| w.owner == *owner) {
            w.heartbeat = now;
            w.priority = spot.priority;
            w.ttl_s = spot.ttl_s();
            return;
        }
        let seq = self.rec.next_seq;
        self.rec.next_seq += 1;
        self.rec.waiters.push(Waiter {
            owner: owner.clone(),
            priority: spot.priority,
            seq,
            joined: now,
            heartbeat: now,
            ttl_s: spot.ttl_s(),
        });
    }

    pub(super) fn leave(&mut self, owner: &Owner) {
        let before = self.rec.waiters.len();
        self.rec.waiters.retain(|w| w.owner != *owner);
        self.changed |= self.rec.waiters.len() != before;
    }

    /// The live waiters in the order they are served.
    pub(super) fn in_turn(&self) -> Vec<Waiter> {
        in_turn(self.rec.waiters.clone())
    }

    /// Writes the queue back if it changed; an empty queue is an empty file.
    pub(super) fn save(&self, leases: &FileLeases) -> Result<(), LeaseError> {
        let Some(f) = self.file.as_ref().filter(|_| self.changed) else {
            return Ok(());
        };
        let r = if self.rec.waiters.is_empty() && self.rec.next_seq == 0 {
            f.clear()
        } else {
            f.store_json(&self.rec)
        };
        r.map_err(|e| leases.io(format!("{}: {e}", f.path.display())))
    }
}

fn read(f: &LeaseFile, now: f64) -> Result<QueueRecord, LeaseError> {
    let text = f.text()?;
    if text.trim().is_empty() {
        return Ok(QueueRecord::default());
    }
    let rec: QueueRecord = serde_json::from_str(&text).map_err(|e| f.corrupt(e))?;
    for w in &rec.waiters {
        check_waiter(w, rec.next_seq, now)
            .map_err(|why| f.corrupt(format!("waiter {}: {why}", w.owner.describe())))?;
    }
    Ok(rec)
}

/// Why `w` cannot be a place a live waiter keeps: a heartbeat in the far future or a huge
/// time to live would keep a dead waiter ahead of everyone.
fn check_waiter(w: &Waiter, next_seq: u64, now: f64) -> Result<(), String> {
    if w.ttl_s > MAX_TTL_S {
        return Err(format!("ttl_s is {} s, more than {MAX_TTL_S} s", w.ttl_s));
    }
    if w.seq >= next_seq {
        return Err(format!("seq {} is not below next_seq {next_seq}", w.seq));
    }
    let latest = now + w.ttl_s as f64 + CLOCK_SLACK_S;
    for (field, t) in [("joined", w.joined), ("heartbeat", w.heartbeat)] {
        if !t.is_finite() || t < 0.0 {
            return Err(format!("{field} is {t:?}, not a time"));
        }
        if t > latest {
            return Err(format!(
                "{field} is {t:?}, more than its ttl_s + {CLOCK_SLACK_S:.0} s ahead of this host's clock ({now:.0})"
            ));
        }
    }
    Ok(())
}
