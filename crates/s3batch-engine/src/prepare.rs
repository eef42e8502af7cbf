//! Preparing: read the manifest once, as a stream, check its ETag, validate every line, and record a chunk (a byte
//! range and its first line number) every `chunk_size` lines. Memory stays flat whatever the manifest's size.

use std::io;
use std::sync::Arc;

use futures::TryStreamExt;
use s3batch_core::manifest::{CsvLayout, ManifestFormat, RecordTooLong, bounded_csv_reader, csv_reader};
use s3batch_core::spec::{ManifestGenerator, S3JobManifestGenerator};
use s3batch_core::{Event, JobStatus, arn};
use s3batch_storage::ObjectRef;
use s3batch_store::{Job, NewChunk, StatusChange, StoreError};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

pub use crate::problem::ManifestProblem;
use crate::problem::problem;
use crate::{Engine, generate, inventory, manifest_output, now, resume, status_write};

/// Largest inventory `manifest.json` read (it lists data files, not objects).
const MAX_INVENTORY_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// What preparing ended with.
#[derive(Debug)]
pub enum Prepared {
    /// Chunks recorded; the job moved on to Ready or Suspended.
    Done { total: i64 },
    /// The manifest cannot be used; the job went to Failing.
    Failed(ManifestProblem),
    /// Someone else changed the job (cancelled it) or took the duty lease: stop quietly.
    Abandoned,
}

/// Strip the quotes an ETag may come with.
pub fn unquote_etag(e: &str) -> &str {
    e.trim().trim_matches('"')
}

/// Prepare `job`, which is in Preparing (or, for a ManifestGenerator job still listing, any live status) and whose
/// duty lease this process holds.
pub async fn prepare(engine: &Arc<Engine>, job: &Job) -> Result<Prepared, StoreError> {
    if let Some(p) = check_destinations(engine, job) {
        return fail(engine, job, p).await;
    }
    if let Some(original) = &job.spec.rerun_of {
        return prepare_rerun(engine, job, original).await;
    }
    if let Some(ManifestGenerator::S3JobManifestGenerator(g)) = &job.spec.manifest_generator {
        return prepare_generated(engine, job, g).await;
    }
    let store = &engine.store;
    store.clear_chunks(&job.id).await?;
    match read_manifest(engine, job).await? {
        Read::Done { total, etag } => {
            let t = status_write::prepared(job);
            if store.finish_preparing(&job.id, &engine.worker_id, total, &etag, t, now()).await?.is_applied() {
                tracing::info!(job = %job.id, total, status = %t.to(), "prepared");
                Ok(Prepared::Done { total })
            } else {
                Ok(Prepared::Abandoned)
            }
        }
        Read::Refused(p) => {
            tracing::warn!(job = %job.id, code = p.code, reason = %p.reason, "manifest refused");
            let change = StatusChange::default().failure(p.code, p.reason.clone());
            let _ = status_write::apply(&**store, &job.id, JobStatus::Preparing, Event::Fail, &change).await?;
            store.clear_chunks(&job.id).await?;
            Ok(Prepared::Failed(p))
        }
        Read::Abandoned => Ok(Prepared::Abandoned),
    }
}

/// A ManifestGenerator job: list (or go on listing), then set the total.
async fn prepare_generated(
    engine: &Arc<Engine>,
    job: &Job,
    g: &S3JobManifestGenerator,
) -> Result<Prepared, StoreError> {
    let store = &engine.store;
    let (total, opened) = match generate::list(engine, job, g).await? {
        generate::Listed::Done { total, opened } => (total, opened),
        generate::Listed::Abandoned => return Ok(Prepared::Abandoned),
        generate::Listed::Refused(p) => return fail(engine, job, p).await,
    };
    if total == 0 {
        let p =
            problem("EmptyGeneratedManifest", "no object in the source bucket matches the ManifestGenerator filter");
        return fail(engine, job, p).await;
    }
    if g.enable_manifest_output {
        match manifest_output::write(engine, job, g).await? {
            manifest_output::Outcome::Written => {}
            manifest_output::Outcome::Refused(p) => return fail(engine, job, p).await,
            manifest_output::Outcome::TryLater => return Ok(Prepared::Abandoned),
        }
    }
    let done = if opened {
        store.finish_listing(&job.id, &engine.worker_id, total, now()).await?
    } else {
        store.finish_preparing(&job.id, &engine.worker_id, total, "", status_write::prepared(job), now()).await?
    };
    if done.is_applied() {
        tracing::info!(job = %job.id, total, "manifest generated");
        engine.wake.notify_waiters();
        Ok(Prepared::Done { total })
    } else {
        Ok(Prepared::Abandoned)
    }
}

