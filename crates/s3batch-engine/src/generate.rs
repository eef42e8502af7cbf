//! `S3JobManifestGenerator`: list the source bucket, keep the objects every filter accepts, and record them as
//! chunks that carry their lines.
//!
//! The listing overlaps execution: once the first chunks are recorded the job leaves Preparing (for Ready, or
//! Suspended if it waits for confirmation) with its total still unknown, and its tasks run while the listing goes
//! on; the job cannot complete before the total is set. The lister keeps the job's duty lease throughout. If it
//! stops (a crash), the scheduler starts another, which resumes after the last key of the last recorded chunk
//! (ListObjectsV2 `StartAfter`), so no key is listed twice or skipped.
//!
//! Filters: CreatedAfter/CreatedBefore (on LastModified), KeyNameConstraint (each member given must match one of
//! its values), ObjectSizeGreaterThan/LessThanBytes, MatchAnyStorageClass from the listing; MatchAnyObjectEncryption,
//! ObjectReplicationStatuses and EligibleForReplication need a HEAD of each listed object, made only when one of
//! them is present.

use std::sync::Arc;

use futures::StreamExt;
use s3batch_core::manifest::{CsvLayout, csv_reader, encode_key};
use s3batch_core::spec::{ManifestGeneratorFilter, ObjectEncryptionFilter, S3JobManifestGenerator};
use s3batch_core::{JobStatus, Millis, arn, time};
use s3batch_storage::{ListedObject, ObjectInfo, ObjectRef, ObjectStore, StorageError};
use s3batch_store::{Job, NewChunk, StoreError};

use crate::inventory::PayloadChunker;
use crate::problem::{ManifestProblem, problem};
use crate::{Engine, now, retry};

/// Objects listed per request.
const PAGE: usize = 1000;
/// HEADs in flight when a filter needs them.
const HEADS_IN_FLIGHT: usize = 32;

/// How the listing ended.
pub enum Listed {
    /// Every object listed; `total` tasks recorded. `opened`: the job already left Preparing.
    Done { total: i64, opened: bool },
    /// The job stopped wanting tasks (cancelled, failed) or the duty lease was lost: stop quietly.
    Abandoned,
    /// The listing cannot be done: the job fails for this.
    Refused(ManifestProblem),
}

/// The filter, checked and ready to apply.
struct Filter {
    created_after: Option<Millis>,
    created_before: Option<Millis>,
    prefixes: Vec<String>,
    suffixes: Option<Vec<String>>,
    substrings: Option<Vec<String>>,
    size_gt: Option<u64>,
    size_lt: Option<u64>,
    classes: Option<Vec<String>>,
    encryption: Option<Vec<ObjectEncryptionFilter>>,
    replication_statuses: Option<Vec<String>>,
    eligible_for_replication: Option<bool>,
}

impl Filter {
    fn new(f: Option<&ManifestGeneratorFilter>) -> Result<Filter, ManifestProblem> {
        let empty = ManifestGeneratorFilter::default();
        let f = f.unwrap_or(&empty);
        let date = |name: &str, v: &Option<String>| -> Result<Option<Millis>, ManifestProblem> {
            v.as_deref()
                .map(|s| {
                    time::parse_iso(s).ok_or_else(|| {
                        problem("InvalidManifestGenerator", format!("Filter.{name} '{s}' is not a date"))
                    })
                })
                .transpose()
        };
        let k = f.key_name_constraint.clone().unwrap_or_default();
        Ok(Filter {
            created_after: date("CreatedAfter", &f.created_after)?,
            created_before: date("CreatedBefore", &f.created_before)?,
            prefixes: listing_prefixes(k.match_any_prefix.as_deref()),
            suffixes: k.match_any_suffix,
            substrings: k.match_any_substring,
            size_gt: f.object_size_greater_than_bytes.map(|n| n.max(0) as u64),
            size_lt: f.object_size_less_than_bytes.map(|n| n.max(0) as u64),
            classes: f.match_any_storage_class.clone(),
            encryption: f.match_any_object_encryption.clone(),
            replication_statuses: f.object_replication_statuses.clone(),
            eligible_for_replication: f.eligible_for_replication,
        })
    }

