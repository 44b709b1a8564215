//! The `hil` command line: parsing and dispatch. Each subcommand is a thin call into the
//! library; every error ends here, printed once, mapped to an exit code.

use crate::config::{board, Board, ConfigErrors, Suite};
use crate::outcome::exit;
use crate::runner::{BoardPlan, RunOptions};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hil",
    version,
    about = "Hardware-in-the-loop tests for boards that host VMs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a suite on one or more boards.
    Run {
        suite: PathBuf,
        /// Board name (boards/NAME.toml); repeat for several.
        #[arg(long = "board", default_value = "sim-rk3588", value_name = "NAME")]
        boards: Vec<String>,
        /// Report directory (default: reports/<run-id>/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Queue for a board another run holds instead of failing at once (the lease
        /// directory is $HIL_LEASE_DIR, default /var/tmp/hil-leases).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        queue: crate::engine::policy::QueueArgs,
        /// A health run: allowed on a board out of service, and puts the board back in
        /// service when every check passes.
        #[arg(long)]
        health: bool,
        /// Run only this check of the suite (with the boot it needs); repeat for several.
        /// The report says that a subset was run and which.
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
        /// Let followers of a board's console (`hil console BOARD` on this host while the
        /// run holds the board) type at it; what they type is marked in console.log as
        /// theirs. Without it they only watch.
        #[arg(long)]
        console_input: bool,
    },
    /// List the lab's boards: holder, queue and service, across lab hosts; `check`
    /// validates the board files; `disable` / `enable` take a board out of service and back.
    Boards {
        #[command(subcommand)]
        action: Option<crate::boards_cmd::BoardsCmd>,
    },
    /// The simulated lab.
    Lab {
        #[command(subcommand)]
        action: LabCmd,
    },
    /// Live console of a board: shows its output, passes typed input (Ctrl-] quits). While
    /// a run on this host holds the board, follows the run's console instead (read-only
    /// unless the run allowed input).
    Console {
        board: String,
        /// Walk the board there first (under its lease), then hand the console over;
        /// Ctrl-] then powers it off. `guest` needs the board file's [guest] table.
        #[arg(long, value_enum, value_name = "STATE")]
        to: Option<crate::attach::walk::To>,
        /// When following a run's console (the board is held by a `hil run` on this
        /// host): each line with its time as the run's console.log stamps it.
        #[arg(long)]
        timestamps: bool,
    },
    /// Switch a board's power outside a run, under its lease (refused while someone else
    /// holds it); `status` takes no lease and shows the holder. For pdudaemon "on" means
    /// requested: pdudaemon only queues.
    Power {
        board: String,
        #[arg(value_enum)]
        action: crate::verbs::power::Action,
    },
    /// Run one command on a board over its [ssh] target (pinned host key) under its lease;
    /// prints its output and exits with its status. Without COMMAND: prints the system
    /// `ssh` command line for an interactive shell with the board's values and pinned key.
    Ssh {
        board: String,
        /// Limit for the command, in seconds.
        #[arg(long = "timeout-s", default_value_t = 60)]
        timeout_s: u64,
        /// The command and its arguments (joined with shell quoting).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Find the first bad kernel build: binary search over a builds manifest.
    Bisect(Box<crate::bisect::BisectArgs>),
    /// Run a lab's board × suite matrix, keep the history, report what changed.
    Nightly(crate::nightly::NightlyArgs),
    /// A check's recent outcomes, figures and stability per board, from the nightly history.
    History(crate::nightly::show::HistoryArgs),
    /// The lab dashboard: boards, the nightly matrix, checks' stability and figures, a
    /// JSON API and Prometheus metrics, over HTTP (loopback by default).
    Serve(crate::serve::ServeArgs),
    /// Walk a board through bring-up, stopping at the first blocker with a hint.
    Checklist(crate::checklist::ChecklistArgs),
    /// Measure the console engine and the orchestrator against their limits and peers.
    Bench(Box<crate::bench::BenchArgs>),
    /// Print a shell completion script for hil (e.g. `hil completions bash >
    /// /etc/bash_completion.d/hil`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print hil's manual page (roff) to stdout: `hil man | man -l -`.
    Man,
    /// The writer side of `hil bench` (run by it in a child process).
    #[command(hide = true)]
    BenchFeed(crate::bench::feeder::FeedArgs),
    /// One simulated lab host of `hil bench --only lease-scale` (run by it in a child
    /// process).
    #[command(hide = true)]
    BenchLeaseHost(crate::bench::lease_scale::host::HostArgs),
}

