//! `hil boards`: every board of the lab and its state across lab hosts (board files, and
//! with a lease database every board a host holds or waits for), `check` to validate the
//! board files, `disable` / `enable` to take a board out of service and back.

use crate::config::{board, Board};
use crate::error::UsageError;
use crate::lease::service::Service;
use crate::lease::{Leases, Record, Waiter};
use crate::outcome::exit;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BoardsCmd {
    /// Validate every board file.
    Check,
    /// Take a board out of service: runs on it are refused with the reason, except a
    /// health run (`hil checklist`, `hil run --health`), which puts it back when it passes.
    Disable {
        board: String,
        /// Why, shown to every run that is refused.
        #[arg(long)]
        reason: String,
    },
    /// Put a board back in service (its count of infrastructure errors cleared).
    Enable { board: String },
}

pub fn cli(action: Option<BoardsCmd>) -> anyhow::Result<i32> {
    match action {
        None => list(false),
        Some(BoardsCmd::Check) => list(true),
        Some(BoardsCmd::Disable { board, reason }) => {
            if reason.trim().is_empty() {
                return Err(UsageError(
                    "--reason is empty: say why the board is out of service (it is shown to every run refused)".into(),
                )
                .into());
            }
            let b = load(&board)?;
            let s = Leases::from_env().disable(&b.name, reason.trim())?;
            println!("{}", service_line(&s));
            Ok(exit::OK)
        }
        Some(BoardsCmd::Enable { board }) => {
            let b = load(&board)?;
            let s = Leases::from_env().enable(&b.name)?;
            println!("{}", service_line(&s));
            Ok(exit::OK)
        }
    }
}

fn load(name: &str) -> anyhow::Result<Board> {
    let path = board::find(name).map_err(|e| crate::config::ConfigErrors(vec![e]))?;
    Ok(Board::load(&path)?)
}

/// The board files, then the boards the coordinator knows that have no file here (held
/// from another host), each with its lease, queue and service.
fn list(check: bool) -> anyhow::Result<i32> {
    let dir = board::boards_dir();
    let files = board::list(&dir);
    if files.is_empty() {
        return Err(UsageError(format!("no board files in {}", dir.display())).into());
    }
    let mut bad = 0;
    let leases = Leases::from_env();
    let mut shown = Vec::new();
    for f in &files {
        match Board::load(f) {
            Ok(b) => {
                let power = b.power.backend.name();
                let flash = b.flash.as_ref().map_or("-", |f| f.backend().name());
                println!(
                    "{:<22} {:<8} power={:<8} flash={:<14} console={}{}",
                    b.name,
                    b.soc,
                    power,
                    flash,
                    b.console.device,
                    if check { "  ok" } else { "" }
                );
                state(&leases, &b.name);
                shown.push(b.name);
            }
            Err(e) => {
                bad += 1;
                println!(
                    "{:<22} INVALID",
                    f.file_stem().and_then(|s| s.to_str()).unwrap_or("?")
                );
                eprintln!("error: {e}");
            }
        }
    }
    if !check {
        match leases.list() {
            Ok(all) => {
                for rec in all.iter().filter(|r| !shown.contains(&r.board)) {
                    println!("{:<22} (no board file on this host)", rec.board);
                    state(&leases, &rec.board);
                }
            }
            Err(e) => eprintln!("warning: the other leases of the lab: {e}"),
        }
    }
    Ok(if bad > 0 { exit::CONFIG } else { exit::OK })
}

/// The lease, queue and service lines of a board.
fn state(leases: &Leases, board: &str) {
    let now = crate::lease::now();
    let pad = "";
    match leases.read(board) {
        Ok(Some(l)) if !l.expired(now) => println!("{pad:<22} lease: {}", held(&l, now)),
        Ok(Some(l)) => println!("{pad:<22} lease: free ({})", l.describe(now)),
        Ok(None) => println!("{pad:<22} lease: free"),
        Err(e) => println!("{pad:<22} lease: unknown ({e})"),
    }
    match leases.queue(board) {
        Ok(q) if q.is_empty() => {}
        Ok(q) => println!("{pad:<22} queue: {}", queue_line(&q, now)),
        Err(e) => println!("{pad:<22} queue: unknown ({e})"),
    }
    match leases.service(board) {
        Ok(s) if s == Service::default() => {}
        Ok(s) => println!("{pad:<22} {}", service_line(&s)),
        Err(e) => println!("{pad:<22} service: unknown ({e})"),
    }
}

/// "held by job 42 (ci@lab1, pid 7, run r) for 3 min, expires in 50 s unless renewed;
/// since 2026-12-02 01:10:00 UTC, last heartbeat 10 s ago".
fn held(l: &Record, now: f64) -> String {
    format!(
        "{}; since {}, last heartbeat {:.0} s ago",
        l.describe(now),
        crate::lease::service::utc(l.acquired),
        (now - l.heartbeat).max(0.0)
    )
}

/// "2 waiting: job 7 (...), priority 5, waiting 40 s; job 9 (...), priority 0, ...".
fn queue_line(q: &[Waiter], now: f64) -> String {
    let each: Vec<String> = q.iter().map(|w| w.describe(now)).collect();
    format!("{} waiting: {}", q.len(), each.join("; "))
}

fn service_line(s: &Service) -> String {
    match (&s.out, s.infra_errors_in_a_row) {
        (Some(out), _) => format!("service: OUT OF SERVICE {}", out.describe()),
        (None, 0) => "service: in service".into(),
        (None, n) => {
            format!("service: in service ({n} runs in a row ended in an infrastructure error)")
        }
    }
}
