//! Integration tests through the public CLI: one binary, a module per area.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod bench;
mod common;
mod config_errors;
mod rcar;
mod sertest;
mod sim;
mod vfio;
