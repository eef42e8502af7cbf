//! `s3batch job report ID`: a job's completion report, read through the JSON API one results file at a time and
//! parsed as it streams in, so a report of millions of rows takes the memory of one CSV record.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use s3batch_core::report::TaskStatus;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::client::{Client, Output};

/// What the rows say, counted as they pass.
#[derive(Debug, Default)]
struct Summary {
    rows: u64,
    succeeded: u64,
    failed: u64,
    /// (error code, HTTP status) → (rows, an example key).
    failures: BTreeMap<(String, String), (u64, String)>,
}

pub async fn print(c: &Client, id: &str, failed_only: bool) -> Result<()> {
    let report = c.report(id).await?;
    let output = c.output();
    let mut summary = Summary::default();
    for (n, f) in report.manifest.results.iter().enumerate() {
        if failed_only && f.task_execution_status != TaskStatus::Failed {
            continue;
        }
        let resp = c.report_file(id, n).await?;
        let body = StreamReader::new(resp.bytes_stream().map_err(std::io::Error::other));
        let reader = SyncIoBridge::new(body);
        let file = format!("s3://{}/{}", f.bucket, f.key);
        summary = tokio::task::spawn_blocking(move || read_rows(reader, summary, failed_only, output))
            .await?
            .with_context(|| format!("reading {file}"))?;
    }
    if output == Output::Table {
        print_summary(&report.location, &summary);
    }
    Ok(())
}

/// Count the rows of one results file, printing them as `output` asks.
fn read_rows(reader: impl std::io::Read, mut s: Summary, failed_only: bool, output: Output) -> Result<Summary> {
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(reader);
    // Both write to stdout (its lock is reentrant); only the one `output` asks for is used.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut rows_csv = csv::WriterBuilder::new().flexible(true).from_writer(std::io::stdout().lock());
    let mut rec = csv::StringRecord::new();
    while csv.read_record(&mut rec)? {
        let field = |i: usize| rec.get(i).unwrap_or("");
        let failed = field(3) == "failed";
        s.rows += 1;
        if failed {
            s.failed += 1;
            let group = s.failures.entry((field(5).to_string(), field(4).to_string())).or_default();
            group.0 += 1;
            if group.1.is_empty() {
                group.1 = format!("s3://{}/{}", field(0), field(1));
            }
        } else {
            s.succeeded += 1;
        }
        if failed_only && !failed {
            continue;
        }
        match output {
            Output::Csv => rows_csv.write_record(&rec)?,
            Output::Json => {
                let row = serde_json::json!({
                    "Bucket": field(0), "Key": field(1), "VersionId": field(2), "TaskStatus": field(3),
                    "HttpStatus": field(4), "ErrorCode": field(5), "ResultMessage": field(6),
                    "More": rec.iter().skip(7).collect::<Vec<_>>(),
                });
                writeln!(out, "{row}")?;
            }
            Output::Table if failed_only => {
                writeln!(
                    out,
                    "{}\t{}\t{}\ts3://{}/{}\t{}",
                    field(3),
                    field(4),
                    field(5),
                    field(0),
                    field(1),
                    field(6)
                )?;
            }
            Output::Table => {}
        }
    }
    out.flush()?;
    rows_csv.flush()?;
    Ok(s)
}

fn print_summary(location: &str, s: &Summary) {
    println!("Report:     {location}");
    println!("Rows:       {}", s.rows);
    println!("Succeeded:  {}", s.succeeded);
    println!("Failed:     {}", s.failed);
    if s.failures.is_empty() {
        return;
    }
    let mut groups: Vec<_> = s.failures.iter().collect();
    groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    println!();
    println!("{:<8} {:<6} {:<28} EXAMPLE", "ROWS", "HTTP", "ERROR CODE");
    for ((code, http), (n, example)) in groups {
        println!("{n:<8} {http:<6} {code:<28} {example}");
    }
}
