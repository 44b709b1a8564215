//! Integration tests through the public CLI: one binary, a module per area.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
mod config_errors;
mod pcie;
mod rcar;
mod sertest;
mod sim;
mod vfio;
