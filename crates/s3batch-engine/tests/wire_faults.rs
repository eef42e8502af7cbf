//! Jobs on a bad wire: a real engine drives moto server and Garage through a fault-injecting proxy
//! ([`proxy::FaultProxy`]) that answers `503 SlowDown` in bursts and `500 InternalError` itself, resets
//! connections before forwarding and after the store applied the request, cuts answers in the middle of their
//! body, and stalls requests for 5 s — about 20 % of all requests, the manifest's reads and the report's uploads
//! included (the engine reaches the store only through the proxy). A copy job and a delete job must still
//! finish Complete with no failed task, every manifest line exactly once in the report, the counters equal to the
//! rows, the objects really copied or really gone (read back directly, not through the proxy), and a bounded
//! number of requests: at most `tasks × engine.max_attempts × the SDK's attempts` of each kind.
//!
//! The suite runs [`DEFAULT_TASKS`] tasks a job; `S3BATCH_FAULT_TASKS=20000` runs the campaign's size,
//! `S3BATCH_FAULT_SEED` another fault sequence, `S3BATCH_FAULT_RATE` another share of faults (0: none, to compare
//! times), `S3BATCH_FAULT_KINDS=Stall,CutBody` only some kinds. Each test prints what the proxy did.
//!
//! # Two retry loops
//!
//! Each of the engine's attempts (`engine.max_attempts`, 5) is one call of the AWS SDK, which retries by itself
//! (standard mode: 3 attempts, backoff from 1 s), so a task's request goes out at most 15 times. The SDK's retries
//! are not rationed: by default they draw on a quota (a token bucket) shared by every S3 client of the process in
//! one region, which a burst of faults empties, after which the SDK stops retrying and only the engine's 5
//! attempts were left (measured at 40 % faults before s3batch's clients got a quota-free retry partition: 8 of
//! 3,000 copies failed against Garage; `a_storm_of_failed_attempts_does_not_exhaust_the_sdks_retries` makes it
//! certain: every task failed). The engine paces retries itself. The proxy counts the requests by the SDK's
//! attempt number (`amz-sdk-request`), so the test bounds both loops.
//!
//! # Why a request that may have been applied can be sent again
//!
//! A reset after forwarding (and a cut answer, and a stall the client gave up on) leaves the client not knowing
//! whether the store applied the request; the SDK and the engine then send it again. For each operation run here:
//!
//! - **CopyObject** (same source, same destination, same directives): a second copy writes the same bytes and the
//!   same metadata and tags as the first (they come from the source, or from the job's spec, which does not
//!   change), so the destination ends as one copy would leave it. Only its `Last-Modified` (and, on a versioned
//!   destination bucket, one more version of identical content) tell that it ran twice. If the source was
//!   overwritten between the two sends, the second copy copies the newer source: the destination then holds
//!   what a copy run at the time of the retry gives, which is also what a single late copy would have given; a
//!   job that must copy one exact version names it in the manifest (`VersionId`), and then both sends copy the
//!   same bytes. (A multipart copy pins every part to the source's ETag with `x-amz-copy-source-if-match`, so a
//!   source changed in the middle fails the copy rather than mixing two objects.)
//! - **DeleteObject / DeleteObjects** without a version id on an unversioned bucket: deleting a key that is
//!   already gone answers success (`204`, or `<Deleted>` in a DeleteObjects answer), so the retry answers as the
//!   first send would have and the key is gone either way. With a version id: deleting that version again is a
//!   no-op success too (the version is gone for good). Without a version id on a **versioned** bucket, each send
//!   adds a delete marker: a retry after an applied first send leaves two delete markers on top of the same
//!   versions. The object reads as deleted either way and no data version is lost, but the version list shows one
//!   marker more; S3 Batch Operations has the same at-least-once behaviour.
//! - **Tagging** (PutObjectTagging, and the read-modify-write of Add/RemoveObjectTagging, which ends in a
//!   PutObjectTagging of the whole set): a PUT replaces the whole tag set, so sending the same set twice leaves
//!   the same set; DeleteObjectTagging of an untagged object is a success too.
//! - **Reads** (the manifest, its chunks, listing): no effect to repeat. A manifest read cut in the middle goes on
//!   from the first byte not read, with a ranged GET whose ETag must be the one first read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::s3::S3Store;
use s3batch_storage::{BackendKind, ObjectStore, PutBody, PutOptions, Router, StorageConfig};
use s3batch_store::sqlite::SqliteStore;
use serde_json::{Value, json};

