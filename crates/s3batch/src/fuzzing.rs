//! Fuzz harness of the configuration loader, called by the `config` target under `fuzz/` and by
//! `tests/fuzz_replay.rs` on every committed corpus and crash input.

use std::path::Path;

use crate::config::Config;

/// The line that ends the TOML file in an input; what follows is the environment, one `NAME=value` a line.
pub const ENV_MARK: &str = "\n%%env\n";

/// The shortest secret the harness looks for: a shorter one (`b`) turns up in any text.
const MIN_SECRET_LEN: usize = 8;

/// One fuzz input: a config file's text, then (after [`ENV_MARK`]) environment variables. The loader must answer
/// a config or an error, never panic; and neither the error nor the config's `Debug` repeats a secret given in the
/// environment: the value of a variable the loader reads as a secret (`S3BATCH_…SECRET…`, not a `…_FILE` path)
/// or the password of `S3BATCH_SERVER__DATABASE_URL`.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, env) = text.split_once(ENV_MARK).unwrap_or((&*text, ""));
    let env: Vec<(String, String)> =
        env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let output = shown(file, &env);
    if let Some(k) = leak(file, &env, &output, |at, secret| shown(file, &altered(&env, at, secret))) {
        panic!("the config's error or Debug repeats the secret of {k}: {output}");
    }
}

/// The variable whose secret `text` (what the loader showed) repeats, if any. `shown_altered(at, secret)` is what
/// it shows with that secret altered in the variable `env[at]` (see [`alter`]): a value that comes from elsewhere
/// (the file, another variable, even one of the same name, the loader's own words: `t_access_key_file` is in
/// "`secret_access_key_file`") is shown then too, and is no leak.
fn leak<'e>(
    file: &str,
    env: &'e [(String, String)],
    text: &str,
    shown_altered: impl Fn(usize, &str) -> String,
) -> Option<&'e str> {
    secrets(env).into_iter().find_map(|(at, secret)| {
        if secret.len() < MIN_SECRET_LEN || !text.contains(secret) {
            return None;
        }
        let elsewhere = file.contains(secret)
            || env.iter().enumerate().any(|(i, (k, v))| k.contains(secret) || (i != at && v.contains(secret)))
            || shown_altered(at, secret).contains(secret);
        (!elsewhere).then_some(env[at].0.as_str())
    })
}

/// The same text with every ASCII letter and digit moved on by one (`z9` → `a0`): of the same shape (a number
/// stays a number), yet another value.
fn alter(s: &str) -> String {
    let next = |c: char, first: u8, n: u8| (first + (c as u8 - first + 1) % n) as char;
    s.chars()
        .map(|c| match c {
            'a'..='z' => next(c, b'a', 26),
            'A'..='Z' => next(c, b'A', 26),
            '0'..='9' => next(c, b'0', 10),
            _ => c,
        })
        .collect()
}

/// The config's `Debug`, or the error in full.
fn shown(file: &str, env: &[(String, String)]) -> String {
    match Config::from_text(Some((file, Path::new("fuzz.toml"))), env.to_vec()) {
        Ok(c) => format!("{c:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// The environment with `secret` altered in the variable `env[at]`.
fn altered(env: &[(String, String)], at: usize, secret: &str) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env[at].1 = env[at].1.replace(secret, &alter(secret));
    env
}

/// (index in `env`, secret) for every secret the environment gives the loader.
fn secrets(env: &[(String, String)]) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (at, (k, v)) in env.iter().enumerate() {
        let Some(name) = k.strip_prefix("S3BATCH_") else { continue };
        if name.contains("SECRET") && !name.ends_with("_FILE") {
            out.push((at, v.as_str()));
        } else if name == "SERVER__DATABASE_URL"
            && let Some(password) = url_password(v)
        {
            out.push((at, password));
        }
    }
    out
}

/// The password of a URL's user info, found as `config::redact_url` finds it (the last `@` ends the user info).
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let (userinfo, _) = rest.rsplit_once('@')?;
    Some(userinfo.split_once(':')?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The check still sees a leaked secret or database password (as if the loader showed it)…
    #[test]
    fn a_shown_secret_or_password_is_a_leak() {
        let e = env(&[
            ("S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY", "0123456789abcdef"),
            ("S3BATCH_SERVER__DATABASE_URL", "postgres://u:pa@ss/w0rd@db/x"),
        ]);
        let nothing = |_: usize, _: &str| String::new();
        assert_eq!(leak("", &e, "key 0123456789abcdef", nothing), Some("S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY"));
        assert_eq!(leak("", &e, "url postgres://u:pa@ss/w0rd@db/x", nothing), Some("S3BATCH_SERVER__DATABASE_URL"));
        assert_eq!(leak("", &e, "url postgres://u:***@db/x", nothing), None);
    }

    /// …but not a value that is no secret, too short to tell, or shown with the secret altered too.
    #[test]
    fn what_is_not_a_leak() {
        let nothing = |_: usize, _: &str| String::new();
        let not_read = env(&[("account_idSECRET_A \"b\" ", " \"123456789012\"")]);
        assert_eq!(leak("", &not_read, "account_id: \"123456789012\"", nothing), None);
        let short = env(&[("S3BATCH_ENGINE__EVENTS__WEBHOOKS__0__SECRET", "b")]);
        assert_eq!(leak("", &short, "bucket", nothing), None);
        let path = env(&[("S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY_FILE", "/etc/s3batch/key")]);
        assert_eq!(leak("", &path, "cannot read /etc/s3batch/key", nothing), None);
        let secret = env(&[("S3BATCH_ACCOUNTS__0__SECRET_ACCESS_KEY", "us-east-1")]);
        assert_eq!(leak("", &secret, "region: us-east-1", |_, _| "region: us-east-1".into()), None);
        // The loader's own words: the altered value does not take the secret away from the text.
        let words = env(&[("S3BATCH_ACCOUNTS__0__AC0__SECRET_ACCESS_KEY", "t_access_key_file")]);
        let error = "unknown field `ac0`, expected one of `secret_access_key`, `secret_access_key_file`";
        assert_eq!(leak("", &words, error, |_, _| error.into()), None);
    }

    /// A variable given twice: the password of the first one (not in effect) is the text of the second.
    #[test]
    fn a_secret_repeated_by_a_later_variable_of_the_same_name_is_not_a_leak() {
        let twice = env(&[
            ("S3BATCH_SERVER__DATABASE_URL", "postgres://uÑ@db/x=postgres://uÑw-77@db/y"),
            ("S3BATCH_SERVER__DATABASE_URL", "postgres://uÑw-77@db/y"),
        ]);
        let shown = "database_url: Some(\"postgres://uÑw-77@db/y\")";
        // The loader shows the last one: altering the first changes nothing, altering the last changes the text.
        let shown_altered =
            |at: usize, secret: &str| if at == 1 { shown.replace(secret, &alter(secret)) } else { shown.into() };
        assert_eq!(leak("", &twice, shown, shown_altered), None);
    }

    #[test]
    fn an_altered_secret_keeps_its_shape() {
        assert_eq!(alter("t_access-KEY_9z.8"), "u_bddftt-LFZ_0a.9");
        let e = env(&[("S3BATCH_SERVER__DATABASE_URL", "postgres://u:secret99@db/x"), ("OTHER", "secret99")]);
        let got = altered(&e, 0, "secret99");
        assert_eq!(got[0].1, "postgres://u:tfdsfu00@db/x");
        assert_eq!(got[1].1, "secret99");
    }
}
