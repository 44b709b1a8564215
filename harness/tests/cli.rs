//! Integration tests through the public CLI: one binary, a module per area.

mod common;
mod config_errors;
mod sim;
