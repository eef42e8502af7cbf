//! Fuzz harness of the configuration loader, called by the `config` target under `fuzz/` and by
//! `tests/fuzz_replay.rs` on every committed corpus and crash input.

use std::path::Path;

use crate::config::Config;

/// The line that ends the TOML file in an input; what follows is the environment, one `NAME=value` a line.
pub const ENV_MARK: &str = "\n%%env\n";

/// One fuzz input: a config file's text, then (after [`ENV_MARK`]) environment variables. The loader must answer
/// a config or an error, never panic; and neither the error nor the config's `Debug` repeats a secret given in the environment (a variable
/// whose name holds `SECRET`, with a value of at least 8 characters that the file does not contain).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, env) = text.split_once(ENV_MARK).unwrap_or((&*text, ""));
    let env: Vec<(String, String)> =
        env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let shown = match Config::from_text(Some((file, Path::new("fuzz.toml"))), env.clone()) {
        Ok(c) => format!("{c:?}"),
        Err(e) => format!("{e:#}"),
    };
    for (k, v) in &env {
        let elsewhere = file.contains(v.as_str())
            || env.iter().any(|(k2, v2)| k2.contains(v.as_str()) || (k2 != k && v2.contains(v.as_str())));
        if k.contains("SECRET") && v.len() >= 8 && !elsewhere {
            assert!(!shown.contains(v.as_str()), "the config's error or Debug repeats the secret of {k}: {shown}");
        }
    }
}