    /// What the listing alone can tell.
    fn listed_ok(&self, o: &ListedObject) -> bool {
        let any =
            |list: &Option<Vec<String>>, f: &dyn Fn(&str) -> bool| list.as_ref().is_none_or(|l| l.iter().any(|v| f(v)));
        self.created_after.is_none_or(|t| o.last_modified > t)
            && self.created_before.is_none_or(|t| o.last_modified < t)
            && self.size_gt.is_none_or(|n| o.size > n)
            && self.size_lt.is_none_or(|n| o.size < n)
            && any(&self.suffixes, &|s| o.key.ends_with(s))
            && any(&self.substrings, &|s| o.key.contains(s))
            && any(&self.classes, &|c| c == o.storage_class.as_deref().unwrap_or("STANDARD"))
    }

    fn needs_head(&self) -> bool {
        self.encryption.is_some() || self.replication_statuses.is_some()
    }

    /// What only a HEAD can tell. `head` is the HEAD's answer (an SSE-C object answers 400 without its key).
    fn head_ok(&self, head: &Result<ObjectInfo, StorageError>) -> bool {
        if let Some(wanted) = &self.encryption {
            let ok = wanted.iter().any(|w| match (w, head) {
                (ObjectEncryptionFilter::SseC(_), Err(e)) => e.is_bad_request(),
                (_, Err(_)) => false,
                (ObjectEncryptionFilter::SseC(_), Ok(_)) => false,
                (ObjectEncryptionFilter::NotSse(_), Ok(i)) => i.server_side_encryption.is_none(),
                (ObjectEncryptionFilter::SseS3(_), Ok(i)) => i.server_side_encryption.as_deref() == Some("AES256"),
                (ObjectEncryptionFilter::SseKms(k), Ok(i)) | (ObjectEncryptionFilter::DsseKms(k), Ok(i)) => {
                    let alg = if matches!(w, ObjectEncryptionFilter::SseKms(_)) { "aws:kms" } else { "aws:kms:dsse" };
                    i.server_side_encryption.as_deref() == Some(alg)
                        && k.kms_key_arn.as_ref().is_none_or(|a| i.sse_kms_key_id.as_ref() == Some(a))
                        && k.bucket_key_enabled.is_none_or(|b| i.bucket_key_enabled.unwrap_or(false) == b)
                }
            });
            if !ok {
                return false;
            }
        }
        if let Some(statuses) = &self.replication_statuses {
            let Ok(i) = head else { return false };
            let status = i.replication_status.as_deref().unwrap_or("NONE");
            if !statuses.iter().any(|s| s.eq_ignore_ascii_case(status)) {
                return false;
            }
        }
        true
    }
}

/// The prefixes to list: `MatchAnyPrefix` without the ones another covers, sorted, so the listings are disjoint
/// and together in key order; one empty prefix (the whole bucket) when there is none.
fn listing_prefixes(given: Option<&[String]>) -> Vec<String> {
    let mut p: Vec<String> = given.map(<[String]>::to_vec).unwrap_or_default();
    if p.is_empty() || p.iter().any(String::is_empty) {
        return vec![String::new()];
    }
    p.sort();
    p.dedup();
    let mut out: Vec<String> = Vec::new();
    for x in p {
        if !out.last().is_some_and(|l| x.starts_with(l.as_str())) {
            out.push(x);
        }
    }
    out
}

/// Where a stopped listing resumes: the key after which to list, the next chunk's seq and first line.
struct Resume {
    after: Option<String>,
    seq: i64,
    next_line: i64,
}

