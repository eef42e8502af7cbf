//! The S3 Control job API driven by the official `aws-sdk-s3control` client, against a real s3batch server in
//! this process (SQLite job store, in-memory object storage, a running engine, SigV4 credentials for two
//! accounts). Every call, every modeled error, paging, idempotency, account isolation and both ways of reaching
//! a server on 127.0.0.1 (region `snow`, or a custom endpoint resolver).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3control::Client;
use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_s3control::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3control::error::ProvideErrorMetadata;
use aws_sdk_s3control::primitives::DateTime;
use aws_sdk_s3control::types::*;
use bytes::Bytes;
use s3batch_api::{Account, Accounts, AppState, RateLimiter};
use s3batch_engine::roles::{RoleConfig, Roles};
use s3batch_engine::service::JobService;
use s3batch_engine::{CancellationToken, Engine, EngineConfig};
use s3batch_storage::memory::MemoryStore;
use s3batch_storage::{ObjectRef, ObjectStore, PutBody, PutOptions, Router};
use s3batch_store::JobStore;
use s3batch_store::sqlite::SqliteStore;

const A: &str = "111111111111";
const B: &str = "222222222222";
const TIMEOUT: Duration = Duration::from_secs(20);

struct Server {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    addr: std::net::SocketAddr,
    objects: MemoryStore,
    manifest_etag: String,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    async fn start() -> Server {
        Server::with(RateLimiter::unlimited(), 90).await
    }

    async fn with_limiter(limiter: RateLimiter) -> Server {
        Server::with(limiter, 90).await
    }

    async fn with(limiter: RateLimiter, retention_days: i64) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&db).await.unwrap());
        let objects = MemoryStore::new();
        for b in ["manifests", "data", "reports"] {
            objects.create_bucket(b).await.unwrap();
        }
        let opts = PutOptions::default();
        for k in ["a", "b", "c"] {
            objects.put_object("data", k, PutBody::Bytes(Bytes::from_static(b"x")), &opts).await.unwrap();
        }
        let manifest = Bytes::from_static(b"data,a\ndata,b\ndata,c\n");
        let put = objects.put_object("manifests", "m.csv", PutBody::Bytes(manifest), &opts).await.unwrap();
        let manifest_etag = match put.etag {
            Some(e) => e,
            None => objects.head_object(&ObjectRef::new("manifests", "m.csv")).await.unwrap().etag,
        };
        let mut router = Router::default();
        router.add("mem", vec!["*".into()], Arc::new(objects.clone()));
        // One role per account, allowing what the tests' jobs touch.
        let role = |arn: &str| RoleConfig {
            arn: arn.into(),
            cos_arn: None,
            read: vec!["manifests".into(), "data".into()],
            write: vec!["data".into(), "reports".into()],
            operations: None,
            functions: ["f:$LATEST", "f"]
                .iter()
                .map(|f| format!("arn:aws:lambda:us-east-1:{}:function:{f}", &arn[13..25]))
                .collect(),
            credentials: vec![],
        };
        let roles = Roles::new(&[role(ROLE), role(ROLE_B)], &[], Arc::new(router), true).unwrap();
        let roles = Arc::new(roles);
        let cfg = EngineConfig { tick_ms: 20, lease_ms: 2000, ..Default::default() };
        let engine = Engine::with_roles(store.clone(), roles.clone(), cfg, "engine");
        let shutdown = CancellationToken::new();
        tokio::spawn(engine.clone().run(shutdown.clone()));
        let account = |id: &str, key: &str| Account {
            account_id: id.into(),
            access_key_id: key.into(),
            secret_access_key: Some(format!("secret-of-{key}")),
            secret_access_key_file: None,
            cos_appid: None,
        };
        let accounts = Accounts::new(vec![account(A, "AKIDA"), account(B, "AKIDB")]).unwrap();
        let service = JobService::new(store, engine.wake.clone(), retention_days).with_roles(roles);
        let mut state = AppState::new(service, Arc::new(accounts), "us-east-1");
        state.limiter = Arc::new(limiter);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = s3batch_api::router(state);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await.unwrap();
        });
        Server { _dir: dir, db, addr, objects, manifest_etag, shutdown }
    }

    /// A client for `key`, region `snow` and `--endpoint-url`, no retries (so errors show as they are).
    fn client(&self, key: &str) -> Client {
        self.client_with(key, &format!("secret-of-{key}"))
    }

    fn client_with(&self, key: &str, secret: &str) -> Client {
        let conf = aws_sdk_s3control::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("snow"))
            .endpoint_url(format!("http://{}", self.addr))
            .credentials_provider(Credentials::new(key, secret, None, None, "test"))
            .retry_config(aws_sdk_s3control::config::retry::RetryConfig::disabled())
            .http_client(s3batch_storage::s3::http_client())
            .build();
        Client::from_conf(conf)
    }

    fn manifest(&self) -> JobManifest {
        JobManifest::builder()
            .spec(
                JobManifestSpec::builder()
                    .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                    .fields(JobManifestFieldName::Bucket)
                    .fields(JobManifestFieldName::Key)
                    .build()
                    .unwrap(),
            )
            .location(
                JobManifestLocation::builder()
                    .object_arn("arn:aws:s3:::manifests/m.csv")
                    .e_tag(&self.manifest_etag)
                    .build()
                    .unwrap(),
            )
            .build()
    }
}

fn tag(k: &str, v: &str) -> S3Tag {
    S3Tag::builder().key(k).value(v).build().unwrap()
}

fn tagging_op() -> JobOperation {
    JobOperation::builder()
        .s3_put_object_tagging(S3SetObjectTaggingOperation::builder().tag_set(tag("stage", "done")).build())
        .build()
}

fn report() -> JobReport {
    JobReport::builder()
        .enabled(true)
        .bucket("arn:aws:s3:::reports")
        .format(JobReportFormat::ReportCsv20180820)
        .prefix("batch")
        .report_scope(JobReportScope::AllTasks)
        .build()
}

const ROLE: &str = "arn:aws:iam::111111111111:role/batch";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/batch";

/// A CreateJob request for `account` with `op`, `s`'s manifest, the report, priority 1 and the role.
fn job(
    s: &Server,
    c: &Client,
    account: &str,
    op: JobOperation,
) -> aws_sdk_s3control::operation::create_job::builders::CreateJobFluentBuilder {
    c.create_job().account_id(account).operation(op).manifest(s.manifest()).report(report()).priority(1).role_arn(ROLE)
}

