//! `LambdaInvoke`: one HTTP call per task to the endpoint configured for the job's function, with the exact
//! S3 Batch Operations payloads (schema 1.0 and 2.0) and answers.
//!
//! There is no Lambda here: `[[engine.functions]]` maps a function ARN (or name) to a URL that takes the event as a
//! JSON POST and answers the function's JSON result. `Succeeded` puts `resultString` into the report,
//! `TemporaryFailure` is retried like throttling, `PermanentFailure` fails the task; a function error (non-2xx), a
//! timeout or an answer that is not the expected JSON fails the task with a message that says so.

use std::time::Duration;

use s3batch_core::arn;
use s3batch_core::manifest::ManifestTask;
use s3batch_core::spec::LambdaInvoke;
use s3batch_storage::StorageError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest answer read from a function: Lambda's own limit for a synchronous response payload (6 MB, counted as
/// 6 MiB). A longer answer fails the task, as Lambda fails such an invocation.
pub const MAX_ANSWER_BYTES: usize = 6 << 20;

/// One `[[engine.functions]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The FunctionArn jobs name (`arn:aws:lambda:…:function:name[:qualifier]`), or a bare function name, which
    /// matches any ARN of that function.
    pub function: String,
    /// Where the event is POSTed.
    pub url: String,
    /// Longest wait for an answer, in milliseconds. Default: 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// The configured functions and one HTTP client for them all.
#[derive(Debug, Clone, Default)]
pub struct Functions {
    entries: Vec<FunctionConfig>,
    client: reqwest::Client,
}

impl Functions {
    /// Redirects are not followed: the configured URL is the function, and a redirect (to another host, another
    /// scheme) is its answer, which fails the task.
    pub fn new(entries: Vec<FunctionConfig>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Functions { entries, client }
    }

    /// The entry for a FunctionArn: an exact match first, then the function's name.
    fn find(&self, function_arn: &str) -> Option<&FunctionConfig> {
        self.entries.iter().find(|f| f.function == function_arn).or_else(|| {
            let name = function_name(function_arn);
            self.entries.iter().find(|f| f.function == name)
        })
    }

