//! `hil serve`: the lab dashboard. A small web server over the lab's nightly history (the
//! SQLite file or PostgreSQL database `hil history` reads) and its leases (files or
//! PostgreSQL, as `hil boards` reads them): pages rendered on the server ([`pages`]), the
//! same data as JSON ([`api`]), Prometheus metrics ([`metrics`]) and the runs' report
//! files ([`files`]).
//!
//! History and lease calls block (a SQLite file, lock files, a database thread), so every
//! request does its reading on tokio's blocking pool; the one history connection is
//! shared behind a mutex (SQLite answers in well under a millisecond per query).

pub mod api;
pub mod boards;
pub mod checks;
pub mod files;
pub mod live;
pub mod matrix;
pub mod metrics;
pub mod pages;
pub mod plot;

use crate::error::UsageError;
use crate::lease::Leases;
use crate::nightly::history::at::HistoryAt;
use crate::nightly::history::{History, HistoryError};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (loopback unless told otherwise; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The lab file: its boards, its `history`, and only its lab's runs.
    #[arg(long, value_name = "LABFILE")]
    pub lab: Option<PathBuf>,
    /// The history: a SQLite file or a postgres:// URL (default: $HIL_DATABASE_URL, else
    /// the lab file's `history`).
    #[arg(long, value_name = "FILE|URL")]
    pub history: Option<String>,
    /// Runs shown when a page or API call does not say (`?last=N`).
    #[arg(long, default_value_t = 20)]
    pub last: usize,
}

/// The most runs one request may ask for: a bound on the work a single URL can cause.
pub const MAX_LAST: usize = 10_000;

/// What every request reads from.
pub struct Lab {
    /// The lab's name, empty for every lab of the history.
    pub name: String,
    /// The lab file's boards; none: the board files of the boards directory.
    pub boards: Option<Vec<String>>,
    pub boards_dir: PathBuf,
    /// Runs the flaky rule looks at (the lab file's `flaky_window`, default 5).
    pub flaky_window: usize,
    pub last: usize,
    pub leases: Leases,
    pub at: HistoryAt,
    /// Opened on first use, so the dashboard runs before the first nightly wrote it.
    history: Mutex<Option<History>>,
}

/// A request's failure: its status and what the page or API says.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub why: String,
}

impl Failure {
    fn new(status: StatusCode, why: impl Into<String>) -> Failure {
        Failure {
            status,
            why: why.into(),
        }
    }
}

impl From<HistoryError> for Failure {
    fn from(e: HistoryError) -> Failure {
        let why = match e.hint() {
            Some(h) => format!("{e} ({h})"),
            None => e.to_string(),
        };
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, why)
    }
}

impl Lab {
    pub fn new(
        name: String,
        boards: Option<Vec<String>>,
        flaky_window: usize,
        last: usize,
        leases: Leases,
        at: HistoryAt,
    ) -> Lab {
        Lab {
            name,
            boards,
            boards_dir: crate::config::board::boards_dir(),
            flaky_window,
            last,
            leases,
            at,
            history: Mutex::new(None),
        }
    }

    /// `f` on the history; `None` while there is no history yet.
    pub fn with_history<T>(
        &self,
        f: impl FnOnce(&mut History) -> Result<T, HistoryError>,
    ) -> Result<Option<T>, Failure> {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.is_none() {
            match History::open_existing(&self.at) {
                Ok(opened) => *h = Some(opened),
                Err(HistoryError::Missing { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        match h.as_mut() {
            Some(h) => Ok(Some(f(h)?)),
            None => Ok(None),
        }
    }

    pub fn boards(&self) -> Vec<boards::BoardState> {
        let names = boards::names(self.boards.as_deref(), &self.boards_dir);
        let mut b = boards::gather(&self.leases, &names);
        live::add_steps(&self.leases, &mut b);
        b
    }

    pub fn runs(
        &self,
        last: usize,
    ) -> Result<Vec<crate::nightly::history::window::RunInfo>, Failure> {
        Ok(self
            .with_history(|h| h.runs(&self.name, last))?
            .unwrap_or_default())
    }

    pub fn matrix(&self, last: usize) -> Result<matrix::Matrix, Failure> {
        // The older runs the flaky window of the oldest column reaches into.
        let n = last + self.flaky_window.saturating_sub(1);
        let got = self.with_history(|h| Ok((h.runs(&self.name, n)?, h.results(&self.name, n)?)))?;
        let (runs, results) = got.unwrap_or_default();
        Ok(matrix::build(&runs, &results, last, self.flaky_window))
    }

    /// `None`: the check is not in the history.
    pub fn check(&self, name: &str, last: usize) -> Result<Option<checks::CheckView>, Failure> {
        let runs = self
            .with_history(|h| h.check_runs(&self.name, name))?
            .unwrap_or_default();
        Ok((!runs.is_empty()).then(|| checks::build(name, &runs, last)))
    }

    pub fn metrics(&self) -> Result<String, Failure> {
        let totals = self.with_history(|h| h.totals(&self.name))?;
        Ok(metrics::render(&self.boards(), totals.as_ref()))
    }
}

pub type Shared = Arc<Lab>;

/// `?last=N`, within 1..=[`MAX_LAST`]; the server's `--last` when absent.
#[derive(Debug, Deserialize)]
pub struct Last {
    last: Option<usize>,
}

impl Last {
    pub fn get(&self, lab: &Lab) -> Result<usize, Failure> {
        match self.last.unwrap_or(lab.last) {
            0 => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                "last=0 shows nothing; expected 1 or more runs",
            )),
            n if n > MAX_LAST => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("last={n} is more than {MAX_LAST} runs"),
            )),
            n => Ok(n),
        }
    }
}