/// A re-run: its tasks are the failed tasks of `original` (same account, finished), read from that job's chunk
/// results in manifest order.
async fn prepare_rerun(engine: &Arc<Engine>, job: &Job, original: &str) -> Result<Prepared, StoreError> {
    let store = &engine.store;
    store.clear_chunks(&job.id).await?;
    let orig = match store.get_job(Some(&job.account_id), original).await? {
        Some(o) if o.status.is_terminal() => o,
        Some(o) => {
            let p = problem("RerunSourceNotFinished", format!("job {original} is {}, not finished", o.status));
            return fail(engine, job, p).await;
        }
        None => {
            return fail(engine, job, problem("RerunSourceNotFound", format!("job {original} does not exist"))).await;
        }
    };
    let mut chunker = inventory::PayloadChunker::new(engine.config.chunk_size as i64, 0, 1);
    let (mut after, mut batch) = (-1, Vec::new());
    loop {
        let rows = store.chunk_results(&orig.id, after, 100).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in &rows {
            let mut rdr = csv_reader(&r.failed_rows[..]);
            for rec in rdr.byte_records() {
                let rec = match rec {
                    Ok(rec) if rec.len() >= 3 => rec,
                    _ => {
                        let p = problem(
                            "InternalError",
                            format!("job {original}'s results of chunk {} are unreadable", r.seq),
                        );
                        return fail(engine, job, p).await;
                    }
                };
                let text = |i: usize| String::from_utf8_lossy(&rec[i]).into_owned();
                let version = text(2);
                batch.extend(chunker.push(&text(0), &text(1), Some(version.as_str()).filter(|v| !v.is_empty())));
            }
        }
        if batch.len() >= 100
            && !store.insert_chunks(&job.id, &engine.worker_id, &std::mem::take(&mut batch)).await?.is_applied()
        {
            return Ok(Prepared::Abandoned);
        }
    }
    batch.extend(chunker.finish());
    if !store.insert_chunks(&job.id, &engine.worker_id, &batch).await?.is_applied() {
        return Ok(Prepared::Abandoned);
    }
    let total = chunker.total();
    if total == 0 {
        let p = problem("InvalidManifestContent", format!("job {original} has no failed task to run again"));
        return fail(engine, job, p).await;
    }
    let t = status_write::prepared(job);
    if store.finish_preparing(&job.id, &engine.worker_id, total, "", t, now()).await?.is_applied() {
        tracing::info!(job = %job.id, original, total, "re-run prepared");
        Ok(Prepared::Done { total })
    } else {
        Ok(Prepared::Abandoned)
    }
}

