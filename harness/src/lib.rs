//! hil: a hardware-in-the-loop test harness for boards that host virtual machines.
//!
//! The library holds everything; the `hil` binary is a thin CLI over [`cli`].
//! Data flows: [`config`] → [`runner`] (the dispatcher: one [`engine::BoardRun`] task per
//! board) → [`engine`] (lease, prepare, flash, boot, checks, teardown) → [`boot`] (power,
//! console, bootloader, Linux, SSH) and [`checks`] → [`report`].

pub mod attach;
pub mod bench;
pub mod bisect;
pub mod boards_cmd;
pub mod boot;
pub mod browser;
pub mod checklist;
pub mod checks;
pub mod cli;
pub mod config;
pub mod console;
pub mod engine;
pub mod error;
pub mod expect;
pub mod fake_board;
pub mod flash;
pub mod guest;
pub mod hash;
pub mod host_cmd;
pub mod image_set;
pub mod lab;
pub mod lab_ctl;
pub mod lease;
pub mod nightly;
pub mod outcome;
pub mod pg_thread;
pub mod power;
pub mod progress;
pub mod qmp;
pub mod report;
pub mod runner;
pub mod runtime;
pub mod serve;
pub mod shell;
pub mod ssh;
pub mod stimulus;
pub mod suite_run;
pub mod text;
pub mod verbs;
pub mod vfio;