/// Runs `f` on the blocking pool; a panic in it is a 500, not a dead connection.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's work failed: {e}"),
        ))
    })
}

/// An HTML page, or the error page with the failure's status.
fn html_page(lab: &Lab, title: &str, r: Result<String, Failure>) -> Response {
    match r {
        Ok(p) => Html(p).into_response(),
        Err(f) => (f.status, Html(pages::error(title, &lab.name, &f.why))).into_response(),
    }
}

async fn boards_page(State(lab): State<Shared>) -> Response {
    let l = lab.clone();
    let r = blocking(move || Ok(pages::boards(&l.name, &l.boards()))).await;
    html_page(&lab, "Boards", r)
}

async fn matrix_page(State(lab): State<Shared>, Query(q): Query<Last>) -> Response {
    let l = lab.clone();
    let r = blocking(move || {
        let n = q.get(&l)?;
        Ok(pages::matrix(&l.name, &l.matrix(n)?, n, l.flaky_window))
    })
    .await;
    html_page(&lab, "Matrix", r)
}

async fn check_page(
    State(lab): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Last>,
) -> Response {
    let l = lab.clone();
    let title = format!("Check {name}");
    let r = blocking(move || {
        let n = q.get(&l)?;
        match l.check(&name, n)? {
            Some(v) => Ok(pages::check(&l.name, &v)),
            None => Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!("the history has no runs of check `{name}`"),
            )),
        }
    })
    .await;
    html_page(&lab, &title, r)
}

async fn metrics_text(State(lab): State<Shared>) -> Response {
    let l = lab.clone();
    match blocking(move || l.metrics()).await {
        Ok(t) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], t).into_response(),
        Err(f) => (f.status, f.why).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct Suite {
    suite: Option<String>,
}

/// A file of a run's report directory; `report.html` of a nightly (which has one per
/// suite) redirects to the suite's own.
async fn run_file(
    State(lab): State<Shared>,
    UrlPath((run_id, rel)): UrlPath<(String, String)>,
    Query(q): Query<Suite>,
) -> Response {
    let l = lab.clone();
    let r = blocking(move || {
        let run = l
            .with_history(|h| h.run_by_id(&run_id))?
            .flatten()
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("no run {run_id} in the history"),
                )
            })?;
        let dir = PathBuf::from(&run.report_dir);
        match files::resolve(&dir, &rel) {
            Ok(p) => {
                let body = std::fs::read(&p).map_err(|e| {
                    Failure::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("{}: {e}", p.display()),
                    )
                })?;
                Ok(([(header::CONTENT_TYPE, files::content_type(&p))], body).into_response())
            }
            Err(files::Refused::Missing) if rel == "report.html" => {
                match files::suite_report(&dir, q.suite.as_deref()) {
                    Some(to) => Ok(Redirect::to(&format!("/runs/{}/{to}", pages::seg(&run_id)))
                        .into_response()),
                    None => Err(Failure::new(
                        StatusCode::NOT_FOUND,
                        format!(
                            "run {run_id}: no report.html{} in {}",
                            q.suite
                                .map(|s| format!(" of suite {s}"))
                                .unwrap_or_default(),
                            run.report_dir
                        ),
                    )),
                }
            }
            Err(files::Refused::Missing) => Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!("run {run_id}: no file {rel} in {}", run.report_dir),
            )),
            Err(files::Refused::Escapes) => Err(Failure::new(
                StatusCode::FORBIDDEN,
                format!("{rel}: only files inside the run's report directory are served"),
            )),
        }
    })
    .await;
    match r {
        Ok(resp) => resp,
        Err(f) => (f.status, Html(pages::error("Report", &lab.name, &f.why))).into_response(),
    }
}