#[derive(Subcommand)]
enum LabCmd {
    /// Download and assemble the sim images (cached).
    Build { board: Option<String> },
    /// Start a sim board in the background, paused until `hil console` attaches.
    Up {
        #[arg(default_value = "sim-rk3588")]
        board: String,
        /// Walk the board there and leave it running (for `hil ssh`, `hil console`).
        #[arg(long, value_enum, value_name = "STATE")]
        to: Option<crate::attach::walk::To>,
    },
    /// Stop a sim board started with `up`.
    Down {
        #[arg(default_value = "sim-rk3588")]
        board: String,
    },
}

pub use crate::error::UsageError;

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // `git bisect run` would count exit 2 as a bad revision; 128 stops it.
            let args: Vec<String> = std::env::args().skip(1).take(2).collect();
            if e.use_stderr() && args == ["bisect", "run"] {
                return crate::bisect::exit::ABORT;
            }
            return if e.use_stderr() {
                exit::CONFIG
            } else {
                exit::OK
            };
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // One worker more than there are cores: a console read can sleep in the kernel (a tty
    // read that finds its buffer empty waits for the tty's flush worker), and the spare
    // worker keeps the other consoles served meanwhile. With workers = cores, 1024
    // consoles at 1.5 Mbaud fell behind on 2 cores (59–91% of the rate got through); with
    // one more, 72–99.6%, and 72–74% against 59–64% in interleaved runs (BENCHMARKS.md).
    // TOKIO_WORKER_THREADS, if set, still decides.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores + 1);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::HARNESS;
        }
    };
    let r = rt.block_on(dispatch(cli));
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            let (code, hint) = crate::error::classify(&e);
            eprintln!("error: {e:#}");
            if let Some(h) = hint {
                eprintln!("  hint: {h}");
            }
            code
        }
    };
    // Blocking SSH calls may still be waiting on a dead board; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Run {
            suite,
            boards,
            out,
            wait,
            queue,
            health,
            checks,
            console_input,
        } => {
            let mut policy = crate::engine::Policy {
                health,
                follower_input: console_input,
                ..crate::engine::Policy::run(wait)
            };
            queue.apply(&mut policy)?;
            run(suite, boards, out, policy, &checks).await
        }
        Cmd::Boards { action } => crate::boards_cmd::cli(action),
        Cmd::Lab { action } => match action {
            LabCmd::Build { board } => lab_build(board).await,
            LabCmd::Up { board, to } => crate::lab_ctl::up(&load_board(&board)?, to).await,
            LabCmd::Down { board } => crate::lab_ctl::down(&load_board(&board)?)
                .await
                .map(|_| exit::OK),
        },
        Cmd::Console {
            board,
            to,
            timestamps,
        } => crate::attach::console(&load_board(&board)?, to, timestamps).await,
        Cmd::Power { board, action } => {
            crate::verbs::power::cli(&load_board(&board)?, action).await
        }
        Cmd::Ssh {
            board,
            timeout_s,
            command,
        } => {
            let t = std::time::Duration::from_secs(timeout_s.max(1));
            crate::verbs::ssh::cli(&load_board(&board)?, &command, t).await
        }
        Cmd::Bisect(args) => crate::bisect::cli(*args).await,
        Cmd::Nightly(args) => crate::nightly::cli(args).await,
        // Blocking database calls: off the runtime's workers.
        Cmd::History(args) => {
            tokio::task::spawn_blocking(move || crate::nightly::show::cli(args)).await?
        }
        Cmd::Serve(args) => crate::serve::cli(args).await,
        Cmd::Checklist(args) => crate::checklist::cli(args).await,
        Cmd::Bench(args) => bench(*args).await,
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "hil", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Cmd::Man => {
            let mut out = std::io::stdout().lock();
            crate::cli::man_page(&mut out)?;
            Ok(exit::OK)
        }
        Cmd::BenchFeed(args) => {
            tokio::task::spawn_blocking(move || {
                crate::bench::feeder::feed_main(args).map(|_| exit::OK)
            })
            .await?
        }
        Cmd::BenchLeaseHost(args) => crate::bench::lease_scale::host::host_main(args)
            .await
            .map(|_| exit::OK),
    }
}

/// The manual page: clap_mangen's page for `hil` (name, synopsis, options, the list of
/// subcommands), then one subsection per subcommand with its arguments, so that a single
/// `man` page documents every command line hil accepts.
pub fn man_page(w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(cmd.clone()).title("HIL").render(w)?;
    writeln!(w, ".SH \"COMMANDS IN DETAIL\"")?;
    man_subcommands(w, &cmd, "hil")
}