    /// Invoke the function for one task; the report's ResultMessage on success.
    pub async fn invoke(&self, job_id: &str, op: &LambdaInvoke, task: &ManifestTask) -> Result<String, StorageError> {
        let f = self.find(&op.function_arn).ok_or_else(|| {
            StorageError::function_not_found(format!("no [[engine.functions]] entry for {}", op.function_arn))
        })?;
        let task_id = uuid::Uuid::new_v4().to_string();
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let event = event(job_id, &invocation_id, &task_id, op, task);
        let sent = self
            .client
            .post(&f.url)
            .timeout(Duration::from_millis(f.timeout_ms))
            .header("content-type", "application/json")
            .json(&event)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(permanent(format!(
                    "Lambda returned function error: Task timed out after {} ms",
                    f.timeout_ms
                )));
            }
            Err(e) => return Err(StorageError::connection(format!("calling {}: {e}", f.url))),
        };
        let status = resp.status();
        if status.is_redirection() {
            let to = resp.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("nowhere").to_string();
            return Err(permanent(format!(
                "Lambda returned function error: the endpoint answered {status}, a redirect to {}; redirects are not \
                 followed",
                truncate(&to)
            )));
        }
        let body = read_answer(resp, &f.url).await?;
        if s3batch_storage::is_retryable_status(status.as_u16()) {
            return Err(classified(
                StorageError::function_throttled(status.as_u16(), format!("the function endpoint answered {status}")),
                true,
            ));
        }
        if !status.is_success() {
            return Err(permanent(format!("Lambda returned function error: {}", truncate(&body))));
        }
        answer(&body, &task_id)
    }

    /// Whether a FunctionArn has an `[[engine.functions]]` entry (a dry run checks it without invoking).
    pub fn is_configured(&self, function_arn: &str) -> bool {
        self.find(function_arn).is_some()
    }
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`] of it (read no further: a longer answer fails the task).
async fn read_answer(mut resp: reqwest::Response, url: &str) -> Result<String, StorageError> {
    let too_large = || {
        permanent(format!(
            "Lambda returned function error: Response payload size exceeded maximum allowed payload size \
             ({MAX_ANSWER_BYTES} bytes)"
        ))
    };
    if resp.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(part) = resp.chunk().await.map_err(|e| StorageError::connection(format!("reading {url}: {e}")))? {
        if body.len() + part.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&part);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// `arn:aws:lambda:region:account:function:name[:qualifier]` → `name`; a bare name stays as it is.
fn function_name(arn: &str) -> &str {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if i + 1 < parts.len() => parts[i + 1],
        _ => arn,
    }
}

/// The event of schema 1.0 (`s3BucketArn`) or 2.0 (`s3Bucket`, `userArguments`). The key is passed as the manifest
/// wrote it: URL-encoded.
pub fn event(job_id: &str, invocation_id: &str, task_id: &str, op: &LambdaInvoke, task: &ManifestTask) -> Value {
    let version = op.invocation_schema_version.as_deref().unwrap_or("1.0");
    if version == "2.0" {
        json!({
            "invocationSchemaVersion": "2.0",
            "invocationId": invocation_id,
            "job": {"id": job_id, "userArguments": op.user_arguments},
            "tasks": [{"taskId": task_id, "s3Key": task.raw_key, "s3VersionId": task.version_id, "s3Bucket": task.bucket}],
        })
    } else {
        json!({
            "invocationSchemaVersion": "1.0",
            "invocationId": invocation_id,
            "job": {"id": job_id},
            "tasks": [{"taskId": task_id, "s3Key": task.raw_key, "s3VersionId": task.version_id,
                       "s3BucketArn": arn::bucket_arn(&task.bucket)}],
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    treat_missing_keys_as: Option<String>,
    #[serde(default)]
    results: Vec<TaskAnswer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskAnswer {
    task_id: String,
    result_code: String,
    #[serde(default)]
    result_string: Option<Value>,
}

/// The function's answer for `task_id`.
fn answer(body: &str, task_id: &str) -> Result<String, StorageError> {
    let a: Answer = serde_json::from_str(body).map_err(|e| {
        permanent(format!("the function's answer is not an S3 Batch Operations result ({e}): {}", truncate(body)))
    })?;
    let (code, text) = match a.results.into_iter().find(|r| r.task_id == task_id) {
        Some(r) => {
            let text = match r.result_string {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
            };
            (r.result_code, text)
        }
        None => (
            a.treat_missing_keys_as.unwrap_or_else(|| "PermanentFailure".into()),
            "the function's answer has no result for this task".into(),
        ),
    };
    match code.as_str() {
        "Succeeded" => Ok(text),
        "TemporaryFailure" => Err(classified(StorageError::task_result("TemporaryFailure", text), true)),
        "PermanentFailure" => Err(classified(StorageError::task_result("PermanentFailure", text), false)),
        other => Err(permanent(format!("the function answered resultCode '{other}'"))),
    }
}

fn permanent(message: String) -> StorageError {
    classified(StorageError::task_result("PermanentFailure", message), false)
}

/// A function's answer decides whether a retry may help, not its status code.
fn classified(mut e: StorageError, transient: bool) -> StorageError {
    e.transient = transient;
    e
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 512 { s.chars().take(509).collect::<String>() + "..." } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> ManifestTask {
        ManifestTask { bucket: "photos".into(), key: "a b.jpg".into(), raw_key: "a%20b.jpg".into(), version_id: None }
    }

    #[test]
    fn events_of_both_schemas() {
        let mut op = LambdaInvoke {
            function_arn: "arn:aws:lambda:us-east-1:111111111111:function:f".into(),
            invocation_schema_version: None,
            user_arguments: Default::default(),
        };
        let e = event("job-1", "inv", "t1", &op, &task());
        assert_eq!(e["invocationSchemaVersion"], "1.0");
        assert_eq!(e["tasks"][0]["s3Key"], "a%20b.jpg", "the key is URL-encoded, as in the manifest");
        assert_eq!(e["tasks"][0]["s3BucketArn"], "arn:aws:s3:::photos");
        assert!(e["tasks"][0]["s3VersionId"].is_null());
        op.invocation_schema_version = Some("2.0".into());
        op.user_arguments.insert("k".into(), "v".into());
        let e = event("job-1", "inv", "t1", &op, &task());
        assert_eq!(e["tasks"][0]["s3Bucket"], "photos");
        assert_eq!(e["job"]["userArguments"]["k"], "v");
    }

    #[test]
    fn answers() {
        let ok = r#"{"invocationSchemaVersion":"1.0","treatMissingKeysAs":"PermanentFailure","invocationId":"i",
                     "results":[{"taskId":"t1","resultCode":"Succeeded","resultString":"done"}]}"#;
        assert_eq!(answer(ok, "t1").unwrap(), "done");
        let temp = ok.replace("Succeeded", "TemporaryFailure");
        assert!(answer(&temp, "t1").unwrap_err().transient);
        let perm = ok.replace("Succeeded", "PermanentFailure");
        let e = answer(&perm, "t1").unwrap_err();
        assert_eq!((e.code.as_str(), e.transient, e.message.as_str()), ("PermanentFailure", false, "done"));
        let missing = answer(ok, "t2").unwrap_err();
        assert_eq!(missing.code, "PermanentFailure");
        let e = answer("not json", "t1").unwrap_err();
        assert!(e.message.contains("not an S3 Batch Operations result"));
    }

    #[test]
    fn names_match_arns() {
        assert_eq!(function_name("arn:aws:lambda:us-east-1:1:function:f:$LATEST"), "f");
        assert_eq!(function_name("f"), "f");
        let fs = Functions::new(vec![FunctionConfig { function: "f".into(), url: "http://x".into(), timeout_ms: 1 }]);
        assert!(fs.find("arn:aws:lambda:us-east-1:1:function:f:3").is_some());
        assert!(fs.find("arn:aws:lambda:us-east-1:1:function:g").is_none());
    }
}