mod common;
mod peers;
mod proxy;

use common::Rows;
use proxy::{Counts, Fault, FaultProxy, Op};

/// Tasks a job in the suite; `S3BATCH_FAULT_TASKS` overrides it.
const DEFAULT_TASKS: usize = 3000;
/// Share of the requests the proxy spoils.
const FAULT_RATE: f64 = 0.2;
/// The SDK's own attempts per call (its standard retry mode's default), inside each of the engine's.
const SDK_ATTEMPTS: u64 = 3;
const BUCKETS: [&str; 4] = ["src", "dst", "manifests", "reports"];

fn tasks() -> usize {
    std::env::var("S3BATCH_FAULT_TASKS").ok().map_or(DEFAULT_TASKS, |v| v.parse().expect("S3BATCH_FAULT_TASKS"))
}

/// The share of requests spoiled: [`FAULT_RATE`], or `S3BATCH_FAULT_RATE` (0 measures the same jobs without faults).
fn rate() -> f64 {
    std::env::var("S3BATCH_FAULT_RATE").ok().map_or(FAULT_RATE, |v| v.parse().expect("S3BATCH_FAULT_RATE"))
}

fn seed() -> u64 {
    std::env::var("S3BATCH_FAULT_SEED").ok().map_or(18, |v| v.parse().expect("S3BATCH_FAULT_SEED"))
}

fn moto_config(endpoint: &str) -> StorageConfig {
    StorageConfig {
        kind: BackendKind::S3,
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        root: None,
        ..StorageConfig::local("moto", "")
    }
}

fn garage_config(g: &peers::Garage, endpoint: &str) -> StorageConfig {
    StorageConfig {
        kind: BackendKind::S3,
        endpoint: Some(endpoint.to_string()),
        region: Some("garage".into()),
        force_path_style: true,
        access_key_id: Some(g.key_id.clone()),
        secret_access_key: Some(g.secret.clone()),
        checksum_when_required: true,
        root: None,
        ..StorageConfig::local("garage", "")
    }
}

/// An engine whose every storage request goes through the proxy, and the same store reached directly.
struct Harness {
    _dir: tempfile::TempDir,
    direct: S3Store,
    proxy: FaultProxy,
    service: JobService,
    config: EngineConfig,
    token: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl Harness {
    /// `config(endpoint)` is the store's entry for an endpoint: the store's own for the test, the proxy's for the
    /// engine.
    async fn new(upstream: &str, config: impl Fn(&str) -> StorageConfig) -> Harness {
        let direct = S3Store::from_config(&config(upstream)).expect("the store's config");
        wait_until_up(&direct).await;
        let proxy = FaultProxy::start(upstream, 0.0, seed()).await;
        let proxied = S3Store::from_config(&config(&proxy.endpoint)).expect("the proxied store's config");
        let mut router = Router::default();
        router.add("proxied", vec!["*".into()], Arc::new(proxied));
        let config = EngineConfig { tick_ms: 50, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("jobs.db")).await.unwrap());
        let engine = Engine::new(store.clone(), Arc::new(router), config.clone());
        let token = CancellationToken::new();
        tokio::spawn(engine.clone().run(token.clone()));
        let service = JobService::new(store, engine.wake.clone(), 90);
        Harness { _dir: dir, direct, proxy, service, config, token }
    }

