//! Configuration: board and suite files. Raw TOML is deserialized strictly (unknown keys
//! are errors), then validated; every error names the file, the key and what was expected.

pub mod board;
pub mod console_ssh;
pub mod error;
pub mod expand;
pub mod fake;
pub mod flash;
pub mod host_key;
pub mod limits;
pub mod load;
pub mod pcie;
pub mod serial_line;
pub mod suite;
pub mod validate;

pub use board::Board;
pub use error::{ConfigError, ConfigErrors};
pub use suite::{Suite, Via};