/// Before anything runs: the report bucket and the generated manifest's bucket must be writable by the job's
/// role, and every `ExpectedBucketOwner` the job gives must be the owner a `[[storage]]` entry declares for that
/// bucket. A job that fails here has changed nothing.
fn check_destinations(engine: &Engine, job: &Job) -> Option<ManifestProblem> {
    let (account, role) = (job.account_id.as_str(), job.spec.named_role());
    let denied = |what: &str, bucket: &str, e: s3batch_storage::StorageError| {
        problem("AccessDenied", format!("the {what} bucket {bucket} is not writable by the job's role: {}", e.message))
    };
    let owner = |what: &str, bucket: &str, expected: Option<&String>| {
        let expected = expected?;
        match engine.router.owner_of(bucket) {
            Some(actual) if actual != expected => Some(problem(
                "AccessDenied",
                format!("Access Denied: {what} {expected} is not the owner of bucket {bucket}"),
            )),
            _ => None,
        }
    };
    let r = &job.spec.report;
    if let Some(bucket) = r.bucket.as_deref().and_then(arn::parse_bucket_arn) {
        if let Some(p) = owner("Report.ExpectedBucketOwner", &bucket, r.expected_bucket_owner.as_ref()) {
            return Some(p);
        }
        if r.enabled
            && let Err(e) = engine.roles.check(account, role, &bucket, crate::roles::Access::Write)
        {
            return Some(denied("report", &bucket, e));
        }
    }
    if let Some(ManifestGenerator::S3JobManifestGenerator(g)) = &job.spec.manifest_generator {
        if let Some(bucket) = arn::parse_bucket_arn(&g.source_bucket)
            && let Some(p) = owner("ManifestGenerator.ExpectedBucketOwner", &bucket, g.expected_bucket_owner.as_ref())
        {
            return Some(p);
        }
        if let Some(out) = g.manifest_output_location.as_ref().filter(|_| g.enable_manifest_output) {
            let bucket = arn::parse_bucket_arn(&out.bucket).unwrap_or_else(|| out.bucket.clone());
            let expected = out.expected_manifest_bucket_owner.as_ref();
            if let Some(p) = owner("ManifestOutputLocation.ExpectedManifestBucketOwner", &bucket, expected) {
                return Some(p);
            }
            if let Err(e) = engine.roles.check(account, role, &bucket, crate::roles::Access::Write) {
                return Some(denied("generated manifest", &bucket, e));
            }
        }
    }
    None
}

/// Fail the job for `p` from whatever live status it is in (a generator job may have left Preparing already).
async fn fail(engine: &Arc<Engine>, job: &Job, p: ManifestProblem) -> Result<Prepared, StoreError> {
    tracing::warn!(job = %job.id, code = p.code, reason = %p.reason, "manifest refused");
    let Some(current) = engine.store.get_job(None, &job.id).await? else { return Ok(Prepared::Abandoned) };
    let change = StatusChange::default().failure(p.code, p.reason.clone());
    let status_write::Written::Applied(t) =
        status_write::apply(&*engine.store, &job.id, current.status, Event::Fail, &change).await?
    else {
        return Ok(Prepared::Abandoned);
    };
    if t.from() == JobStatus::Preparing {
        engine.store.clear_chunks(&job.id).await?;
    }
    engine.wake.notify_waiters();
    Ok(Prepared::Failed(p))
}

/// What reading a manifest ended with.
enum Read {
    /// Every line is recorded in chunks.
    Done { total: i64, etag: String },
    /// The manifest cannot be used.
    Refused(ManifestProblem),
    /// The duty lease was lost or the job left Preparing (cancelled): stop quietly.
    Abandoned,
}

/// The manifest's parser, running on a blocking thread: its chunks come out of `chunks`, its line count at the end.
struct Parser {
    lines: tokio::task::JoinHandle<Result<i64, ManifestProblem>>,
    chunks: mpsc::Receiver<Vec<NewChunk>>,
    etag: String,
}

async fn read_manifest(engine: &Arc<Engine>, job: &Job) -> Result<Read, StoreError> {
    let mut parser = match start_parser(engine, job).await {
        Ok(p) => p,
        Err(p) => return Ok(Read::Refused(p)),
    };
    if !record_chunks(engine, job, &mut parser.chunks).await? {
        return Ok(Read::Abandoned);
    }
    Ok(match parser.lines.await {
        Ok(Ok(0)) => Read::Refused(problem("InvalidManifestContent", "the manifest is empty: it names no object")),
        Ok(Ok(total)) => Read::Done { total, etag: parser.etag },
        Ok(Err(p)) => Read::Refused(p),
        Err(e) => Read::Refused(problem("InternalError", format!("the manifest parser stopped: {e}"))),
    })
}

