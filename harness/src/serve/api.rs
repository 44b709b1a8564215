//! The JSON API under the pages: the same structs the pages are rendered from, as JSON
//! (README, "Dashboard: hil serve", has an example answer of each). An error is
//! `{"error": "..."}` with the status of the page it would be.

use super::{blocking, Failure, Last, Shared};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

fn answer<T: Serialize>(r: Result<T, Failure>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(f) => (f.status, Json(serde_json::json!({ "error": f.why }))).into_response(),
    }
}

async fn boards(State(lab): State<Shared>) -> Response {
    answer(blocking(move || Ok(lab.boards())).await)
}

async fn runs(State(lab): State<Shared>, Query(q): Query<Last>) -> Response {
    answer(blocking(move || lab.runs(q.get(&lab)?)).await)
}

async fn matrix(State(lab): State<Shared>, Query(q): Query<Last>) -> Response {
    answer(blocking(move || lab.matrix(q.get(&lab)?)).await)
}

async fn check(
    State(lab): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<Last>,
) -> Response {
    answer(
        blocking(move || {
            lab.check(&name, q.get(&lab)?)?.ok_or_else(|| Failure {
                status: StatusCode::NOT_FOUND,
                why: format!("the history has no runs of check `{name}`"),
            })
        })
        .await,
    )
}

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/boards", get(boards))
        .route("/api/runs", get(runs))
        .route("/api/matrix", get(matrix))
        .route("/api/checks/{name}", get(check))
}