async fn resume_point(engine: &Engine, job: &Job) -> Result<Resume, StoreError> {
    let Some(last) = engine.store.last_chunk(&job.id).await? else {
        return Ok(Resume { after: None, seq: 0, next_line: 1 });
    };
    let payload = last.payload.unwrap_or_default();
    let mut rdr = csv_reader(&payload[..]);
    let layout = CsvLayout::payload();
    let mut after = None;
    for (i, rec) in rdr.byte_records().enumerate() {
        let rec = rec.map_err(|e| StoreError::Corrupt(format!("chunk {} of job {}: {e}", last.id.seq, job.id)))?;
        let task = layout
            .parse(&rec, i as u64 + 1)
            .map_err(|e| StoreError::Corrupt(format!("chunk {} of job {}: {e}", last.id.seq, job.id)))?;
        after = Some(task.key);
    }
    Ok(Resume { after, seq: last.id.seq + 1, next_line: last.first_line + last.line_count })
}

/// The bucket being listed and what is kept of it.
struct Source {
    bucket: String,
    objects: Arc<dyn ObjectStore>,
    filter: Filter,
    /// The bucket matches the filter's `EligibleForReplication` (or the filter has none).
    eligible: bool,
}

impl Source {
    /// One page of `prefix` after the key `after`: the objects the filter keeps (HEADing them if it must), and the
    /// key the next page starts after (None: the prefix is done).
    async fn page(
        &self,
        engine: &Engine,
        prefix: &str,
        after: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), ManifestProblem> {
        let (objects, bucket, filter) = (&self.objects, self.bucket.as_str(), &self.filter);
        let page = retry::storage_call(
            &engine.config,
            || false,
            || objects.list_objects_after(bucket, prefix, after.clone(), PAGE),
        )
        .await
        .map_err(|e| listing_failed(bucket, &e))?;
        let candidates: Vec<ListedObject> =
            page.objects.iter().filter(|o| self.eligible && filter.listed_ok(o)).cloned().collect();
        let kept =
            if filter.needs_head() { headed(engine, objects, bucket, candidates, filter).await } else { candidates };
        let next = match (page.next_token, page.objects.last()) {
            (Some(_), Some(last)) => Some(last.key.clone()),
            _ => None,
        };
        Ok((kept, next))
    }
}

/// List `g.source_bucket`, record chunks, open the job once the first ones are in, and set the total at the end.
pub async fn list(engine: &Arc<Engine>, job: &Job, g: &S3JobManifestGenerator) -> Result<Listed, StoreError> {
    let Some(bucket) = arn::parse_bucket_arn(&g.source_bucket) else {
        return Ok(Listed::Refused(problem(
            "InvalidManifestGenerator",
            format!("SourceBucket '{}' is not a bucket ARN", g.source_bucket),
        )));
    };
    let filter = match Filter::new(g.filter.as_ref()) {
        Ok(f) => f,
        Err(p) => return Ok(Listed::Refused(p)),
    };
    let eligible =
        filter.eligible_for_replication.is_none_or(|want| engine.config.replication.contains_key(&bucket) == want);
    let objects = match engine.router_for(job).store_for(&bucket) {
        Ok(s) => s,
        Err(e) => return Ok(Listed::Refused(listing_failed(&bucket, &e))),
    };
    let source = Source { bucket: bucket.clone(), objects, filter, eligible };
    let resume = resume_point(engine, job).await?;
    let mut lister = Lister {
        engine,
        job,
        bucket,
        chunks: PayloadChunker::new(engine.config.chunk_size as i64, resume.seq, resume.next_line),
        batch: Vec::new(),
        opened: job.status != JobStatus::Preparing,
        last_renew: now(),
    };
    let mut after = resume.after;
    for prefix in &source.filter.prefixes {
        loop {
            let (kept, next) = match source.page(engine, prefix, after.clone()).await {
                Ok(page) => page,
                Err(p) => return Ok(Listed::Refused(p)),
            };
            for o in &kept {
                lister.push(&o.key);
            }
            if !lister.flush_full(false).await? {
                return Ok(Listed::Abandoned);
            }
            match next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
    }
    if !lister.flush_full(true).await? {
        return Ok(Listed::Abandoned);
    }
    Ok(Listed::Done { total: lister.chunks.total(), opened: lister.opened })
}

fn listing_failed(bucket: &str, e: &StorageError) -> ManifestProblem {
    problem(
        "ManifestGeneratorListingFailed",
        format!("listing the source bucket {bucket} failed: {} ({}): {}", e.code, e.http_status, e.message),
    )
}

/// HEAD the candidates (bounded concurrency, in order) and keep the ones the HEAD filters accept. A HEAD that
/// fails for another reason than SSE-C drops the object (it cannot be shown to match).
async fn headed(
    engine: &Engine,
    objects: &Arc<dyn ObjectStore>,
    bucket: &str,
    candidates: Vec<ListedObject>,
    filter: &Filter,
) -> Vec<ListedObject> {
    futures::stream::iter(candidates)
        .map(|o| async move {
            let obj = ObjectRef::new(bucket, &o.key);
            let head = retry::storage_call(&engine.config, || false, || objects.head_object(&obj)).await;
            filter.head_ok(&head).then_some(o)
        })
        .buffered(HEADS_IN_FLIGHT)
        .filter_map(|o| async move { o })
        .collect()
        .await
}

struct Lister<'a> {
    engine: &'a Arc<Engine>,
    job: &'a Job,
    bucket: String,
    chunks: PayloadChunker,
    batch: Vec<NewChunk>,
    opened: bool,
    last_renew: Millis,
}