    /// Run `operation` over `lines` (bucket, key) as one job through the proxy, which must complete, with every
    /// line exactly once in its report and no failed task; its rows and what the proxy did meanwhile.
    async fn run(&self, name: &str, operation: Value, lines: &[(String, String)]) -> (Rows, Counts) {
        let before = self.proxy.counts();
        let started = Instant::now();
        let refs: Vec<[&str; 2]> = lines.iter().map(|(b, k)| [b.as_str(), k.as_str()]).collect();
        let refs: Vec<&[&str]> = refs.iter().map(|l| &l[..]).collect();
        let timeout = Duration::from_secs(600 + lines.len() as u64 / 10);
        let key = format!("{name}.csv");
        let (_, rows) = common::run_job(&self.service, &self.direct, &key, operation, &refs, timeout).await;
        let counts = self.proxy.counts().since(&before);
        eprintln!(
            "{name}: {} tasks in {:.1} s through the proxy:\n{counts}",
            lines.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(rows.failed.is_empty(), "{name}: {} failed tasks, e.g. {:?}", rows.failed.len(), &rows.failed[..1]);
        let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for r in &rows.succeeded {
            *seen.entry((r.bucket.as_str(), r.key.as_str())).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
        assert!(twice.is_empty(), "{name}: lines reported more than once: {twice:?}");
        let expected: BTreeSet<(&str, &str)> = lines.iter().map(|(b, k)| (b.as_str(), k.as_str())).collect();
        let reported: BTreeSet<(&str, &str)> = seen.keys().copied().collect();
        assert_eq!(reported, expected, "{name}: the report's lines are the manifest's");
        assert_eq!(rows.succeeded.len(), lines.len());
        (rows, counts)
    }

    /// The job's requests of kind `op` bounded: at most `max_attempts` calls of the SDK per task (its first
    /// attempts), at most `SDK_ATTEMPTS` attempts per call, so at most `tasks × max_attempts × SDK_ATTEMPTS` in
    /// all.
    fn assert_bounded(&self, name: &str, counts: &Counts, op: Op, tasks: u64) {
        let calls = counts.sdk_attempt(op, 1);
        let max_calls = tasks * u64::from(self.config.max_attempts);
        assert!(calls <= max_calls, "{name}: {calls} calls of {op:?} for {tasks} tasks, more than {max_calls}");
        assert_eq!(counts.sdk_attempt(op, 0), 0, "{name}: every {op:?} request says its SDK attempt:\n{counts}");
        let beyond: u64 = (SDK_ATTEMPTS as u32 + 1..=10).map(|n| counts.sdk_attempt(op, n)).sum();
        assert_eq!(beyond, 0, "{name}: no {op:?} call of more than {SDK_ATTEMPTS} attempts:\n{counts}");
        let sent = counts.requests_of(op);
        assert!(sent <= max_calls * SDK_ATTEMPTS, "{name}: {sent} {op:?} requests for {tasks} tasks");
    }
}

/// The store answers a listing (Garage needs a moment after its layout is applied).
async fn wait_until_up(s3: &S3Store) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s3.list_objects("src", "", None, 1).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("the store is not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store does not answer: {e}"),
        }
    }
}

fn body_of(i: usize) -> Bytes {
    Bytes::from(format!("object {i} of the fault campaign\n"))
}

fn key_of(i: usize) -> String {
    format!("o/{i:06}")
}

