//! Integration tests through the public CLI: one binary, a module per area.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod bench;
mod bisect;
mod checklist;
mod ci_examples;
mod common;
mod config_errors;
mod deadlines;
mod docs;
mod fake_board;
mod faults;
mod flash;
mod history;
mod lease;
mod nightly;
mod pcie;
mod pg_faults;
mod rcar;
mod remote;
mod remote_lab;
mod run_fake_board;
mod runtime;
mod serve;
mod sim;
mod verbs;
mod vfio;