async fn not_found(State(lab): State<Shared>, uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::not_found(
            &lab.name,
            &format!("Nothing at {}.", uri.path()),
        )),
    )
        .into_response()
}

/// The board's console live, when a run on this host holds it; else a page that says why.
async fn console_page(State(lab): State<Shared>, UrlPath(board): UrlPath<String>) -> Response {
    let l = lab.clone();
    let b = board.clone();
    let r = blocking(move || Ok(l.boards().into_iter().find(|s| s.board == b))).await;
    match r {
        Ok(Some(state)) if state.live_console.is_some() => {
            let events = format!("/api/boards/{}/console", pages::seg(&board));
            Html(pages::live_console(&lab.name, &state, &events)).into_response()
        }
        Ok(found) => {
            let why = match found {
                None => format!("No board {board} in this lab."),
                Some(_) => format!(
                    "No run on this host holds {board} now, so there is no console to follow."
                ),
            };
            (
                StatusCode::NOT_FOUND,
                Html(pages::not_found(&lab.name, &why)),
            )
                .into_response()
        }
        Err(f) => (f.status, Html(pages::error("Console", &lab.name, &f.why))).into_response(),
    }
}

/// The server-sent events of a board's published console (see `live::console_events`).
async fn console_events(State(lab): State<Shared>, UrlPath(board): UrlPath<String>) -> Response {
    let l = lab.clone();
    let b = board.clone();
    let sock = blocking(move || {
        Ok(l.boards()
            .into_iter()
            .find(|s| s.board == b)
            .and_then(|s| live::socket(&l.leases, &s)))
    })
    .await;
    let not_found = |why: String| {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": why })),
        )
            .into_response()
    };
    match sock {
        Ok(Some(p)) => match live::console_events(p).await {
            Ok(sse) => sse.into_response(),
            Err(e) => not_found(e),
        },
        Ok(None) => not_found(format!(
            "no run on this host publishes the console of {board}"
        )),
        Err(f) => (f.status, axum::Json(serde_json::json!({ "error": f.why }))).into_response(),
    }
}

pub fn router(lab: Shared) -> Router {
    Router::new()
        .route("/", get(boards_page))
        .route("/matrix", get(matrix_page))
        .route("/checks/{name}", get(check_page))
        .route("/runs/{run_id}/{*path}", get(run_file))
        .route("/boards/{board}/console", get(console_page))
        .route("/api/boards/{board}/console", get(console_events))
        .route("/metrics", get(metrics_text))
        .merge(api::routes())
        .fallback(not_found)
        .with_state(lab)
}

/// The lab the arguments name.
pub fn lab_of(args: &ServeArgs) -> anyhow::Result<Lab> {
    if args.last == 0 || args.last > MAX_LAST {
        return Err(UsageError(format!(
            "--last {}: expected 1 to {MAX_LAST} runs",
            args.last
        ))
        .into());
    }
    let file = args
        .lab
        .as_deref()
        .map(crate::nightly::lab_file::Lab::load)
        .transpose()?;
    let at = HistoryAt::choose(args.history.as_deref(), file.as_ref().map(|l| &l.history))?;
    Ok(match file {
        Some(f) => Lab::new(
            f.name,
            Some(f.boards),
            f.flaky_window,
            args.last,
            Leases::from_env(),
            at,
        ),
        None => Lab::new(String::new(), None, 5, args.last, Leases::from_env(), at),
    })
}

/// Resolves when the process gets SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Binds `addr` and serves `lab` until `stop` resolves; `bound` gets the address bound.
pub async fn serve(
    lab: Lab,
    addr: SocketAddr,
    bound: impl FnOnce(SocketAddr),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    bound(listener.local_addr()?);
    axum::serve(listener, router(Arc::new(lab)))
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

pub async fn cli(args: ServeArgs) -> anyhow::Result<i32> {
    let lab = lab_of(&args)?;
    let what = format!(
        "{}{}",
        lab.at,
        if lab.name.is_empty() {
            String::new()
        } else {
            format!(", lab {}", lab.name)
        }
    );
    serve(
        lab,
        args.listen,
        |a| eprintln!("hil serve: listening on http://{a}/ ({what})"),
        stop_signal(),
    )
    .await?;
    eprintln!("hil serve: stopped");
    Ok(crate::outcome::exit::OK)
}