/// Open the job's manifest, check its ETag, and start its parser (CSV manifest, or inventory manifest.json).
async fn start_parser(engine: &Arc<Engine>, job: &Job) -> Result<Parser, ManifestProblem> {
    let Some(manifest) = &job.spec.manifest else {
        return Err(problem(
            "ManifestGeneratorNotSupported",
            "s3batch does not run S3JobManifestGenerator yet; give the job a Manifest".to_string(),
        ));
    };
    let loc = &manifest.location;
    let Some((bucket, key)) = arn::parse_object_arn(&loc.object_arn) else {
        return Err(problem("InvalidManifest", format!("'{}' is not an object ARN", loc.object_arn)));
    };
    let obj = ObjectRef::new(&bucket, &key).with_version(loc.object_version_id.clone());
    let unreadable = |e: s3batch_storage::StorageError| {
        problem(
            "ManifestNotReadable",
            format!("reading the manifest s3://{bucket}/{key} failed: {} ({}): {}", e.code, e.http_status, e.message),
        )
    };
    let router = engine.router_for(job);
    let objects = router.store_for(&bucket).map_err(unreadable)?;
    // Throttling, 5xx and resets are retried (bounded, with backoff) before the job is failed for them; a body cut
    // in the middle is read on from where it broke.
    let got = resume::get_whole(&engine.config, objects, &obj).await.map_err(unreadable)?;
    let etag = got.info.etag.clone();
    if let Some(expected) = &loc.etag
        && unquote_etag(expected) != unquote_etag(&etag)
    {
        return Err(problem(
            "ManifestETagMismatch",
            format!("the manifest's ETag is \"{}\", the job names \"{}\"", unquote_etag(&etag), unquote_etag(expected)),
        ));
    }
    let chunk_size = engine.config.chunk_size as i64;
    let (tx, chunks) = mpsc::channel::<Vec<NewChunk>>(4);
    let lines = match manifest.spec.format {
        ManifestFormat::S3BatchOperationsCsv20180820 => {
            let layout =
                CsvLayout::new(&manifest.spec.fields).map_err(|e| problem("InvalidManifestContent", e.to_string()))?;
            let body = got.body.map_err(|e| io::Error::other(e.to_string()));
            let reader = SyncIoBridge::new(StreamReader::new(body));
            let name = format!("the manifest s3://{bucket}/{key}");
            tokio::task::spawn_blocking(move || parse_into_chunks(&name, reader, layout, chunk_size, &tx))
        }
        ManifestFormat::S3InventoryReportCsv20161130 => {
            if got.info.size > MAX_INVENTORY_MANIFEST_BYTES {
                return Err(problem(
                    "InvalidManifestContent",
                    format!(
                        "the inventory manifest.json is {} bytes; at most {MAX_INVENTORY_MANIFEST_BYTES} are read",
                        got.info.size
                    ),
                ));
            }
            let json = got.bytes().await.map_err(unreadable)?.to_vec();
            let (engine, rt) = (engine.clone(), tokio::runtime::Handle::current());
            tokio::task::spawn_blocking(move || inventory::read(engine, router, rt, json, (bucket, key), tx))
        }
    };
    Ok(Parser { lines, chunks, etag })
}