async fn create(s: &Server, c: &Client, account: &str, confirm: bool, op: JobOperation) -> String {
    job(s, c, account, op)
        .priority(10)
        .confirmation_required(confirm)
        .description("sdk test")
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap()
}

async fn wait_status(c: &Client, account: &str, id: &str, want: JobStatus) -> JobDescriptor {
    let start = Instant::now();
    loop {
        let job = c.describe_job().account_id(account).job_id(id).send().await.unwrap().job.unwrap();
        if job.status.as_ref() == Some(&want) {
            return job;
        }
        assert!(start.elapsed() < TIMEOUT, "job {id} is {:?}, waiting for {want:?}", job.status);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_through_every_call() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let id = create(&s, &c, A, true, tagging_op()).await;

    // Confirmation required: it waits in Suspended, with the date and cause.
    let job = wait_status(&c, A, &id, JobStatus::Suspended).await;
    assert_eq!(job.job_id(), Some(id.as_str()));
    assert_eq!(job.confirmation_required(), Some(true));
    assert_eq!(job.description(), Some("sdk test"));
    assert_eq!(job.job_arn(), Some(format!("arn:aws:s3:us-east-1:{A}:job/{id}").as_str()));
    assert_eq!(job.operation(), Some(&tagging_op()), "the operation is echoed as created");
    assert_eq!(job.manifest(), Some(&s.manifest()));
    assert_eq!(job.report(), Some(&report()));
    assert_eq!(job.role_arn(), Some(ROLE));
    assert_eq!(job.priority(), 10);
    assert!(job.suspended_date().is_some() && job.suspended_cause().is_some());
    assert!(job.creation_time().is_some() && job.termination_date().is_none());
    assert_eq!(job.progress_summary().unwrap().total_number_of_tasks(), Some(3));
    assert!(job.manifest_generator().is_none() && job.generated_manifest_descriptor().is_none());

    let p = c.update_job_priority().account_id(A).job_id(&id).priority(77).send().await.unwrap();
    assert_eq!((p.job_id(), p.priority()), (id.as_str(), 77));

    // Tags: put replaces, get reads, an empty set and delete remove them all.
    let none = c.get_job_tagging().account_id(A).job_id(&id).send().await.unwrap();
    assert_eq!(none.tags(), &[] as &[S3Tag], "an untagged job gives an empty list");
    c.put_job_tagging().account_id(A).job_id(&id).tags(tag("team", "data")).tags(tag("env", "")).send().await.unwrap();
    let got = c.get_job_tagging().account_id(A).job_id(&id).send().await.unwrap();
    assert_eq!(got.tags(), &[tag("team", "data"), tag("env", "")]);
    c.put_job_tagging().account_id(A).job_id(&id).tags(tag("only", "one")).send().await.unwrap();
    assert_eq!(c.get_job_tagging().account_id(A).job_id(&id).send().await.unwrap().tags(), &[tag("only", "one")]);
    c.delete_job_tagging().account_id(A).job_id(&id).send().await.unwrap();
    assert!(c.get_job_tagging().account_id(A).job_id(&id).send().await.unwrap().tags().is_empty());

    let ready = c
        .update_job_status()
        .account_id(A)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Ready)
        .status_update_reason("looks right")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.job_id(), Some(id.as_str()));
    assert_eq!(ready.status_update_reason(), Some("looks right"));
    assert!(matches!(ready.status(), Some(JobStatus::Ready | JobStatus::Active | JobStatus::Complete)));

    let done = wait_status(&c, A, &id, JobStatus::Complete).await;
    let p = done.progress_summary().unwrap();
    assert_eq!(
        (p.total_number_of_tasks(), p.number_of_tasks_succeeded(), p.number_of_tasks_failed()),
        (Some(3), Some(3), Some(0))
    );
    assert!(p.timers().unwrap().elapsed_time_in_active_seconds().is_some());
    assert!(done.termination_date().is_some());
    assert_eq!(done.priority(), 77);
    assert_eq!(done.status_update_reason(), Some("looks right"));
    let tags = s.objects.get_object_tagging(&ObjectRef::new("data", "b")).await.unwrap();
    assert_eq!(tags, vec![s3batch_core::Tag::new("stage", "done")]);

    // ListJobs shows it, with the OperationName string, and filters by status.
    let listed = c.list_jobs().account_id(A).job_statuses(JobStatus::Complete).send().await.unwrap();
    let item = listed.jobs().iter().find(|j| j.job_id() == Some(id.as_str())).expect("listed");
    assert_eq!(item.operation(), Some(&OperationName::S3PutObjectTagging));
    assert_eq!(item.status(), Some(&JobStatus::Complete));
    assert_eq!(item.progress_summary().unwrap().number_of_tasks_succeeded(), Some(3));
    assert!(item.termination_date().is_some() && item.creation_time().is_some());
    assert!(listed.next_token().is_none());
    let active = c.list_jobs().account_id(A).job_statuses(JobStatus::Active).send().await.unwrap();
    assert!(active.jobs().is_empty(), "an empty page still has Jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_a_reason_and_status_errors() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let id = create(&s, &c, A, true, tagging_op()).await;
    wait_status(&c, A, &id, JobStatus::Suspended).await;
    let out = c
        .update_job_status()
        .account_id(A)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Cancelled)
        .status_update_reason("No longer needed")
        .send()
        .await
        .unwrap();
    assert!(matches!(out.status(), Some(JobStatus::Cancelled | JobStatus::Cancelling)));
    assert_eq!(out.status_update_reason(), Some("No longer needed"));
    let job = wait_status(&c, A, &id, JobStatus::Cancelled).await;
    assert_eq!(job.status_update_reason(), Some("No longer needed"));
    assert!(job.termination_date().is_some());

    // Terminal: neither Ready nor Cancelled is allowed any more.
    for want in [RequestedJobStatus::Ready, RequestedJobStatus::Cancelled] {
        let e = c.update_job_status().account_id(A).job_id(&id).requested_job_status(want).send().await.unwrap_err();
        let e = e.into_service_error();
        assert!(e.is_job_status_exception(), "{e:?}");
    }
    // Ready only from Suspended.
    let running = create(&s, &c, A, false, tagging_op()).await;
    wait_status(&c, A, &running, JobStatus::Complete).await;
    let e = c
        .update_job_status()
        .account_id(A)
        .job_id(&running)
        .requested_job_status(RequestedJobStatus::Ready)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_job_status_exception());
    // A value the SDK does not check is refused by the server.
    let e = c
        .update_job_status()
        .account_id(A)
        .job_id(&running)
        .requested_job_status(RequestedJobStatus::from("Bogus"))
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_bad_request_exception());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_modeled_error() {
    let s = Server::start().await;
    let c = s.client("AKIDA");

    let e = c.describe_job().account_id(A).job_id("00000000-0000-0000-0000-000000000000").send().await.unwrap_err();
    let raw_status = e.raw_response().map(|r| r.status().as_u16());
    let e = e.into_service_error();
    assert!(e.is_not_found_exception(), "{e:?}");
    assert!(raw_status.is_some_and(|s| (400..500).contains(&s)));
    assert!(e.meta().message().is_some_and(|m| !m.is_empty()));
    for call in ["priority", "tagging", "status"] {
        let id = "00000000-0000-0000-0000-000000000000";
        let code = match call {
            "priority" => code(&c.update_job_priority().account_id(A).job_id(id).priority(1).send().await.unwrap_err()),
            "tagging" => code(&c.get_job_tagging().account_id(A).job_id(id).send().await.unwrap_err()),
            _ => code(
                &c.update_job_status()
                    .account_id(A)
                    .job_id(id)
                    .requested_job_status(RequestedJobStatus::Cancelled)
                    .send()
                    .await
                    .unwrap_err(),
            ),
        };
        assert_eq!(code, "NotFoundException", "{call}");
    }

    // BadRequestException: what the SDK does not check, the server does.
    let bad_role = c
        .create_job()
        .account_id(A)
        .operation(tagging_op())
        .manifest(s.manifest())
        .report(report())
        .priority(1)
        .role_arn("not-a-role")
        .send()
        .await
        .unwrap_err();
    assert!(bad_role.into_service_error().is_bad_request_exception());
    let two_ops = JobOperation::builder()
        .s3_put_object_tagging(S3SetObjectTaggingOperation::builder().build())
        .s3_delete_object_tagging(S3DeleteObjectTaggingOperation::builder().build())
        .build();
    let e = job(&s, &c, A, two_ops).send().await.unwrap_err();
    let e = e.into_service_error();
    assert!(e.is_bad_request_exception() && e.meta().message().unwrap().contains("exactly one"), "{e:?}");
    let no_manifest =
        c.create_job().account_id(A).operation(tagging_op()).report(report()).priority(1).role_arn(ROLE).send().await;
    assert!(no_manifest.unwrap_err().into_service_error().is_bad_request_exception());
    let half_report = JobReport::builder().enabled(true).build();
    let e = c
        .create_job()
        .account_id(A)
        .operation(tagging_op())
        .manifest(s.manifest())
        .report(half_report)
        .priority(1)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_bad_request_exception());
    let bad_class = JobOperation::builder()
        .s3_put_object_copy(
            S3CopyObjectOperation::builder()
                .target_resource("arn:aws:s3:::data")
                .storage_class(S3StorageClass::from("COLDEST"))
                .build(),
        )
        .build();
    let e = job(&s, &c, A, bad_class).send().await.unwrap_err();
    assert!(e.into_service_error().is_bad_request_exception());

    // TooManyTagsException: 51 tags at creation or later.
    let id = create(&s, &c, A, true, tagging_op()).await;
    let mut put = c.put_job_tagging().account_id(A).job_id(&id);
    for i in 0..51 {
        put = put.tags(tag(&format!("k{i}"), "v"));
    }
    assert!(put.send().await.unwrap_err().into_service_error().is_too_many_tags_exception());
    let mut create_many = job(&s, &c, A, tagging_op());
    for i in 0..51 {
        create_many = create_many.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(&create_many.send().await.unwrap_err()), "TooManyTagsException");

    // ListJobs: InvalidRequestException and InvalidNextTokenException.
    let e = c.list_jobs().account_id(A).max_results(1001).send().await.unwrap_err();
    assert!(e.into_service_error().is_invalid_request_exception());
    let e = c.list_jobs().account_id(A).next_token("Zm9yZ2VkLXRva2Vu").send().await.unwrap_err();
    assert!(e.into_service_error().is_invalid_next_token_exception());
    let e = c.list_jobs().account_id(A).job_statuses(JobStatus::from("Sleeping")).send().await.unwrap_err();
    assert!(e.into_service_error().is_invalid_request_exception());

    // UpdateJobPriority out of range (the SDK sends it; the server refuses).
    let e = c.update_job_priority().account_id(A).job_id(&id).priority(-5).send().await.unwrap_err();
    assert_eq!(code(&e), "BadRequestException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_tokens() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let send = |token: &'static str, priority: i32| {
        c.create_job()
            .account_id(A)
            .client_request_token(token)
            .operation(tagging_op())
            .manifest(s.manifest())
            .report(report())
            .priority(priority)
            .role_arn(ROLE)
            .send()
    };
    let first = send("token-1", 5).await.unwrap().job_id.unwrap();
    let again = send("token-1", 5).await.unwrap().job_id.unwrap();
    assert_eq!(first, again, "the same request with the same token is the same job");
    let e = send("token-1", 6).await.unwrap_err().into_service_error();
    assert!(e.is_idempotency_exception(), "{e:?}");
    let other = send("token-2", 5).await.unwrap().job_id.unwrap();
    assert_ne!(first, other);
    // Tokens are per account: B may use the same token.
    let b = s.client("AKIDB");
    let theirs = b
        .create_job()
        .account_id(B)
        .client_request_token("token-1")
        .operation(tagging_op())
        .manifest(s.manifest())
        .report(report())
        .priority(5)
        .role_arn(ROLE_B)
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    assert_ne!(theirs, first);
    // The SDK fills in a token when the caller gives none: two calls, two jobs.
    let x = create(&s, &c, A, true, tagging_op()).await;
    let y = create(&s, &c, A, true, tagging_op()).await;
    assert_ne!(x, y);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_through_list_jobs() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(create(&s, &c, A, true, tagging_op()).await);
    }
    let first = c.list_jobs().account_id(A).max_results(3).send().await.unwrap();
    assert_eq!(first.jobs().len(), 3);
    assert!(first.next_token().is_some());
    let pages: Vec<_> = c.list_jobs().account_id(A).max_results(3).into_paginator().send().collect::<Vec<_>>().await;
    assert_eq!(pages.len(), 3, "3 + 3 + 1");
    let mut seen: Vec<String> =
        pages.into_iter().flat_map(|p| p.unwrap().jobs.unwrap_or_default()).filter_map(|j| j.job_id).collect();
    assert_eq!(seen.len(), 7, "no job twice, none missing");
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let zero = c.list_jobs().account_id(A).max_results(0).send().await.unwrap();
    assert!(zero.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated_and_signatures_checked() {
    let s = Server::start().await;
    let a = s.client("AKIDA");
    let b = s.client("AKIDB");
    let id = create(&s, &a, A, true, tagging_op()).await;

    let e = b.describe_job().account_id(B).job_id(&id).send().await.unwrap_err();
    assert!(e.into_service_error().is_not_found_exception(), "B never sees A's job");
    let e = b
        .update_job_status()
        .account_id(B)
        .job_id(&id)
        .requested_job_status(RequestedJobStatus::Cancelled)
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_not_found_exception());
    assert!(b.list_jobs().account_id(B).send().await.unwrap().jobs().is_empty());

    // Signing with B's key for account A is refused.
    let e = b.describe_job().account_id(A).job_id(&id).send().await.unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
    // A wrong secret, an unknown key.
    let e = s.client_with("AKIDA", "wrong").list_jobs().account_id(A).send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    let e = s.client_with("NOBODY", "x").list_jobs().account_id(A).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
}