fn man_subcommands(
    w: &mut dyn std::io::Write,
    cmd: &clap::Command,
    path: &str,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = format!("{path} {}", sub.get_name());
        writeln!(w, ".SS \"{}\"", roff_escape(&path))?;
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        if !about.is_empty() {
            writeln!(w, "{}", roff_text(&about))?;
        }
        let mut usage = sub.clone().bin_name(path.clone());
        let usage = usage.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ");
        writeln!(w, ".PP\n\\fB{}\\fR", roff_escape(usage))?;
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(l), Some(s)) => format!("-{s}, --{l}"),
                (Some(l), None) => format!("--{l}"),
                (None, Some(s)) => format!("-{s}"),
                (None, None) => format!("<{}>", id.to_uppercase()),
            };
            let name = if (arg.get_long().is_some() || arg.get_short().is_some())
                && arg.get_action().takes_values()
            {
                let value = arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| id.to_uppercase(), |v| v.to_string());
                format!("{name} <{value}>")
            } else {
                name
            };
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect();
            let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if !values.is_empty() && arg.get_action().takes_values() {
                help = format!("{help} [{}]", values.join("|")).trim().to_string();
            }
            writeln!(
                w,
                ".TP\n\\fB{}\\fR\n{}",
                roff_escape(&name),
                roff_text(&help)
            )?;
        }
        man_subcommands(w, sub, &path)?;
    }
    Ok(())
}

/// Escapes text for use inside a roff line: backslashes and hyphens (which roff would
/// otherwise render as typographic hyphens, breaking copied options).
fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// Escaped text on lines of its own: a line starting with `.` or `'` would be read as a
/// roff request, so it is protected with a zero-width `\&`.
fn roff_text(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = roff_escape(l.trim_end());
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn bench(args: crate::bench::BenchArgs) -> anyhow::Result<i32> {
    let json = args.json;
    let report = crate::bench::run(args).await?;
    let table = crate::bench::table(&report);
    if json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{table}");
    }
    Ok(exit::OK)
}

fn load_board(name: &str) -> anyhow::Result<(PathBuf, Board)> {
    let path = board::find(name).map_err(|e| ConfigErrors(vec![e]))?;
    let b = Board::load(&path)?;
    Ok((path, b))
}

async fn run(
    suite: PathBuf,
    boards: Vec<String>,
    out: Option<PathBuf>,
    policy: crate::engine::Policy,
    checks: &[String],
) -> anyhow::Result<i32> {
    let mut suite = Suite::load(&suite)?;
    suite.select(checks)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = boards.iter().find(|b| !seen.insert(b.as_str())) {
        return Err(UsageError(format!(
            "--board {dup} is given twice; a board runs one suite at a time"
        ))
        .into());
    }
    let mut plans = Vec::new();
    let mut errs = Vec::new();
    for name in &boards {
        match load_board(name) {
            Ok((path, board)) => plans.push(BoardPlan { path, board }),
            Err(e) => match e.downcast::<ConfigErrors>() {
                Ok(c) => errs.extend(c.0),
                Err(e) => return Err(e),
            },
        }
    }
    if !errs.is_empty() {
        return Err(ConfigErrors(errs).into());
    }
    let run_id = crate::suite_run::run_id(&suite.name);
    let out = out.unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    // Before any board is touched: a run whose report cannot be written would lose its
    // results.
    if let Err(e) = writable_dir(&out) {
        return Err(UsageError(format!(
            "cannot write the report directory {}: {e}; choose a writable place with --out DIR",
            out.display()
        ))
        .into());
    }
    let report = crate::runner::run(RunOptions {
        suite,
        boards: plans,
        out,
        run_id,
        progress: crate::progress::Mode::for_stderr(),
        leases: crate::lease::Leases::from_env(),
        policy,
        image_set: None,
    })
    .await?;
    Ok(report.exit_code.unwrap_or_else(|| report.exit_status()))
}

fn writable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".hil-write-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

async fn lab_build(board: Option<String>) -> anyhow::Result<i32> {
    let images = crate::lab::build(&crate::lab::BuildOptions {
        progress: std::io::stderr().is_terminal(),
    })
    .await?;
    println!("images: {}", images.dir.display());
    let names: Vec<String> = match board {
        Some(b) => vec![b],
        None => board::list(&board::boards_dir())
            .iter()
            .filter_map(|p| Board::load(p).ok())
            .filter(|b| b.simulated)
            .map(|b| b.name)
            .collect(),
    };
    for n in names {
        let (_, b) = load_board(&n)?;
        if !b.simulated {
            return Err(UsageError(format!(
                "board {n} is not simulated (no `simulated = true` in its file); nothing to build"
            ))
            .into());
        }
        let bd = crate::lab::prepare_board(&images, &n)?;
        println!("board {n}: {}", bd.dir.display());
    }
    Ok(exit::OK)
}