/// Record chunks as the parser finds them, renewing the duty lease and watching for a cancel. False: stop (the
/// lease was lost, or the job left Preparing).
async fn record_chunks(
    engine: &Engine,
    job: &Job,
    chunks: &mut mpsc::Receiver<Vec<NewChunk>>,
) -> Result<bool, StoreError> {
    let mut last_renew = now();
    while let Some(batch) = chunks.recv().await {
        if !engine.store.insert_chunks(&job.id, &engine.worker_id, &batch).await?.is_applied() {
            return Ok(false);
        }
        if now() - last_renew > engine.config.lease_ms / 3 {
            last_renew = now();
            let still_ours = engine
                .store
                .claim_duty(&job.id, &engine.worker_id, last_renew, engine.config.lease_ms)
                .await?
                .is_applied();
            let still_preparing =
                engine.store.get_job(None, &job.id).await?.is_some_and(|j| j.status == JobStatus::Preparing);
            if !still_ours || !still_preparing {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The blocking half: CSV records → validated lines → chunks, sent in batches. Returns the number of lines.
/// `name` (`s3://bucket/key`) names the manifest in a reason that concerns the file rather than a line's content.
pub(crate) fn parse_into_chunks<R: io::Read>(
    name: &str,
    reader: R,
    layout: CsvLayout,
    chunk_size: i64,
    tx: &mpsc::Sender<Vec<NewChunk>>,
) -> Result<i64, ManifestProblem> {
    let mut rdr = bounded_csv_reader(reader);
    let mut rec = csv::ByteRecord::new();
    let mut chunks = Chunker::new(chunk_size, tx);
    let mut lines = 0i64;
    loop {
        let (start, start_line) = (rdr.position().byte(), rdr.position().line());
        rdr.get_mut().record_starts_at(start);
        let too_long = |e: RecordTooLong| problem("InvalidManifestContent", format!("{name} line {start_line}: {e}"));
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(RecordTooLong::find(&e).map_or_else(|| unreadable(&e), too_long)),
        }
        rdr.get_ref().check(start, rdr.position().byte()).map_err(too_long)?;
        lines += 1;
        let physical = rec.position().map(|p| p.line()).unwrap_or(lines as u64);
        layout.parse(&rec, physical).map_err(|e| problem("InvalidManifestContent", e.to_string()))?;
        chunks.line(start, lines, rdr.position().byte())?;
    }
    chunks.finish(rdr.position().byte())?;
    Ok(lines)
}

/// A manifest the CSV reader could not read: the line, and whether it was the reading or the CSV that failed.
fn unreadable(e: &csv::Error) -> ManifestProblem {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => format!("reading the manifest failed near line {line}: {io}"),
        _ => format!("line {line}: {e}"),
    };
    problem("InvalidManifestContent", reason)
}

/// Lines → chunks of `chunk_size` lines (the last may be shorter), sent [`Chunker::BATCH`] chunks at a time.
struct Chunker<'a> {
    chunk_size: i64,
    tx: &'a mpsc::Sender<Vec<NewChunk>>,
    batch: Vec<NewChunk>,
    /// The next chunk's number.
    seq: i64,
    /// The open chunk: its lines so far, its first byte and its first line.
    in_chunk: i64,
    chunk_start: u64,
    chunk_first: i64,
}

impl<'a> Chunker<'a> {
    const BATCH: usize = 200;

    fn new(chunk_size: i64, tx: &'a mpsc::Sender<Vec<NewChunk>>) -> Self {
        Chunker {
            chunk_size,
            tx,
            batch: Vec::with_capacity(Self::BATCH),
            seq: 0,
            in_chunk: 0,
            chunk_start: 0,
            chunk_first: 1,
        }
    }

    /// Line number `line`, from byte `start` to byte `end` of the manifest.
    fn line(&mut self, start: u64, line: i64, end: u64) -> Result<(), ManifestProblem> {
        if self.in_chunk == 0 {
            self.chunk_start = start;
            self.chunk_first = line;
        }
        self.in_chunk += 1;
        if self.in_chunk == self.chunk_size {
            self.close(end);
            if self.batch.len() == Self::BATCH {
                let full = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
                self.send(full)?;
            }
        }
        Ok(())
    }

    /// The open chunk ends at byte `end`.
    fn close(&mut self, end: u64) {
        self.batch.push(NewChunk {
            seq: self.seq,
            start_offset: self.chunk_start as i64,
            end_offset: end as i64,
            first_line: self.chunk_first,
            line_count: self.in_chunk,
            payload: None,
        });
        self.seq += 1;
        self.in_chunk = 0;
    }

    /// The manifest ended at byte `end`: close the last chunk and send what is left.
    fn finish(mut self, end: u64) -> Result<(), ManifestProblem> {
        if self.in_chunk > 0 {
            self.close(end);
        }
        if !self.batch.is_empty() {
            let rest = std::mem::take(&mut self.batch);
            self.send(rest)?;
        }
        Ok(())
    }

    fn send(&self, batch: Vec<NewChunk>) -> Result<(), ManifestProblem> {
        self.tx.blocking_send(batch).map_err(|_| problem("Abandoned", "preparing stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3batch_core::manifest::FieldName;

    fn chunks_of(text: &str, size: i64) -> Result<(i64, Vec<NewChunk>), ManifestProblem> {
        let layout = CsvLayout::new(&[FieldName::Bucket, FieldName::Key]).unwrap();
        let (tx, mut rx) = mpsc::channel(1000);
        let n = parse_into_chunks("the manifest", text.as_bytes(), layout, size, &tx)?;
        drop(tx);
        let mut all = Vec::new();
        while let Ok(b) = rx.try_recv() {
            all.extend(b);
        }
        Ok((n, all))
    }

    #[test]
    fn chunks_cover_every_byte_once() {
        let text = "bkt,a\nbkt,\"b,with comma\"\nbkt,c\nbkt,d\nbkt,e";
        let (n, chunks) = chunks_of(text, 2).unwrap();
        assert_eq!(n, 5);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].start_offset, 0);
        for w in chunks.windows(2) {
            assert_eq!(w[0].end_offset, w[1].start_offset);
        }
        assert_eq!(chunks.last().unwrap().end_offset as usize, text.len());
        assert_eq!(chunks.iter().map(|c| c.line_count).sum::<i64>(), 5);
        assert_eq!(chunks[2].first_line, 5);
        let second = &text[chunks[1].start_offset as usize..chunks[1].end_offset as usize];
        assert_eq!(second, "bkt,c\nbkt,d\n");
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let e = chunks_of("bkt,a\nbkt,b\nbkt,bad%zz\n", 10).unwrap_err();
        assert_eq!(e.code, "InvalidManifestContent");
        assert!(e.reason.starts_with("line 3:"), "{}", e.reason);
        let e = chunks_of("bkt,a\nbkt,b,c\n", 10).unwrap_err();
        assert!(e.reason.contains("line 2") && e.reason.contains("3 columns"), "{}", e.reason);
    }

    /// `head`, then `left` bytes of `a` (a line whose quote never closes); counts the bytes read.
    struct Endless {
        head: &'static [u8],
        left: u64,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = if !self.head.is_empty() {
                let n = self.head.len().min(buf.len());
                buf[..n].copy_from_slice(&self.head[..n]);
                self.head = &self.head[n..];
                n
            } else {
                let n = buf.len().min(self.left as usize);
                buf[..n].fill(b'a');
                self.left -= n as u64;
                n
            };
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    #[test]
    fn an_unclosed_quote_fails_at_the_record_cap_without_reading_on() {
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Endless { head: b"bkt,a\nbkt,\"", left: 100 << 20, read: read.clone() };
        let layout = CsvLayout::new(&[FieldName::Bucket, FieldName::Key]).unwrap();
        let (tx, _rx) = mpsc::channel(1000);
        let e = parse_into_chunks("the manifest s3://m/big.csv", input, layout, 10, &tx).unwrap_err();
        assert_eq!(e.code, "InvalidManifestContent");
        assert!(
            e.reason.starts_with("the manifest s3://m/big.csv line 2: the record is longer than 8192 bytes"),
            "{}",
            e.reason
        );
        assert!(read.get() < 256 * 1024, "read {} bytes of a 100 MiB line", read.get());
        // Just over the cap, inside what one read brings in: caught once read.
        let long = format!("bkt,a\nbkt,\"{}\"\n", "k".repeat(9000));
        let (tx, _rx) = mpsc::channel(1000);
        let layout = CsvLayout::new(&[FieldName::Bucket, FieldName::Key]).unwrap();
        let e = parse_into_chunks("m", long.as_bytes(), layout, 10, &tx).unwrap_err();
        assert!(e.reason.contains("line 2: the record is longer than 8192"), "{}", e.reason);
    }

    #[test]
    fn empty_manifest_has_no_lines() {
        assert_eq!(chunks_of("", 10).unwrap().0, 0);
    }

    #[test]
    fn etags_compare_without_quotes() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
    }
}
