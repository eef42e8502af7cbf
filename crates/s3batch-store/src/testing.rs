//! Support for tests that use a shared PostgreSQL server (this crate's own, and the fleet tests of the binary).
//!
//! Most such tests only create and drop a database of their own, and run side by side. A test that restarts the
//! server (to prove that a fleet survives it) would break every other test's connections at that moment, so all of
//! them take [`postgres_server_lock`]: shared by the tests that merely use the server, exclusive by one that
//! restarts it. It is an advisory lock (`flock`) on a file in the temporary directory, so it spans every test
//! binary (and every checkout) of the machine, and the OS drops it with its process: a killed run holds nothing.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// Where the lock lives: one file per machine (per temporary directory).
pub fn postgres_server_lock_path() -> PathBuf {
    std::env::temp_dir().join("s3batch-postgres-server.lock")
}

/// How a test uses the shared PostgreSQL server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerUse {
    /// Connects, creates and drops its own database: runs beside other such tests.
    Shared,
    /// Restarts (or stops) the server: runs alone.
    Exclusive,
}

/// Block until the server may be used as `how` says; the returned file holds the lock until it is dropped. Take it
/// before connecting (and, for [`ServerUse::Shared`], before creating the test's database), hold it until the last
/// connection is closed. A test holding it shared must not also take it exclusive (it would wait for itself).
pub fn postgres_server_lock(how: ServerUse) -> File {
    let path = postgres_server_lock_path();
    // Made writable by whoever comes first; a lock needs only a read handle, for a file someone else made.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .unwrap_or_else(|e| panic!("opening the PostgreSQL test lock {}: {e}", path.display()));
    let locked = match how {
        ServerUse::Shared => file.lock_shared(),
        ServerUse::Exclusive => file.lock(),
    };
    locked.unwrap_or_else(|e| panic!("locking {} ({how:?}): {e}", path.display()));
    file
}
