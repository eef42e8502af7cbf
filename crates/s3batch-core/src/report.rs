//! The completion report, exactly as AWS writes it: `job-<id>/manifest.json` plus `results/<sha1>.csv` files whose
//! rows are `Bucket, Key, VersionId, TaskStatus, HTTPStatusCode, ErrorCode, ResultMessage` (HTTPStatusCode before
//! ErrorCode, as in every real report, whatever `ReportSchema` says).

use serde::{Deserialize, Serialize};

/// The schema string, kept exactly as AWS writes it (clients compare it), although rows put HTTPStatusCode second.
pub const REPORT_SCHEMA: &str = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage";

/// How one task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Succeeded,
    Failed,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
        }
    }
}

/// One report row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow<'a> {
    pub bucket: &'a str,
    /// The key as the manifest wrote it.
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub status: TaskStatus,
    pub http_status: u16,
    pub error_code: &'a str,
    pub result_message: &'a str,
}

impl ReportRow<'_> {
    /// Append the row as one CSV line (standard quoting, `\n` terminated). For many rows, [`RowWriter`].
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut w = RowWriter::new(out);
        w.write(self);
        w.finish();
    }
}

/// Report rows appended to a buffer as CSV lines (standard quoting, `\n` terminated) through one CSV writer. A
/// writer per row cost a zeroed 8 KiB buffer for every task.
pub struct RowWriter<'a>(csv::Writer<&'a mut Vec<u8>>);

impl<'a> RowWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> RowWriter<'a> {
        RowWriter(csv::WriterBuilder::new().has_headers(false).from_writer(out))
    }

    pub fn write(&mut self, row: &ReportRow<'_>) {
        let status = row.http_status.to_string();
        self.0
            .write_record([
                row.bucket,
                row.key,
                row.version_id.unwrap_or(""),
                row.status.as_str(),
                status.as_str(),
                row.error_code,
                row.result_message,
            ])
            .expect("writing CSV into a Vec cannot fail");
    }

    /// Everything written is in the buffer.
    pub fn finish(mut self) {
        self.0.flush().expect("writing CSV into a Vec cannot fail");
    }
}

/// A parsed report row (owned), for readers of reports: tests, re-runs, the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedReportRow {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub status: String,
    pub http_status: String,
    pub error_code: String,
    pub result_message: String,
}

/// Parse report CSV text into rows.
pub fn parse_rows(csv_text: &[u8]) -> Result<Vec<OwnedReportRow>, csv::Error> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(csv_text);
    r.records()
        .map(|rec| {
            let rec = rec?;
            let f = |i: usize| rec.get(i).unwrap_or("").to_string();
            Ok(OwnedReportRow {
                bucket: f(0),
                key: f(1),
                version_id: f(2),
                status: f(3),
                http_status: f(4),
                error_code: f(5),
                result_message: f(6),
            })
        })
        .collect()
}

/// `<prefix>/job-<id>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportManifest {
    pub format: String,
    pub report_creation_date: String,
    pub results: Vec<ReportResultFile>,
    pub report_schema: String,
}

/// One entry of `Results` in the report's manifest.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportResultFile {
    #[serde(rename = "TaskExecutionStatus")]
    pub task_execution_status: TaskStatus,
    /// The report bucket's name (not its ARN).
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "MD5Checksum")]
    pub md5_checksum: String,
    /// The full key, prefix included.
    #[serde(rename = "Key")]
    pub key: String,
}

/// `job-<id>` under the prefix (no prefix: at the top of the bucket).
pub fn job_prefix(prefix: Option<&str>, job_id: &str) -> String {
    match prefix.map(|p| p.trim_end_matches('/')) {
        Some(p) if !p.is_empty() => format!("{p}/job-{job_id}"),
        _ => format!("job-{job_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_put_the_http_status_before_the_error_code() {
        let mut out = Vec::new();
        ReportRow {
            bucket: "my-bucket",
            key: "photos/a.jpg",
            version_id: None,
            status: TaskStatus::Succeeded,
            http_status: 200,
            error_code: "",
            result_message: "Successful",
        }
        .write_to(&mut out);
        ReportRow {
            bucket: "my-bucket",
            key: "missing%20one",
            version_id: Some("v1"),
            status: TaskStatus::Failed,
            http_status: 404,
            error_code: "NoSuchKey",
            result_message: "The specified key does not exist, \"really\"",
        }
        .write_to(&mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "my-bucket,photos/a.jpg,,succeeded,200,,Successful\n\
             my-bucket,missing%20one,v1,failed,404,NoSuchKey,\"The specified key does not exist, \"\"really\"\"\"\n"
        );
        let rows = parse_rows(&out).unwrap();
        assert_eq!(rows[1].error_code, "NoSuchKey");
        assert_eq!(rows[1].result_message, "The specified key does not exist, \"really\"");
    }

    #[test]
    fn one_writer_writes_what_a_writer_per_row_writes() {
        let rows: Vec<ReportRow> = (0..300)
            .map(|i| ReportRow {
                bucket: "b",
                key: if i % 7 == 0 { "a,\"quoted\"\nkey" } else { "plain/key" },
                version_id: (i % 3 == 0).then_some("v"),
                status: if i % 5 == 0 { TaskStatus::Failed } else { TaskStatus::Succeeded },
                http_status: if i % 5 == 0 { 404 } else { 200 },
                error_code: if i % 5 == 0 { "NoSuchKey" } else { "" },
                result_message: "a message long enough that 300 rows outgrow the writer's own buffer",
            })
            .collect();
        let (mut each, mut one) = (Vec::new(), Vec::new());
        rows.iter().for_each(|r| r.write_to(&mut each));
        let mut w = RowWriter::new(&mut one);
        rows.iter().for_each(|r| w.write(r));
        w.finish();
        assert!(one.len() > 16 * 1024, "{} bytes", one.len());
        assert_eq!(String::from_utf8(one).unwrap(), String::from_utf8(each).unwrap());
    }

    #[test]
    fn manifest_json_uses_the_aws_names() {
        let m = ReportManifest {
            format: "Report_CSV_20180820".into(),
            report_creation_date: "2019-04-05T17:48:39.725Z".into(),
            results: vec![ReportResultFile {
                task_execution_status: TaskStatus::Succeeded,
                bucket: "rb".into(),
                md5_checksum: "83b1c4cbe93fc893f54053697e10fd6e".into(),
                key: "reports/job-x/results/abc.csv".into(),
            }],
            report_schema: REPORT_SCHEMA.into(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["ReportSchema"], "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage");
        assert_eq!(v["Results"][0]["TaskExecutionStatus"], "succeeded");
        assert_eq!(v["Results"][0]["MD5Checksum"], "83b1c4cbe93fc893f54053697e10fd6e");
        assert_eq!(v["ReportCreationDate"], "2019-04-05T17:48:39.725Z");
    }

    #[test]
    fn prefixes() {
        assert_eq!(job_prefix(Some("reports"), "j1"), "reports/job-j1");
        assert_eq!(job_prefix(Some("reports/"), "j1"), "reports/job-j1");
        assert_eq!(job_prefix(None, "j1"), "job-j1");
    }
}
