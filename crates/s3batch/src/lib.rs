//! The parts of the `s3batch` command that other code calls: the configuration loader ([`config`]) and the fuzz
//! harness of it ([`fuzzing`]). The command itself is `main.rs`.

pub mod config;
pub mod fuzzing;