/// Every key under `prefix` in `bucket`, with its ETag, read directly.
async fn listing(s3: &S3Store, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
    let (mut out, mut token) = (BTreeMap::new(), None);
    loop {
        let page =
            s3.list_objects(bucket, prefix, token, 1000).await.unwrap_or_else(|e| panic!("listing {bucket}: {e}"));
        out.extend(page.objects.into_iter().map(|o| (o.key, o.etag)));
        match page.next_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

/// `n` source objects `src/o/…`, written directly.
async fn fill(s3: &S3Store, n: usize) {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| async move {
            let put = s3.put_object("src", &key_of(i), PutBody::Bytes(body_of(i)), &PutOptions::default()).await;
            put.unwrap_or_else(|e| panic!("PUT src/{}: {e}", key_of(i)));
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    eprintln!("{n} source objects written in {:.1} s", started.elapsed().as_secs_f64());
}

/// Every fault kind happened to the requests of `op`.
fn assert_every_fault_on(name: &str, counts: &Counts, op: Op) {
    for f in Fault::ALL {
        let n = counts.faults.get(&(f, op)).copied().unwrap_or(0);
        assert!(n > 0, "{name}: no {f:?} on a {op:?} request:\n{counts}");
    }
}

/// The campaign against one store: copy `n` objects, then delete the copies, each job through the proxy at
/// [`FAULT_RATE`].
async fn campaign(h: &Harness) {
    let n = tasks();
    fill(&h.direct, n).await;
    if let Ok(kinds) = std::env::var("S3BATCH_FAULT_KINDS") {
        let all: BTreeMap<String, Fault> = Fault::ALL.iter().map(|f| (format!("{f:?}"), *f)).collect();
        let kinds: Vec<Fault> = kinds.split(',').map(|k| all.get(k.trim()).copied().expect("a fault name")).collect();
        h.proxy.set_kinds(&kinds);
    }
    h.proxy.set_rate(rate());

    // Copy: the manifest's read is cut in the middle and the report's first upload is reset after it was applied,
    // on top of the random faults.
    h.proxy.force(Op::Get, Fault::CutBody);
    h.proxy.force(Op::Put, Fault::ResetAfter);
    let lines: Vec<(String, String)> = (0..n).map(|i| ("src".to_string(), key_of(i))).collect();
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": "c/"}});
    let (_, counts) = h.run("copy", op, &lines).await;
    assert!(h.proxy.forced_left().is_empty(), "forced faults not injected: {:?}", h.proxy.forced_left());
    if rate() > 0.0 && std::env::var_os("S3BATCH_FAULT_KINDS").is_none() {
        assert_every_fault_on("copy", &counts, Op::Copy);
    }
    h.assert_bounded("copy", &counts, Op::Copy, n as u64);
    let sources = listing(&h.direct, "src", "o/").await;
    let copies = listing(&h.direct, "dst", "c/").await;
    let expected: BTreeMap<String, String> = sources.into_iter().map(|(k, etag)| (format!("c/{k}"), etag)).collect();
    assert_eq!(copies.len(), n, "copies made");
    assert!(copies == expected, "every copy has its source's key and ETag");
    for i in (0..n).step_by((n / 50).max(1)) {
        assert_eq!(common::get(&h.direct, "dst", &format!("c/{}", key_of(i))).await, body_of(i), "copy {i}");
    }

    // Delete the copies: DeleteObjects requests, whose answers are cut and reset too.
    for f in [Fault::CutBody, Fault::ResetAfter, Fault::ResetBefore, Fault::SlowDown, Fault::InternalError] {
        h.proxy.force(Op::DeleteObjects, f);
    }
    h.proxy.force(Op::Get, Fault::CutBody);
    let lines: Vec<(String, String)> = (0..n).map(|i| ("dst".to_string(), format!("c/{}", key_of(i)))).collect();
    let (_, counts) = h.run("delete", json!({"S3DeleteObject": {}}), &lines).await;
    assert!(h.proxy.forced_left().is_empty(), "forced faults not injected: {:?}", h.proxy.forced_left());
    for f in [Fault::CutBody, Fault::ResetAfter, Fault::ResetBefore, Fault::SlowDown, Fault::InternalError] {
        assert!(counts.faults.get(&(f, Op::DeleteObjects)).is_some_and(|n| *n > 0), "{f:?} on DeleteObjects");
    }
    // One DeleteObjects request per batch of keys: bounded by the batches (at most one per key), and the keys
    // sent by the tasks.
    h.assert_bounded("delete", &counts, Op::DeleteObjects, n as u64);
    let max_keys = n as u64 * u64::from(h.config.max_attempts) * SDK_ATTEMPTS;
    assert!(counts.delete_keys <= max_keys, "{} keys sent in DeleteObjects for {n} tasks", counts.delete_keys);
    let left = listing(&h.direct, "dst", "c/").await;
    assert!(left.is_empty(), "{} copies left after the delete job, e.g. {:?}", left.len(), left.keys().next());
    assert_eq!(listing(&h.direct, "src", "o/").await.len(), n, "the sources are untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_delete_jobs_through_faults_against_moto() {
    let moto = peers::start_moto();
    let direct = S3Store::from_config(&moto_config(&moto.endpoint)).unwrap();
    for b in BUCKETS {
        direct.create_bucket(b).await.unwrap();
    }
    let h = Harness::new(&moto.endpoint, moto_config).await;
    campaign(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_delete_jobs_through_faults_against_garage() {
    let garage = peers::start_garage(&BUCKETS);
    let h = Harness::new(&garage.endpoint, |endpoint| garage_config(&garage, endpoint)).await;
    campaign(&h).await;
}

/// The manifest's one full read cut in the middle, and its resumption, and two chunks' reads: the job reads on
/// from where the cut left it and completes, every line once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_read_cut_in_the_middle_goes_on_where_it_stopped() {
    let moto = peers::start_moto();
    let direct = S3Store::from_config(&moto_config(&moto.endpoint)).unwrap();
    for b in BUCKETS {
        direct.create_bucket(b).await.unwrap();
    }
    let h = Harness::new(&moto.endpoint, moto_config).await;
    // The manifest's read, then its resumption (a ranged read), then two chunks' reads.
    h.proxy.force(Op::Get, Fault::CutBody);
    for _ in 0..3 {
        h.proxy.force(Op::RangeGet, Fault::CutBody);
    }
    // Deleting keys that were never written: each succeeds, and the job makes no other request.
    let lines: Vec<(String, String)> = (0..5000).map(|i| ("dst".to_string(), format!("never/{i:05}"))).collect();
    let (_, counts) = h.run("cut-manifest", json!({"S3DeleteObject": {}}), &lines).await;
    assert!(h.proxy.forced_left().is_empty(), "forced faults not injected: {:?}", h.proxy.forced_left());
    assert_eq!(counts.faults.get(&(Fault::CutBody, Op::Get)), Some(&1), "{counts}");
    assert_eq!(counts.faults.get(&(Fault::CutBody, Op::RangeGet)), Some(&3), "{counts}");
}

/// A storm: the first two attempts of every CopyObject call fail (500). The SDK's third attempt would succeed, if
/// it may make it: by default its retries draw on a quota shared by the process's S3 clients (500 tokens, 5 a
/// retry, a failed retry's never given back), which such a storm empties within the first few dozen calls; from
/// then on the SDK gave up at the first failure, each of the engine's `max_attempts` calls failed the same way,
/// and the tasks failed (measured before the fix: all 400, in 6 s). s3batch's clients retry without that quota,
/// so every task succeeds on its call's third attempt, and none takes more than one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_failed_attempts_does_not_exhaust_the_sdks_retries() {
    let moto = peers::start_moto();
    let direct = S3Store::from_config(&moto_config(&moto.endpoint)).unwrap();
    for b in BUCKETS {
        direct.create_bucket(b).await.unwrap();
    }
    let h = Harness::new(&moto.endpoint, moto_config).await;
    let n = 400;
    fill(&h.direct, n).await;
    h.proxy.fail_early_attempts(Op::Copy, 2, Fault::InternalError);
    let lines: Vec<(String, String)> = (0..n).map(|i| ("src".to_string(), key_of(i))).collect();
    let op = json!({"S3PutObjectCopy": {"TargetResource": "arn:aws:s3:::dst", "TargetKeyPrefix": "c/"}});
    let (_, counts) = h.run("storm", op, &lines).await;
    assert_eq!(counts.sdk_attempt(Op::Copy, 1), n as u64, "one SDK call a task:\n{counts}");
    assert_eq!(counts.sdk_attempt(Op::Copy, 3), n as u64, "each call's third attempt went out:\n{counts}");
    assert_eq!(listing(&h.direct, "dst", "c/").await.len(), n, "copies made");
}