#[derive(Debug)]
struct Fixed(String);

impl ResolveEndpoint for Fixed {
    fn resolve_endpoint<'a>(&'a self, _: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(Endpoint::builder().url(self.0.clone()).build()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_endpoint_resolver_in_a_real_region() {
    let s = Server::start().await;
    let conf = aws_sdk_s3control::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_resolver(Fixed(format!("http://{}", s.addr)))
        .credentials_provider(Credentials::new("AKIDA", "secret-of-AKIDA", None, None, "test"))
        .http_client(s3batch_storage::s3::http_client())
        .build();
    let c = Client::from_conf(conf);
    let id = create(&s, &c, A, true, tagging_op()).await;
    let job = c.describe_job().account_id(A).job_id(&id).send().await.unwrap().job.unwrap();
    assert_eq!(job.job_id(), Some(id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_internal_errors() {
    let s = Server::with_limiter(RateLimiter::new(0.01, 3)).await;
    let c = s.client("AKIDA");
    let mut codes = Vec::new();
    for _ in 0..5 {
        match c.list_jobs().account_id(A).send().await {
            Ok(_) => codes.push("ok".to_string()),
            Err(e) => codes.push(code(&e)),
        }
    }
    assert_eq!(codes, ["ok", "ok", "ok", "TooManyRequestsException", "TooManyRequestsException"]);
    // Another account has its own budget.
    assert!(s.client("AKIDB").list_jobs().account_id(B).send().await.is_ok());

    // The job store failing under the server: InternalServiceException, 500.
    let s = Server::start().await;
    let url = format!("sqlite://{}", s.db.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE jobs").execute(&mut conn).await.unwrap();
    let e = s.client("AKIDA").list_jobs().account_id(A).send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert!(e.into_service_error().is_internal_service_exception());
}

fn dt(s: &str) -> DateTime {
    DateTime::from_str(s, aws_sdk_s3control::primitives::DateTimeFormat::DateTime).unwrap()
}

/// A grant with every member set.
fn grant() -> S3Grant {
    S3Grant::builder()
        .grantee(
            S3Grantee::builder()
                .type_identifier(S3GranteeTypeIdentifier::Canonical)
                .identifier("abc123")
                .display_name("someone")
                .build(),
        )
        .permission(S3Permission::Read)
        .build()
}

/// Every operation of the model goes in with all its members and comes back from DescribeJob unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_echoed_as_created() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let grant = grant();
    let metadata = S3ObjectMetadata::builder()
        .cache_control("no-cache")
        .content_disposition("inline")
        .content_encoding("gzip")
        .content_language("en")
        .user_metadata("color", "blue")
        .content_type("text/plain")
        .http_expires_date(dt("2031-01-01T00:00:00Z"))
        .sse_algorithm(S3SseAlgorithm::Kms)
        .build();
    let copy = S3CopyObjectOperation::builder()
        .target_resource("arn:aws:s3:::reports")
        .canned_access_control_list(S3CannedAccessControlList::BucketOwnerFullControl)
        .access_control_grants(grant.clone())
        .metadata_directive(S3MetadataDirective::Replace)
        .modified_since_constraint(dt("2020-01-01T00:00:00Z"))
        .new_object_metadata(metadata)
        .new_object_tagging(tag("a", "b"))
        .redirect_location("/elsewhere")
        .requester_pays(true)
        .storage_class(S3StorageClass::StandardIa)
        .un_modified_since_constraint(dt("2040-01-01T00:00:00Z"))
        .sse_aws_kms_key_id("arn:aws:kms:us-east-1:111111111111:key/abc")
        .target_key_prefix("copies/")
        .object_lock_legal_hold_status(S3ObjectLockLegalHoldStatus::On)
        .object_lock_mode(S3ObjectLockMode::Governance)
        .object_lock_retain_until_date(dt("2035-06-01T12:00:00Z"))
        .bucket_key_enabled(true)
        .checksum_algorithm(S3ChecksumAlgorithm::Crc32C)
        .build();
    let acl = S3SetObjectAclOperation::builder()
        .access_control_policy(
            S3AccessControlPolicy::builder()
                .access_control_list(
                    S3AccessControlList::builder()
                        .owner(S3ObjectOwner::builder().id("owner-id").display_name("owner").build())
                        .grants(grant)
                        .build(),
                )
                .build(),
        )
        .build();
    let ops = vec![
        JobOperation::builder()
            .lambda_invoke(
                LambdaInvokeOperation::builder()
                    .function_arn("arn:aws:lambda:us-east-1:111111111111:function:f:$LATEST")
                    .invocation_schema_version("2.0")
                    .user_arguments("mode", "fast")
                    .build(),
            )
            .build(),
        JobOperation::builder().s3_put_object_copy(copy).build(),
        JobOperation::builder().s3_put_object_acl(acl).build(),
        JobOperation::builder()
            .s3_put_object_acl(
                S3SetObjectAclOperation::builder()
                    .access_control_policy(
                        S3AccessControlPolicy::builder()
                            .canned_access_control_list(S3CannedAccessControlList::PublicRead)
                            .build(),
                    )
                    .build(),
            )
            .build(),
        tagging_op(),
        JobOperation::builder().s3_delete_object_tagging(S3DeleteObjectTaggingOperation::builder().build()).build(),
        JobOperation::builder()
            .s3_initiate_restore_object(
                S3InitiateRestoreObjectOperation::builder()
                    .expiration_in_days(3)
                    .glacier_job_tier(S3GlacierJobTier::Bulk)
                    .build(),
            )
            .build(),
        JobOperation::builder()
            .s3_put_object_legal_hold(
                S3SetObjectLegalHoldOperation::builder()
                    .legal_hold(
                        S3ObjectLockLegalHold::builder().status(S3ObjectLockLegalHoldStatus::Off).build().unwrap(),
                    )
                    .build(),
            )
            .build(),
        JobOperation::builder()
            .s3_put_object_retention(
                S3SetObjectRetentionOperation::builder()
                    .bypass_governance_retention(true)
                    .retention(
                        S3Retention::builder()
                            .retain_until_date(dt("2030-01-01T00:00:00Z"))
                            .mode(S3ObjectLockRetentionMode::Compliance)
                            .build(),
                    )
                    .build(),
            )
            .build(),
        JobOperation::builder().s3_replicate_object(S3ReplicateObjectOperation::builder().build()).build(),
        JobOperation::builder()
            .s3_compute_object_checksum(
                S3ComputeObjectChecksumOperation::builder()
                    .checksum_algorithm(ComputeObjectChecksumAlgorithm::Sha256)
                    .checksum_type(ComputeObjectChecksumType::FullObject)
                    .build(),
            )
            .build(),
        JobOperation::builder()
            .s3_update_object_encryption(
                S3UpdateObjectEncryptionOperation::builder()
                    .object_encryption(
                        ObjectEncryption::builder()
                            .ssekms(
                                S3UpdateObjectEncryptionSsekms::builder()
                                    .kms_key_arn(
                                        "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                                    )
                                    .bucket_key_enabled(true)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build(),
    ];
    for op in ops {
        let id = create(&s, &c, A, true, op.clone()).await;
        let job = c.describe_job().account_id(A).job_id(&id).send().await.unwrap().job.unwrap();
        assert_eq!(job.operation(), Some(&op));
    }

    // A manifest generator is echoed too (s3batch does not run generators yet: the job fails in Preparing).
    let generator = JobManifestGenerator::S3JobManifestGenerator(
        S3JobManifestGenerator::builder()
            .source_bucket("arn:aws:s3:::data")
            .enable_manifest_output(true)
            .manifest_output_location(
                S3ManifestOutputLocation::builder()
                    .bucket("arn:aws:s3:::reports")
                    .manifest_prefix("gen")
                    .manifest_encryption(
                        GeneratedManifestEncryption::builder().sses3(Sses3Encryption::builder().build()).build(),
                    )
                    .manifest_format(GeneratedManifestFormat::S3InventoryReportCsv20211130)
                    .build()
                    .unwrap(),
            )
            .filter(
                JobManifestGeneratorFilter::builder()
                    .created_after(dt("2024-01-01T00:00:00Z"))
                    .key_name_constraint(KeyNameConstraint::builder().match_any_prefix("logs/").build())
                    .match_any_storage_class(S3StorageClass::Standard)
                    .object_size_greater_than_bytes(10)
                    .match_any_object_encryption(ObjectEncryptionFilter::Sses3(Sses3Filter::builder().build()))
                    .build(),
            )
            .build()
            .unwrap(),
    );
    let id = c
        .create_job()
        .account_id(A)
        .operation(tagging_op())
        .manifest_generator(generator.clone())
        .report(report())
        .priority(1)
        .role_arn(ROLE)
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let job = wait_status(&c, A, &id, JobStatus::Failed).await;
    assert_eq!(job.manifest_generator(), Some(&generator));
    assert!(job.manifest().is_none());
    let reasons = job.failure_reasons();
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].failure_code().is_some() && reasons[0].failure_reason().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_shows_its_failure_reasons() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let mut manifest = s.manifest();
    manifest.location = Some(
        JobManifestLocation::builder()
            .object_arn("arn:aws:s3:::manifests/m.csv")
            .e_tag("not-the-etag")
            .build()
            .unwrap(),
    );
    let id = c
        .create_job()
        .account_id(A)
        .operation(tagging_op())
        .manifest(manifest)
        .report(report())
        .priority(1)
        .role_arn(ROLE)
        .confirmation_required(false)
        .send()
        .await
        .unwrap()
        .job_id
        .unwrap();
    let job = wait_status(&c, A, &id, JobStatus::Failed).await;
    let r = &job.failure_reasons()[0];
    assert_eq!(r.failure_code(), Some("ManifestETagMismatch"));
    assert!(job.termination_date().is_some());
}

/// Extension: `requestedJobStatus=Paused` and `Active` pause and resume a job; the scheduler leaves a job a user
/// paused alone until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_pause_and_resume_on_the_wire() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let set = |id: &str, to: &str| {
        c.update_job_status().account_id(A).job_id(id).requested_job_status(RequestedJobStatus::from(to)).send()
    };
    // Suspended jobs cannot be paused; nor resumed when nobody paused them.
    let waiting = create(&s, &c, A, true, tagging_op()).await;
    wait_status(&c, A, &waiting, JobStatus::Suspended).await;
    assert!(set(&waiting, "Paused").await.unwrap_err().into_service_error().is_job_status_exception());
    assert!(set(&waiting, "Active").await.unwrap_err().into_service_error().is_job_status_exception());

    s.objects.set_faults(s3batch_storage::memory::Faults {
        latency: Duration::from_millis(400),
        only_ops: vec!["put_object_tagging".into()],
        ..Default::default()
    });
    let id = create(&s, &c, A, false, tagging_op()).await;
    wait_status(&c, A, &id, JobStatus::Active).await;
    let out = set(&id, "Paused").await.unwrap();
    assert!(matches!(out.status(), Some(JobStatus::Pausing | JobStatus::Paused)), "{out:?}");
    let job = wait_status(&c, A, &id, JobStatus::Paused).await;
    assert_eq!(job.suspended_cause(), Some("Paused by user"));
    assert!(job.suspended_date().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = c.describe_job().account_id(A).job_id(&id).send().await.unwrap().job.unwrap();
    assert_eq!(still.status(), Some(&JobStatus::Paused), "nothing resumes a job a user paused");
    assert!(set(&id, "Paused").await.is_ok(), "pausing a paused job again is harmless");

    let out = set(&id, "Active").await.unwrap();
    assert!(matches!(out.status(), Some(JobStatus::Paused | JobStatus::Active | JobStatus::Complete)), "{out:?}");
    let done = wait_status(&c, A, &id, JobStatus::Complete).await;
    assert_eq!(done.progress_summary().unwrap().number_of_tasks_succeeded(), Some(3));
    assert!(set(&id, "Active").await.unwrap_err().into_service_error().is_job_status_exception());
    assert!(set(&id, "Paused").await.unwrap_err().into_service_error().is_job_status_exception());
}

/// Finished jobs are kept `retention_days` (90 by default), then DescribeJob answers NotFoundException and
/// ListJobs no longer shows them. With 0 days that is at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_expire_after_the_retention_period() {
    let s = Server::with(RateLimiter::unlimited(), 0).await;
    let c = s.client("AKIDA");
    let id = create(&s, &c, A, false, tagging_op()).await;
    let start = Instant::now();
    loop {
        // Until it finishes it is there; once finished it is gone at once.
        if let Err(e) = c.describe_job().account_id(A).job_id(&id).send().await {
            assert!(e.into_service_error().is_not_found_exception());
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "the finished job never expired");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(c.list_jobs().account_id(A).send().await.unwrap().jobs().is_empty());
    let waiting = create(&s, &c, A, true, tagging_op()).await;
    wait_status(&c, A, &waiting, JobStatus::Suspended).await;
    assert_eq!(c.list_jobs().account_id(A).send().await.unwrap().jobs().len(), 1, "unfinished jobs stay");
}

/// Raw, signed HTTP: what no SDK would send. Hostile or oversized bodies, unsigned calls and wrong methods all get
/// the XML error envelope with a 4xx status, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clean_errors() {
    use axum::http::{HeaderMap, Method, Uri};
    let s = Server::start().await;
    // One connection per request: after refusing an oversized body the server closes the connection, and a pooled
    // client could otherwise send the next request down that closing connection and see a reset.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let send = |method: Method, path: &str, body: Vec<u8>, sign: bool| {
        let uri: Uri = format!("http://{}{path}", s.addr).parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", s.addr.to_string().parse().unwrap());
        headers.insert("x-amz-account-id", A.parse().unwrap());
        if sign {
            let signer =
                s3batch_api::sigv4::Signer { access_key_id: "AKIDA", secret: "secret-of-AKIDA", region: "snow" };
            let path_only: Uri = uri.path_and_query().unwrap().as_str().parse().unwrap();
            signer.sign(&method, &path_only, &mut headers, &body, chrono::Utc::now()).expect("ASCII headers");
        }
        let req = http.request(method, uri.to_string()).headers(headers).body(body);
        async move {
            // The server may answer an oversized body before the client has sent it all and close the
            // connection; the client then sees a reset instead of the answer (status 0 here).
            let Ok(resp) = req.send().await else { return (0, None, String::new()) };
            let status = resp.status().as_u16();
            let request_id = resp.headers().get("x-amz-request-id").map(|v| v.to_str().unwrap().to_string());
            (status, request_id, resp.text().await.unwrap_or_default())
        }
    };
    let code_of = |body: &str| {
        let start = body.find("<Code>").map(|i| i + 6).unwrap_or(0);
        let end = body.find("</Code>").unwrap_or(0);
        body[start..end].to_string()
    };
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><CreateJobRequest><Description>&c;</Description></CreateJobRequest>"#;
    let deep = format!("{}{}", "<a>".repeat(100_000), "</a>".repeat(100_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (bomb.as_bytes().to_vec(), "BadRequestException"),
        (deep.into_bytes(), "BadRequestException"),
        (vec![b'x'; 2 << 20], "BadRequestException"),
        (b"<CreateJobRequest><Priority>1".to_vec(), "BadRequestException"),
        (vec![0xff, 0x00, 0x12], "BadRequestException"),
        (Vec::new(), "BadRequestException"),
    ];
    for (body, want) in cases {
        let len = body.len();
        let (status, rid, text) = send(Method::POST, "/v20180820/jobs", body, true).await;
        if status == 0 && len > s3batch_api::MAX_BODY_BYTES {
            continue; // refused before it was read to the end (the next calls show the server still serves)
        }
        assert!((400..500).contains(&status), "{len}-byte body: {status} {text}");
        assert!(text.contains("<ErrorResponse><Error><Code>"), "{text}");
        assert_eq!(code_of(&text), want, "{text}");
        assert!(rid.is_some_and(|r| text.contains(&r)), "the request id is in the header and the body");
    }
    let (status, _, text) = send(Method::GET, "/v20180820/jobs", Vec::new(), false).await;
    assert_eq!((status, code_of(&text).as_str()), (403, "AccessDenied"), "{text}");
    let (status, _, text) = send(Method::PATCH, "/v20180820/jobs", Vec::new(), true).await;
    assert_eq!(status, 405, "{text}");
    assert!(text.contains("<ErrorResponse>"));
    let (status, _, text) = send(Method::GET, "/v20180820/accesspoint", Vec::new(), true).await;
    assert_eq!((status, code_of(&text).as_str()), (501, "NotImplemented"), "{text}");
    let (status, _, text) = send(Method::GET, "/v20180820/jobs?maxResults=abc", Vec::new(), true).await;
    assert_eq!((status, code_of(&text).as_str()), (400, "InvalidRequestException"), "{text}");
    let (status, _, text) = send(Method::POST, "/v20180820/jobs/abcdef/priority?priority=x", Vec::new(), true).await;
    assert_eq!((status, code_of(&text).as_str()), (400, "BadRequestException"), "{text}");
    // Still serving.
    let (status, _, text) = send(Method::GET, "/v20180820/jobs", Vec::new(), true).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.starts_with("<?xml")
            && text.contains("<ListJobsResult xmlns=\"http://awss3control.amazonaws.com/doc/2018-08-20/\"><Jobs/>"),
        "{text}"
    );
}

/// Roles on the wire: a job must name a role of the caller's account; another account's role is refused in the same
/// words as a role that does not exist, and neither says which it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_job_needs_a_role_of_the_callers_account() {
    let s = Server::start().await;
    let b = s.client("AKIDB");
    let base =
        || b.create_job().account_id(B).operation(tagging_op()).manifest(s.manifest()).report(report()).priority(1);
    let nope = "arn:aws:iam::111111111111:role/nope";
    let theirs = base().role_arn(ROLE).send().await.unwrap_err();
    let missing = base().role_arn(nope).send().await.unwrap_err();
    for e in [&theirs, &missing] {
        assert_eq!(code(e), "AccessDenied", "{e:?}");
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
    }
    let words =
        |e: &aws_sdk_s3control::error::SdkError<_, _>, arn: &str| e.message().unwrap_or_default().replace(arn, "ROLE");
    assert_eq!(words(&theirs, ROLE), words(&missing, nope), "the answer does not tell whether the role exists");
    assert!(words(&theirs, ROLE).contains(ROLE_B), "it lists the caller's own roles: {}", words(&theirs, ROLE));
    // The caller's own role works, and DescribeJob shows it as given.
    let id = base().role_arn(ROLE_B).send().await.unwrap().job_id.unwrap();
    let job = b.describe_job().account_id(B).job_id(&id).send().await.unwrap().job.unwrap();
    assert_eq!(job.role_arn(), Some(ROLE_B));
    assert_eq!(b.list_jobs().account_id(B).send().await.unwrap().jobs().len(), 1, "nothing else was created");
}

/// How many members of `v` (as the SDK's `Debug` shows them) are unset.
fn unset_members(v: &impl std::fmt::Debug) -> usize {
    format!("{v:?}").matches(": None").count()
}

/// The SDK's own model, walked: a CreateJob request with every member of every structure set (the operations,
/// the manifest, the generator and its filter, the report), checked through the SDK's `Debug` so that a member
/// the next SDK adds shows up as unset and fails this test until s3batch knows it; then DescribeJob must give
/// every member back unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_the_sdk_model_round_trips() {
    let s = Server::start().await;
    let c = s.client("AKIDA");
    let grant = grant();
    let copy = S3CopyObjectOperation::builder()
        .target_resource("arn:aws:s3:::reports")
        .canned_access_control_list(S3CannedAccessControlList::BucketOwnerFullControl)
        .access_control_grants(grant.clone())
        .metadata_directive(S3MetadataDirective::Replace)
        .annotation_directive(S3AnnotationDirective::Exclude)
        .modified_since_constraint(dt("2020-01-01T00:00:00Z"))
        .new_object_metadata(
            S3ObjectMetadata::builder()
                .cache_control("no-cache")
                .content_disposition("inline")
                .content_encoding("gzip")
                .content_language("en")
                .user_metadata("color", "blue")
                .content_length(12)
                .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
                .content_type("text/plain")
                .http_expires_date(dt("2031-01-01T00:00:00Z"))
                .requester_charged(true)
                .sse_algorithm(S3SseAlgorithm::Kms)
                .build(),
        )
        .new_object_tagging(tag("a", "b"))
        .redirect_location("/elsewhere")
        .requester_pays(true)
        .storage_class(S3StorageClass::StandardIa)
        .un_modified_since_constraint(dt("2040-01-01T00:00:00Z"))
        .sse_aws_kms_key_id("arn:aws:kms:us-east-1:111111111111:key/abc")
        .target_key_prefix("copies/")
        .object_lock_legal_hold_status(S3ObjectLockLegalHoldStatus::On)
        .object_lock_mode(S3ObjectLockMode::Governance)
        .object_lock_retain_until_date(dt("2035-06-01T12:00:00Z"))
        .bucket_key_enabled(true)
        .checksum_algorithm(S3ChecksumAlgorithm::Crc32C)
        .object_lock_event_hold(S3ObjectLockEventHold::On)
        .object_lock_event_hold_duration(S3ObjectLockEventHoldDuration::builder().days(30).build())
        .build();
    // A duration is days or years: the other one stays unset, as the model means it.
    assert_eq!(unset_members(&copy), 1, "every S3CopyObjectOperation member but the duration's Years: {copy:?}");
    let retention = S3SetObjectRetentionOperation::builder()
        .bypass_governance_retention(true)
        .retention(
            S3Retention::builder()
                .retain_until_date(dt("2030-01-01T00:00:00Z"))
                .mode(S3ObjectLockRetentionMode::Compliance)
                .event_hold(S3ObjectLockRetentionEventHold::Off)
                .event_hold_duration(S3ObjectLockRetentionEventHoldDuration::builder().years(2).build())
                .build(),
        )
        .build();
    assert_eq!(unset_members(&retention), 1, "every S3SetObjectRetentionOperation member but Days: {retention:?}");
    let acl = S3SetObjectAclOperation::builder()
        .access_control_policy(
            S3AccessControlPolicy::builder()
                .access_control_list(
                    S3AccessControlList::builder()
                        .owner(S3ObjectOwner::builder().id("owner-id").display_name("owner").build())
                        .grants(grant)
                        .build(),
                )
                .build(),
        )
        .build();
    let ops = [
        JobOperation::builder()
            .lambda_invoke(
                LambdaInvokeOperation::builder()
                    .function_arn("arn:aws:lambda:us-east-1:111111111111:function:f")
                    .invocation_schema_version("2.0")
                    .user_arguments("mode", "fast")
                    .build(),
            )
            .build(),
        JobOperation::builder().s3_put_object_copy(copy).build(),
        JobOperation::builder().s3_put_object_acl(acl).build(),
        tagging_op(),
        JobOperation::builder().s3_delete_object_tagging(S3DeleteObjectTaggingOperation::builder().build()).build(),
        JobOperation::builder()
            .s3_initiate_restore_object(
                S3InitiateRestoreObjectOperation::builder()
                    .expiration_in_days(3)
                    .glacier_job_tier(S3GlacierJobTier::Standard)
                    .build(),
            )
            .build(),
        JobOperation::builder()
            .s3_put_object_legal_hold(
                S3SetObjectLegalHoldOperation::builder()
                    .legal_hold(
                        S3ObjectLockLegalHold::builder().status(S3ObjectLockLegalHoldStatus::On).build().unwrap(),
                    )
                    .build(),
            )
            .build(),
        JobOperation::builder().s3_put_object_retention(retention).build(),
        JobOperation::builder().s3_replicate_object(S3ReplicateObjectOperation::builder().build()).build(),
        JobOperation::builder()
            .s3_compute_object_checksum(
                S3ComputeObjectChecksumOperation::builder()
                    .checksum_algorithm(ComputeObjectChecksumAlgorithm::Crc64Nvme)
                    .checksum_type(ComputeObjectChecksumType::FullObject)
                    .build(),
            )
            .build(),
        JobOperation::builder()
            .s3_update_object_encryption(
                S3UpdateObjectEncryptionOperation::builder()
                    .object_encryption(
                        ObjectEncryption::builder()
                            .ssekms(
                                S3UpdateObjectEncryptionSsekms::builder()
                                    .kms_key_arn("arn:aws:kms:us-east-1:111111111111:key/abc")
                                    .bucket_key_enabled(false)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build(),
    ];
    // JobOperation is a union of the model's operations, one per element of `ops`: one member set, every other one
    // unset. A new operation in the model is one more unset member (and one more operation this list must cover).
    let members = ops.len();
    let report = JobReport::builder()
        .enabled(true)
        .bucket("arn:aws:s3:::reports")
        .format(JobReportFormat::ReportCsv20180820)
        .prefix("batch")
        .report_scope(JobReportScope::FailedTasksOnly)
        .expected_bucket_owner(A)
        .build();
    assert_eq!(unset_members(&report), 0, "every JobReport member: {report:?}");
    // The echo is what is checked here: the manifest's version and columns need not match the object.
    let manifest = JobManifest::builder()
        .spec(
            JobManifestSpec::builder()
                .format(JobManifestFormat::S3BatchOperationsCsv20180820)
                .fields(JobManifestFieldName::Bucket)
                .fields(JobManifestFieldName::Key)
                .fields(JobManifestFieldName::VersionId)
                .build()
                .unwrap(),
        )
        .location(
            JobManifestLocation::builder()
                .object_arn("arn:aws:s3:::manifests/m.csv")
                .object_version_id("v1")
                .e_tag(&s.manifest_etag)
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(unset_members(&manifest), 0, "every JobManifest member: {manifest:?}");
    for op in ops {
        let inner = op_inner(&op).matches(": None").count();
        // Members that exclude each other: a duration's other unit, an ACL policy's canned ACL beside its list.
        let exclusive = usize::from(
            op.s3_put_object_copy().is_some()
                || op.s3_put_object_retention().is_some()
                || op.s3_put_object_acl().is_some(),
        );
        assert_eq!(inner, exclusive, "every member of the operation (exclusive ones aside): {op:?}");
        assert_eq!(unset_members(&op) - inner, members - 1, "JobOperation has {members} members: {op:?}");
        let request = c
            .create_job()
            .account_id(A)
            .operation(op.clone())
            .manifest(manifest.clone())
            .report(report.clone())
            .priority(7)
            .role_arn(ROLE)
            .confirmation_required(true)
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .description("every member")
            .tags(tag("team", "data"));
        // Every CreateJob member but the manifest generator (a job names a manifest or a generator).
        assert_eq!(unset_members(request.as_input()) - unset_members(&op), 1, "{:?}", request.as_input());
        let id = request.send().await.unwrap().job_id.unwrap();
        let job = c.describe_job().account_id(A).job_id(&id).send().await.unwrap().job.unwrap();
        assert_eq!(job.operation(), Some(&op));
        assert_eq!(job.manifest(), Some(&manifest));
        assert_eq!(job.report(), Some(&report));
        assert_eq!((job.priority(), job.description(), job.role_arn()), (7, Some("every member"), Some(ROLE)));
    }

    let generator = S3JobManifestGenerator::builder()
        .expected_bucket_owner(A)
        .source_bucket("arn:aws:s3:::data")
        .enable_manifest_output(true)
        .manifest_output_location(
            S3ManifestOutputLocation::builder()
                .expected_manifest_bucket_owner(A)
                .bucket("arn:aws:s3:::reports")
                .manifest_prefix("gen")
                .manifest_encryption(
                    GeneratedManifestEncryption::builder()
                        .ssekms(
                            SsekmsEncryption::builder()
                                .key_id("arn:aws:kms:us-east-1:111111111111:key/k")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .manifest_format(GeneratedManifestFormat::S3InventoryReportCsv20211130)
                .build()
                .unwrap(),
        )
        .filter(
            JobManifestGeneratorFilter::builder()
                .eligible_for_replication(true)
                .created_after(dt("2024-01-01T00:00:00Z"))
                .created_before(dt("2030-01-01T00:00:00Z"))
                .object_replication_statuses(ReplicationStatus::Completed)
                .key_name_constraint(
                    KeyNameConstraint::builder()
                        .match_any_prefix("logs/")
                        .match_any_suffix(".gz")
                        .match_any_substring("2024")
                        .build(),
                )
                .object_size_greater_than_bytes(10)
                .object_size_less_than_bytes(1_000_000)
                .match_any_storage_class(S3StorageClass::Standard)
                // AWS takes one element in each MatchAny list of a generator filter.
                .match_any_object_encryption(ObjectEncryptionFilter::Ssekms(
                    SsekmsFilter::builder()
                        .kms_key_arn("arn:aws:kms:us-east-1:111111111111:key/k")
                        .bucket_key_enabled(true)
                        .build(),
                ))
                .build(),
        )
        .build()
        .unwrap();
    // Every member but SSE-S3 beside SSE-KMS (a generated manifest's encryption is one of the two).
    assert_eq!(unset_members(&generator), 1, "every S3JobManifestGenerator member: {generator:?}");
    let generator = JobManifestGenerator::S3JobManifestGenerator(generator);
    let request = c
        .create_job()
        .account_id(A)
        .operation(tagging_op())
        .manifest_generator(generator.clone())
        .report(report.clone())
        .priority(1)
        .role_arn(ROLE);
    let id = request.send().await.unwrap().job_id.unwrap();
    let job = c.describe_job().account_id(A).job_id(&id).send().await.unwrap().job.unwrap();
    assert_eq!(job.manifest_generator(), Some(&generator));
}

/// The one operation a JobOperation holds, as its `Debug` text (for counting that operation's own unset members).
fn op_inner(op: &JobOperation) -> String {
    let text = format!("{op:?}");
    let start = text.find(": Some(").expect("one member is set") + ": Some(".len();
    let mut depth = 1;
    let mut end = start;
    for (i, ch) in text[start..].char_indices() {
        match ch {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            end = start + i;
            break;
        }
    }
    text[start..end].to_string()
}