impl Lister<'_> {
    fn push(&mut self, key: &str) {
        let done = self.chunks.push(&self.bucket, &encode_key(key), None);
        self.batch.extend(done);
    }

    /// Record the full chunks (and, at the `end`, the partial last one); open the job once chunks are in and the
    /// listing goes on. False: stop (lease lost, job cancelled or failed).
    async fn flush_full(&mut self, end: bool) -> Result<bool, StoreError> {
        if end {
            let last = self.chunks.finish();
            self.batch.extend(last);
        }
        let store = &self.engine.store;
        if !self.batch.is_empty() {
            if !store.insert_chunks(&self.job.id, &self.engine.worker_id, &self.batch).await?.is_applied() {
                return Ok(false);
            }
            self.batch.clear();
            if !self.opened && !end {
                let t = crate::status_write::prepared(self.job);
                if !store.open_preparing(&self.job.id, &self.engine.worker_id, t, now()).await?.is_applied() {
                    return Ok(false);
                }
                tracing::info!(job = %self.job.id, status = %t.to(), "first chunks listed; the job runs while the listing goes on");
                self.opened = true;
                self.engine.wake.notify_waiters();
            }
        }
        if self
            .engine
            .job_status(&self.job.id)
            .is_some_and(|s| s.is_terminal() || matches!(s, JobStatus::Cancelling | JobStatus::Failing))
        {
            return Ok(false);
        }
        if now() - self.last_renew > self.engine.config.lease_ms / 3 {
            self.last_renew = now();
            if !store
                .claim_duty(&self.job.id, &self.engine.worker_id, self.last_renew, self.engine.config.lease_ms)
                .await?
                .is_applied()
            {
                return Ok(false);
            }
            let live = store.get_job(None, &self.job.id).await?;
            if live.is_none_or(|j| {
                j.status.is_terminal() || matches!(j.status, JobStatus::Cancelling | JobStatus::Failing)
            }) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_disjoint_and_sorted() {
        let p = |v: &[&str]| listing_prefixes(Some(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(p(&["b/", "a", "ab", "a/x"]), vec!["a", "b/"]);
        assert_eq!(p(&["x", ""]), vec![""]);
        assert_eq!(listing_prefixes(None), vec![""]);
        assert_eq!(p(&["logs/2024", "logs/2023", "logs/2024/01"]), vec!["logs/2023", "logs/2024"]);
    }
}
