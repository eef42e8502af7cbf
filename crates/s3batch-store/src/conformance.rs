//! The tests every [`JobStore`] implementation must pass. Each is a plain async function over `&dyn JobStore`
//! on an empty store; an implementation's own test module calls them all (see `sqlite.rs` and `postgres.rs`).
//! The `concurrent_*` ones take two handles on the same database, as two processes of a fleet would hold (an
//! embedded store, which has one process, passes the same store twice).

use s3batch_core::{Event, JobSpec, JobStatus, Tag, Transition};

use crate::*;

/// Calls `$test!` with the name of every test of one store: each store's test module runs the suite through this,
/// so a test added here runs on both.
#[cfg(test)]
macro_rules! single_store_tests {
    ($test:ident) => {
        $test!(
            create_and_idempotency,
            status_compare_and_set,
            timers_and_dates,
            list_filter_and_paging,
            browse_filters_searches_and_counts,
            chunks_leases_and_commit,
            expired_leases_are_reclaimed,
            fenced_chunks_refuse_late_commits,
            claim_order_follows_priority,
            duty_lease,
            priority_tags_and_delete,
            singleton_lease,
            payload_chunks_and_open_preparing,
            rate_limit_and_job_controls,
            claims_of_one_job_and_chunk_samples,
            workers_register_beat_and_prune,
            events_record_creation_and_changes,
            user_pause_of_a_pausing_job_records_no_event,
            event_cursors_and_pruning,
        );
    };
}
#[cfg(test)]
pub(crate) use single_store_tests;

/// Calls `$test!` with the name of every test of two handles on one database (see the module's docs).
#[cfg(test)]
macro_rules! shared_store_tests {
    ($test:ident) => {
        $test!(
            concurrent_claims_are_exclusive,
            concurrent_duty_claims_have_one_winner,
            concurrent_creates_are_idempotent,
            concurrent_singleton_claims_have_one_winner,
            concurrent_events_are_read_without_gaps,
            concurrent_claims_and_fence_serialise,
        );
    };
}
#[cfg(test)]
pub(crate) use shared_store_tests;

/// The move `from` → `to`, along the first event that makes it (the store only takes moves the transition function
/// made).
pub fn mv(from: JobStatus, to: JobStatus) -> Transition {
    Event::ALL
        .into_iter()
        .filter_map(|e| Transition::new(from, e).ok())
        .find(|t| t.to() == to)
        .unwrap_or_else(|| panic!("no event moves a job from {from} to {to}"))
}

/// A minimal valid job for `account` with idempotency token `token`.
pub fn new_job(account: &str, token: &str) -> NewJob {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "Operation": {"S3PutObjectTagging": {"TagSet": [{"Key": "k", "Value": "v"}]}},
        "Manifest": {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                     "Location": {"ObjectArn": "arn:aws:s3:::mb/manifest.csv"}},
        "Report": {"Enabled": false},
        "Priority": 10,
    }))
    .expect("valid spec");
    NewJob {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: account.into(),
        client_request_token: token.into(),
        request_hash: "hash-1".into(),
        spec,
    }
}

async fn created(s: &dyn JobStore, account: &str, token: &str, now: i64) -> Job {
    match s.create_job(&new_job(account, token), now).await.unwrap() {
        CreateOutcome::Created(j) => j,
        CreateOutcome::Existing(_) => panic!("expected a new job"),
    }
}

/// Walk a job to Active with `lines` chunks of one line each.
async fn active_job(s: &dyn JobStore, account: &str, token: &str, chunks: i64, now: i64) -> Job {
    let j = created(s, account, token, now).await;
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), now)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_duty(&j.id, "prep", now, 1000).await.unwrap().is_applied());
    let cs: Vec<NewChunk> = (0..chunks)
        .map(|i| NewChunk {
            seq: i,
            start_offset: i * 10,
            end_offset: i * 10 + 10,
            first_line: i + 1,
            line_count: 1,
            payload: None,
        })
        .collect();
    assert!(s.insert_chunks(&j.id, "prep", &cs).await.unwrap().is_applied());
    assert!(
        s.finish_preparing(&j.id, "prep", chunks, "etag", mv(JobStatus::Preparing, JobStatus::Ready), now)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(
        s.update_status(&j.id, mv(JobStatus::Ready, JobStatus::Active), &StatusChange::default(), now)
            .await
            .unwrap()
            .is_applied()
    );
    s.get_job(None, &j.id).await.unwrap().unwrap()
}

pub async fn create_and_idempotency(s: &dyn JobStore) {
    let a = new_job("111111111111", "token-1");
    let first = s.create_job(&a, 1000).await.unwrap();
    let CreateOutcome::Created(job) = first else { panic!("first create must create") };
    assert_eq!(job.status, JobStatus::New);
    assert_eq!(job.created_at, 1000);
    assert_eq!(job.spec, a.spec);

    // Same token, same request: the same job, nothing new.
    let mut again = new_job("111111111111", "token-1");
    again.request_hash = a.request_hash.clone();
    match s.create_job(&again, 2000).await.unwrap() {
        CreateOutcome::Existing(j) => assert_eq!(j.id, job.id),
        CreateOutcome::Created(_) => panic!("a retry must not create a second job"),
    }
    // Same token, different request: refused.
    let mut other = new_job("111111111111", "token-1");
    other.request_hash = "hash-2".into();
    assert!(matches!(s.create_job(&other, 3000).await, Err(StoreError::IdempotencyMismatch(id)) if id == job.id));
    // Same token in another account: a separate job.
    assert!(matches!(
        s.create_job(&new_job("222222222222", "token-1"), 4000).await.unwrap(),
        CreateOutcome::Created(_)
    ));
    // Account scoping of reads.
    assert!(s.get_job(Some("111111111111"), &job.id).await.unwrap().is_some());
    assert!(s.get_job(Some("222222222222"), &job.id).await.unwrap().is_none());
    assert!(s.get_job(None, "no-such-job").await.unwrap().is_none());
}

pub async fn status_compare_and_set(s: &dyn JobStore) {
    let j = created(s, "111111111111", "t", 1).await;
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 2)
            .await
            .unwrap()
            .is_applied()
    );
    // The expected status is stale: nothing changes, and the status found is named.
    assert_eq!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Cancelling), &StatusChange::default(), 3).await.unwrap(),
        CasOutcome::Conflict { found: Some(JobStatus::Preparing) }
    );
    let now = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(now.status, JobStatus::Preparing);
    let change = StatusChange::default().failure("InvalidManifestContent", "line 3: bad escape");
    assert!(
        s.update_status(&j.id, mv(JobStatus::Preparing, JobStatus::Failing), &change, 4).await.unwrap().is_applied()
    );
    let change = StatusChange::default().reason(Some("why".into()));
    assert!(s.update_status(&j.id, mv(JobStatus::Failing, JobStatus::Failed), &change, 5).await.unwrap().is_applied());
    let done = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.terminated_at, Some(5));
    assert_eq!(done.status_update_reason.as_deref(), Some("why"));
    assert_eq!(done.failure_reasons.len(), 1);
    assert_eq!(done.failure_reasons[0].failure_code, "InvalidManifestContent");
    assert_eq!(
        s.update_status("missing", mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 6)
            .await
            .unwrap(),
        CasOutcome::NotFound
    );
}

pub async fn timers_and_dates(s: &dyn JobStore) {
    let j = created(s, "111111111111", "t", 0).await;
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 0)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_duty(&j.id, "p", 0, 100).await.unwrap().is_applied());
    assert!(
        s.finish_preparing(&j.id, "p", 0, "e", mv(JobStatus::Preparing, JobStatus::Suspended), 10)
            .await
            .unwrap()
            .is_applied()
    );
    let sus = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(sus.status, JobStatus::Suspended);
    assert_eq!(sus.suspended_at, Some(10));
    assert!(sus.suspended_cause.is_some());
    assert_eq!(sus.total_tasks, Some(0));
    assert!(
        s.update_status(&j.id, mv(JobStatus::Suspended, JobStatus::Ready), &StatusChange::default(), 20)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(
        s.update_status(&j.id, mv(JobStatus::Ready, JobStatus::Active), &StatusChange::default(), 1_000)
            .await
            .unwrap()
            .is_applied()
    );
    let act = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(act.suspended_at, None);
    assert_eq!(act.active_seconds(4_000), 3);
    assert!(
        s.update_status(&j.id, mv(JobStatus::Active, JobStatus::Pausing), &StatusChange::default(), 5_000)
            .await
            .unwrap()
            .is_applied()
    );
    let preempted = StatusChange::default().cause("preempted");
    assert!(
        s.update_status(&j.id, mv(JobStatus::Pausing, JobStatus::Paused), &preempted, 6_000)
            .await
            .unwrap()
            .is_applied()
    );
    let p = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(p.active_seconds(100_000), 4, "only time in Active counts");
    assert_eq!(p.suspended_cause.as_deref(), Some("preempted"));
    assert!(
        s.update_status(&j.id, mv(JobStatus::Paused, JobStatus::Active), &StatusChange::default(), 50_000)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(
        s.update_status(&j.id, mv(JobStatus::Active, JobStatus::Completing), &StatusChange::default(), 52_000)
            .await
            .unwrap()
            .is_applied()
    );
    let c = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(c.active_seconds(999_999), 6);
    assert_eq!(c.terminated_at, None);
}

pub async fn list_filter_and_paging(s: &dyn JobStore) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(created(s, "111111111111", &format!("t{i}"), 100 + i).await.id);
    }
    created(s, "222222222222", "x", 100).await;
    assert!(
        s.update_status(&ids[1], mv(JobStatus::New, JobStatus::Cancelling), &StatusChange::default(), 200)
            .await
            .unwrap()
            .is_applied()
    );
    let all = s.list_jobs("111111111111", &ListFilter { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.iter().map(|j| j.id.clone()).collect::<Vec<_>>(), ids.iter().rev().cloned().collect::<Vec<_>>());
    let page1 = s.list_jobs("111111111111", &ListFilter { limit: 2, ..Default::default() }).await.unwrap();
    assert_eq!(page1.len(), 2);
    let last = page1.last().unwrap();
    let page2 = s
        .list_jobs(
            "111111111111",
            &ListFilter { limit: 10, after: Some((last.created_at, last.id.clone())), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(page2.len(), 3);
    assert!(page2.iter().all(|j| !page1.iter().any(|p| p.id == j.id)));
    let cancelling = s
        .list_jobs(
            "111111111111",
            &ListFilter { statuses: vec![JobStatus::Cancelling], limit: 10, ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(cancelling.len(), 1);
    assert_eq!(cancelling[0].id, ids[1]);
    let new = s.jobs_in(&[JobStatus::New]).await.unwrap();
    assert_eq!(new.len(), 5, "jobs_in sees every account");

    // The scheduler's light view: the same jobs in the same order, each as its whole row says, a generator job
    // told from the others without reading its spec.
    let mut generated = new_job("222222222222", "gen");
    generated.spec.manifest = None;
    generated.spec.manifest_generator = Some(
        serde_json::from_value(serde_json::json!({"S3JobManifestGenerator": {
            "SourceBucket": "arn:aws:s3:::src", "EnableManifestOutput": false}}))
        .expect("a generator"),
    );
    s.create_job(&generated, 2_000).await.unwrap();
    let live = [JobStatus::New, JobStatus::Cancelling];
    let whole: Vec<JobState> = s.jobs_in(&live).await.unwrap().iter().map(JobState::of).collect();
    assert_eq!(s.job_states(&live).await.unwrap(), whole);
    assert_eq!(
        whole.iter().filter(|j| j.generated).map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [generated.id.as_str()]
    );
    assert!(s.job_states(&[]).await.unwrap().is_empty());
}

pub async fn browse_filters_searches_and_counts(s: &dyn JobStore) {
    let mut ids = Vec::new();
    for (i, (desc, priority)) in
        [("Copy photos", 5), ("tag LOGS 100%", 1), ("copy_logs", 9), ("Other", 5), ("old photos", 7)].iter().enumerate()
    {
        let mut new = new_job("111111111111", &format!("b{i}"));
        new.spec.description = Some(desc.to_string());
        new.spec.priority = *priority;
        let created = match s.create_job(&new, 1_000 + i as i64).await.unwrap() {
            CreateOutcome::Created(j) => j,
            CreateOutcome::Existing(_) => panic!("expected a new job"),
        };
        ids.push(created.id);
    }
    created(s, "222222222222", "other-account", 1_001).await;
    let no_change = StatusChange::default();
    let cancelled = s.update_status(&ids[3], mv(JobStatus::New, JobStatus::Cancelling), &no_change, 2_000).await;
    assert!(cancelled.unwrap().is_applied());
    let recent = Browse { created_after: 1_001, limit: 10, ..Default::default() };
    let page = |b: &Browse| {
        let b = b.clone();
        async move { s.browse_jobs("111111111111", &b).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>() }
    };
    // Newest first, the account's own, created in the window.
    assert_eq!(page(&recent).await, vec![ids[4].clone(), ids[3].clone(), ids[2].clone(), ids[1].clone()]);
    // Search: ASCII case ignored; `%` and `_` are literal.
    let search = |q: &str| Browse { search: Some(q.into()), ..recent.clone() };
    assert_eq!(page(&search("PHOTOS")).await, vec![ids[4].clone()]);
    assert_eq!(page(&search("logs")).await, vec![ids[2].clone(), ids[1].clone()]);
    assert_eq!(page(&search("100%")).await, vec![ids[1].clone()]);
    assert_eq!(page(&search("y_l")).await, vec![ids[2].clone()]);
    assert!(page(&search("y%l")).await.is_empty());
    assert_eq!(page(&search(&ids[3][4..12].to_uppercase())).await, vec![ids[3].clone()], "part of an id");
    // Statuses, order by priority, offset.
    let cancelling = Browse { statuses: vec![JobStatus::Cancelling], ..recent.clone() };
    assert_eq!(page(&cancelling).await, vec![ids[3].clone()]);
    let by_priority = Browse { by_priority: true, ..recent.clone() };
    assert_eq!(page(&by_priority).await, vec![ids[2].clone(), ids[4].clone(), ids[3].clone(), ids[1].clone()]);
    assert_eq!(page(&Browse { offset: 1, limit: 2, ..by_priority }).await, vec![ids[4].clone(), ids[3].clone()]);
    // Counts by status, whatever the status filter and page; the search applies.
    let mut counts = s.count_jobs("111111111111", &Browse { limit: 1, ..cancelling.clone() }).await.unwrap();
    counts.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(counts, vec![(JobStatus::Cancelling, 1), (JobStatus::New, 3)]);
    let counts = s.count_jobs("111111111111", &Browse { search: Some("logs".into()), ..recent }).await.unwrap();
    assert_eq!(counts, vec![(JobStatus::New, 2)]);
    let mut all = s.count_by_status().await.unwrap();
    all.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(all, vec![(JobStatus::Cancelling, 1), (JobStatus::New, 5)], "every account, every time");
}

pub async fn chunks_leases_and_commit(s: &dyn JobStore) {
    let j = active_job(s, "111111111111", "t", 3, 0).await;
    assert_eq!(j.total_tasks, Some(3));
    let c0 = s.claim_chunk("w1", 0, 1000).await.unwrap().unwrap();
    let c1 = s.claim_chunk("w2", 0, 1000).await.unwrap().unwrap();
    assert_ne!(c0.id, c1.id);
    assert_eq!(c0.attempts, 1);
    let counts = s.chunk_counts(&j.id, 0).await.unwrap();
    assert_eq!(counts, ChunkCounts { pending: 1, leased: 2, expired: 0, done: 0 });

    let r = ChunkResult {
        succeeded: 1,
        failed: 0,
        succeeded_rows: b"mb,k0,,succeeded,200,,Successful\n".to_vec(),
        ..Default::default()
    };
    // Someone else's lease: refused, nothing counted.
    assert_eq!(s.complete_chunk("w2", &c0.id, &r, 1).await.unwrap(), CasOutcome::Conflict { found: None });
    assert!(s.complete_chunk("w1", &c0.id, &r, 1).await.unwrap().is_applied());
    // Twice: refused, counted once.
    assert_eq!(s.complete_chunk("w1", &c0.id, &r, 1).await.unwrap(), CasOutcome::Conflict { found: None });
    let missing = ChunkId { job_id: j.id.clone(), seq: 99 };
    assert_eq!(s.complete_chunk("w1", &missing, &r, 1).await.unwrap(), CasOutcome::NotFound);
    let job = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((job.succeeded, job.failed), (1, 0));

    // Heartbeats renew only the caller's leases.
    let renewed = s.heartbeat("w2", &[c0.id.clone(), c1.id.clone()], 500, 1000).await.unwrap();
    assert_eq!(renewed, vec![c1.id.clone()]);
    // Released chunks go back to pending.
    s.release_chunk("w2", &c1.id).await.unwrap();
    assert_eq!(s.chunk_counts(&j.id, 500).await.unwrap().pending, 2);

    let rows = s.chunk_results(&j.id, -1, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, c0.id.seq);
    assert_eq!(rows[0].succeeded_rows, r.succeeded_rows);
    assert!(rows[0].failed_rows.is_empty());

    // Nothing to claim from jobs that are not Active.
    assert!(
        s.update_status(&j.id, mv(JobStatus::Active, JobStatus::Pausing), &StatusChange::default(), 600)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_chunk("w3", 600, 1000).await.unwrap().is_none());
}

pub async fn expired_leases_are_reclaimed(s: &dyn JobStore) {
    let j = active_job(s, "111111111111", "t", 1, 0).await;
    let c = s.claim_chunk("dead", 0, 1000).await.unwrap().unwrap();
    assert!(s.claim_chunk("w2", 999, 1000).await.unwrap().is_none(), "lease still held");
    assert_eq!(s.chunk_counts(&j.id, 1001).await.unwrap().expired, 1);
    let again = s.claim_chunk("w2", 1001, 1000).await.unwrap().unwrap();
    assert_eq!(again.id, c.id);
    assert_eq!(again.attempts, 2);
    let r = ChunkResult { succeeded: 1, ..Default::default() };
    assert!(!s.complete_chunk("dead", &c.id, &r, 1002).await.unwrap().is_applied(), "the dead worker lost its lease");
    assert!(s.heartbeat("dead", std::slice::from_ref(&c.id), 1002, 1000).await.unwrap().is_empty());
    assert!(s.complete_chunk("w2", &c.id, &r, 1002).await.unwrap().is_applied());
    assert_eq!(s.get_job(None, &j.id).await.unwrap().unwrap().succeeded, 1);
}

pub async fn fenced_chunks_refuse_late_commits(s: &dyn JobStore) {
    let j = active_job(s, "111111111111", "t", 2, 0).await;
    let stalled = s.claim_chunk("stalled", 0, 1000).await.unwrap().unwrap();
    let r = ChunkResult { succeeded: 1, ..Default::default() };
    let done = s.claim_chunk("w", 0, 1000).await.unwrap().unwrap();
    assert!(s.complete_chunk("w", &done.id, &r, 1).await.unwrap().is_applied());
    assert!(
        s.update_status(&j.id, mv(JobStatus::Active, JobStatus::Cancelling), &StatusChange::default(), 2)
            .await
            .unwrap()
            .is_applied()
    );
    assert_eq!(s.fence_chunks(&j.id).await.unwrap(), 1);
    assert!(
        !s.complete_chunk("stalled", &stalled.id, &r, 5000).await.unwrap().is_applied(),
        "fenced: the late commit is refused"
    );
    assert!(s.heartbeat("stalled", std::slice::from_ref(&stalled.id), 5000, 1000).await.unwrap().is_empty());
    let job = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(job.succeeded, 1, "only the chunk committed before the fence counts");
    assert_eq!(s.chunk_results(&j.id, -1, 10).await.unwrap().len(), 1);
}

pub async fn claim_order_follows_priority(s: &dyn JobStore) {
    let low = active_job(s, "111111111111", "low", 2, 0).await;
    let high = active_job(s, "111111111111", "high", 2, 10).await;
    assert!(s.set_priority("111111111111", &high.id, 99, 20).await.unwrap().is_applied());
    let c = s.claim_chunk("w", 30, 1000).await.unwrap().unwrap();
    assert_eq!(c.id.job_id, high.id);
    assert_eq!(c.id.seq, 0);
    let c = s.claim_chunk("w", 30, 1000).await.unwrap().unwrap();
    assert_eq!((c.id.job_id.as_str(), c.id.seq), (high.id.as_str(), 1));
    let c = s.claim_chunk("w", 30, 1000).await.unwrap().unwrap();
    assert_eq!(c.id.job_id, low.id);
}

pub async fn duty_lease(s: &dyn JobStore) {
    let j = created(s, "111111111111", "t", 0).await;
    assert!(s.claim_duty(&j.id, "a", 0, 100).await.unwrap().is_applied());
    assert_eq!(s.claim_duty(&j.id, "b", 50, 100).await.unwrap(), CasOutcome::Conflict { found: Some(JobStatus::New) });
    assert_eq!(s.claim_duty("missing", "b", 50, 100).await.unwrap(), CasOutcome::NotFound);
    assert!(s.claim_duty(&j.id, "a", 50, 100).await.unwrap().is_applied(), "the holder renews");
    assert!(!s.insert_chunks(&j.id, "b", &[]).await.unwrap().is_applied());
    assert!(s.claim_duty(&j.id, "b", 151, 100).await.unwrap().is_applied(), "expired: taken over");
    assert!(!s.insert_chunks(&j.id, "a", &[]).await.unwrap().is_applied());
    s.release_duty(&j.id, "b").await.unwrap();
    assert!(s.claim_duty(&j.id, "c", 152, 100).await.unwrap().is_applied());
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 153)
            .await
            .unwrap()
            .is_applied()
    );
    assert_eq!(
        s.finish_preparing(&j.id, "a", 0, "e", mv(JobStatus::Preparing, JobStatus::Ready), 154).await.unwrap(),
        CasOutcome::Conflict { found: Some(JobStatus::Preparing) },
        "the duty lease is c's"
    );
    assert!(
        s.finish_preparing(&j.id, "c", 0, "e", mv(JobStatus::Preparing, JobStatus::Ready), 154)
            .await
            .unwrap()
            .is_applied()
    );
}

pub async fn priority_tags_and_delete(s: &dyn JobStore) {
    let j = active_job(s, "111111111111", "t", 2, 0).await;
    assert_eq!(
        s.set_priority("222222222222", &j.id, 5, 1).await.unwrap(),
        CasOutcome::NotFound,
        "other accounts cannot"
    );
    assert!(s.set_priority("111111111111", &j.id, 5, 1).await.unwrap().is_applied());
    let tags = vec![Tag::new("team", "data"), Tag::new("env", "ci")];
    assert!(s.set_tags("111111111111", &j.id, &tags, 2).await.unwrap().is_applied());
    let got = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((got.priority, got.tags), (5, tags));
    assert_eq!(s.set_tags("111111111111", "missing", &[], 2).await.unwrap(), CasOutcome::NotFound);
    s.set_report_key(&j.id, "reports/job-x/manifest.json").await.unwrap();
    assert_eq!(
        s.get_job(None, &j.id).await.unwrap().unwrap().report_key.as_deref(),
        Some("reports/job-x/manifest.json")
    );
    s.delete_job(&j.id).await.unwrap();
    assert!(s.get_job(None, &j.id).await.unwrap().is_none());
    assert_eq!(s.chunk_counts(&j.id, 3).await.unwrap(), ChunkCounts::default());
}

/// Claimers on two handles, claiming and committing at once, each until nothing is left: no chunk goes to two of
/// them, every chunk is claimed once, and the job's counters equal the chunks committed.
pub async fn concurrent_claims_are_exclusive(a: &dyn JobStore, b: &dyn JobStore) {
    const CHUNKS: i64 = 90;
    let j = active_job(a, "111111111111", "t", CHUNKS, 0).await;

    async fn claim_until_empty(s: &dyn JobStore, owner: &str) -> Vec<ChunkId> {
        let mut got = Vec::new();
        while let Some(c) = s.claim_chunk(owner, 10, 60_000).await.unwrap() {
            assert_eq!(c.attempts, 1, "{owner} claimed {:?}, which was claimed before", c.id);
            let r = ChunkResult { succeeded: 1, ..Default::default() };
            assert!(
                s.complete_chunk(owner, &c.id, &r, 11).await.unwrap().is_applied(),
                "{owner} lost the lease on {:?}",
                c.id
            );
            got.push(c.id);
        }
        got
    }
    let (a1, a2, a3, b1, b2, b3) = tokio::join!(
        claim_until_empty(a, "a1"),
        claim_until_empty(a, "a2"),
        claim_until_empty(a, "a3"),
        claim_until_empty(b, "b1"),
        claim_until_empty(b, "b2"),
        claim_until_empty(b, "b3"),
    );
    let mut all: Vec<i64> = [a1, a2, a3, b1, b2, b3].into_iter().flatten().map(|c| c.seq).collect();
    all.sort_unstable();
    assert_eq!(all, (0..CHUNKS).collect::<Vec<_>>(), "every chunk claimed exactly once");
    let job = b.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((job.succeeded, job.failed), (CHUNKS, 0));
    assert_eq!(b.chunk_counts(&j.id, 12).await.unwrap(), ChunkCounts { done: CHUNKS, ..Default::default() });
}

/// Claimers on two handles racing the finisher of a job that leaves Active (the status write, then the fence, as
/// the engine's `finish` does): a claim lands before the status write, and the fence takes its lease away, or finds
/// the job no longer Active and claims nothing. No chunk may be leased after the fence: its commit would add results
/// after the report was read. Each claim walks many Active jobs that have nothing to claim before it reaches the
/// target (they rank higher), so its statement runs long enough for the status write and the fence to fall in the
/// middle of it.
pub async fn concurrent_claims_and_fence_serialise(a: &dyn JobStore, b: &dyn JobStore) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const FILLERS: usize = 200;
    const ROUNDS: usize = 8;
    const CHUNKS: i64 = 200;
    for i in 0..FILLERS {
        let f = active_job(a, "111111111111", &format!("filler-{i}"), 0, 0).await;
        assert!(a.set_priority("111111111111", &f.id, 99, 0).await.unwrap().is_applied());
    }

    async fn claim(
        s: &dyn JobStore,
        owner: &str,
        of: Option<&str>,
        claimed: &AtomicUsize,
        stop: &AtomicBool,
    ) -> Vec<ChunkId> {
        let mut got = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let c = match of {
                Some(job) => s.claim_chunk_of(owner, job, 10, 60_000).await.unwrap(),
                None => s.claim_chunk(owner, 10, 60_000).await.unwrap(),
            };
            match c {
                Some(c) => {
                    claimed.fetch_add(1, Ordering::SeqCst);
                    got.push(c.id);
                }
                None => tokio::task::yield_now().await,
            }
        }
        got
    }
    async fn finish(s: &dyn JobStore, job: &str, claimed: &AtomicUsize, stop: &AtomicBool) -> u64 {
        while claimed.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        let t = mv(JobStatus::Active, JobStatus::Cancelling);
        assert!(s.update_status(job, t, &StatusChange::default(), 20).await.unwrap().is_applied());
        let fenced = s.fence_chunks(job).await.unwrap();
        // Let the claims in flight land (or not) before the check.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.store(true, Ordering::SeqCst);
        fenced
    }

    for round in 0..ROUNDS {
        let j = active_job(a, "111111111111", &format!("target-{round}"), CHUNKS, 0).await;
        let (claimed, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
        let (c1, c2, c3, c4, fenced) = tokio::join!(
            claim(a, "a1", None, &claimed, &stop),
            claim(b, "b1", None, &claimed, &stop),
            claim(a, "a2", Some(&j.id), &claimed, &stop),
            claim(b, "b2", Some(&j.id), &claimed, &stop),
            finish(b, &j.id, &claimed, &stop),
        );
        let got: Vec<(&str, ChunkId)> = [("a1", c1), ("b1", c2), ("a2", c3), ("b2", c4)]
            .into_iter()
            .flat_map(|(owner, ids)| ids.into_iter().map(move |id| (owner, id)))
            .collect();
        let counts = a.chunk_counts(&j.id, 30).await.unwrap();
        assert_eq!(
            (counts.leased, counts.expired),
            (0, 0),
            "round {round}: a chunk was leased after the fence ({} claimed, {fenced} fenced): {counts:?}",
            got.len()
        );
        assert_eq!(fenced, got.len() as u64, "round {round}: every claim landed before the fence");
        let r = ChunkResult { succeeded: 1, ..Default::default() };
        for (owner, id) in &got {
            assert!(
                !a.complete_chunk(owner, id, &r, 40).await.unwrap().is_applied(),
                "round {round}: {id:?} committed"
            );
        }
        assert_eq!(a.get_job(None, &j.id).await.unwrap().unwrap().succeeded, 0);
    }
}

/// Processes racing for a job's duty lease, free and then expired: exactly one wins each time.
pub async fn concurrent_duty_claims_have_one_winner(a: &dyn JobStore, b: &dyn JobStore) {
    let j = created(a, "111111111111", "t", 0).await;
    // The second round starts after the first winner's lease (100 ms) ran out.
    for (round, now) in [(0, 0), (1, 1_000)] {
        let o: Vec<String> = (0..6).map(|i| format!("p{round}-{i}")).collect();
        let won = tokio::join!(
            a.claim_duty(&j.id, &o[0], now, 100),
            b.claim_duty(&j.id, &o[1], now, 100),
            a.claim_duty(&j.id, &o[2], now, 100),
            b.claim_duty(&j.id, &o[3], now, 100),
            a.claim_duty(&j.id, &o[4], now, 100),
            b.claim_duty(&j.id, &o[5], now, 100),
        );
        let won = [won.0, won.1, won.2, won.3, won.4, won.5].map(|w| w.unwrap().is_applied());
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}: {won:?}");
        for (owner, won) in o.iter().zip(won) {
            assert_eq!(
                a.insert_chunks(&j.id, owner, &[]).await.unwrap().is_applied(),
                won,
                "round {round}: {owner} holds it?"
            );
        }
    }
}

/// The same CreateJob request arriving at several processes at once: one job.
pub async fn concurrent_creates_are_idempotent(a: &dyn JobStore, b: &dyn JobStore) {
    let req = new_job("111111111111", "token-1");
    let (r1, r2, r3, r4) =
        tokio::join!(a.create_job(&req, 1), b.create_job(&req, 1), a.create_job(&req, 1), b.create_job(&req, 1),);
    let outcomes = [r1, r2, r3, r4].map(Result::unwrap);
    let created = outcomes.iter().filter(|o| matches!(o, CreateOutcome::Created(_))).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o.job().id == req.id));
    let listed = a.list_jobs("111111111111", &ListFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(listed.len(), 1);
}

pub async fn singleton_lease(s: &dyn JobStore) {
    assert_eq!(s.singleton_owner("scheduler", 0).await.unwrap(), None);
    assert!(s.claim_singleton("scheduler", "a", 0, 100).await.unwrap().is_applied(), "free: taken");
    assert_eq!(
        s.claim_singleton("scheduler", "b", 50, 100).await.unwrap(),
        CasOutcome::Conflict { found: None },
        "held"
    );
    assert!(s.claim_singleton("other", "b", 50, 100).await.unwrap().is_applied(), "another name is another lease");
    assert!(s.claim_singleton("scheduler", "a", 90, 100).await.unwrap().is_applied(), "the holder renews");
    assert_eq!(s.singleton_owner("scheduler", 150).await.unwrap().as_deref(), Some("a"));
    assert!(!s.claim_singleton("scheduler", "b", 190, 100).await.unwrap().is_applied(), "renewed until 190");
    assert_eq!(s.singleton_owner("scheduler", 191).await.unwrap(), None, "expired: nobody holds it");
    assert!(s.claim_singleton("scheduler", "b", 191, 100).await.unwrap().is_applied(), "expired: taken over");
    assert!(!s.claim_singleton("scheduler", "a", 192, 100).await.unwrap().is_applied(), "the old holder lost it");
    s.release_singleton("scheduler", "a").await.unwrap();
    assert_eq!(s.singleton_owner("scheduler", 193).await.unwrap().as_deref(), Some("b"), "only the holder releases");
    s.release_singleton("scheduler", "b").await.unwrap();
    assert_eq!(s.singleton_owner("scheduler", 194).await.unwrap(), None);
    assert!(s.claim_singleton("scheduler", "c", 195, 100).await.unwrap().is_applied(), "released: taken at once");
    assert_eq!(s.singleton_owner("other", 100).await.unwrap().as_deref(), Some("b"));
}

pub async fn workers_register_beat_and_prune(s: &dyn JobStore) {
    let worker = |id: &str, started: i64| Worker {
        id: id.into(),
        host: "host-1".into(),
        pid: 4242,
        role: "worker".into(),
        started_at: started,
        heartbeat_at: started,
        chunks_in_flight: 0,
        lease_ms: 1000,
        draining: false,
    };
    assert!(s.list_workers().await.unwrap().is_empty());
    s.register_worker(&worker("w2", 20)).await.unwrap();
    s.register_worker(&worker("w1", 10)).await.unwrap();
    let listed = s.list_workers().await.unwrap();
    assert_eq!(listed, vec![worker("w1", 10), worker("w2", 20)], "oldest first");

    assert!(s.worker_heartbeat("w1", 3, false, 500).await.unwrap().is_applied());
    assert_eq!(
        s.worker_heartbeat("nobody", 3, false, 500).await.unwrap(),
        CasOutcome::NotFound,
        "unknown workers must register again"
    );
    let w1 = s.list_workers().await.unwrap().remove(0);
    assert_eq!((w1.heartbeat_at, w1.chunks_in_flight, w1.started_at), (500, 3, 10));
    assert_eq!(w1.state(500 + LOST_AFTER_LEASES * 1000), WorkerState::Running);
    assert_eq!(w1.state(501 + LOST_AFTER_LEASES * 1000), WorkerState::Lost);

    assert!(s.worker_heartbeat("w1", 1, true, 600).await.unwrap().is_applied());
    let w1 = s.list_workers().await.unwrap().remove(0);
    assert!(w1.draining);
    assert_eq!(w1.state(700), WorkerState::Draining);
    assert_eq!(w1.state(10_000), WorkerState::Lost, "a draining worker that stops beating is lost too");

    // Registering again under a known id replaces the row (a worker pruned while cut off comes back).
    let mut again = worker("w2", 700);
    again.pid = 7;
    s.register_worker(&again).await.unwrap();
    let listed = s.list_workers().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], again);

    // w1 beat last at 600, w2 at 700.
    assert_eq!(s.prune_workers(600).await.unwrap(), 0, "strictly older only");
    assert_eq!(s.prune_workers(650).await.unwrap(), 1);
    assert_eq!(s.list_workers().await.unwrap().iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), vec!["w2"]);
    s.deregister_worker("w2").await.unwrap();
    s.deregister_worker("w2").await.unwrap();
    assert!(s.list_workers().await.unwrap().is_empty());
}

/// Processes racing for the scheduler's singleton lease, free and then expired: exactly one wins each time, and
/// the winner is the one the store names.
pub async fn concurrent_singleton_claims_have_one_winner(a: &dyn JobStore, b: &dyn JobStore) {
    for (round, now) in [(0, 0), (1, 1_000)] {
        let o: Vec<String> = (0..6).map(|i| format!("p{round}-{i}")).collect();
        let won = tokio::join!(
            a.claim_singleton("scheduler", &o[0], now, 100),
            b.claim_singleton("scheduler", &o[1], now, 100),
            a.claim_singleton("scheduler", &o[2], now, 100),
            b.claim_singleton("scheduler", &o[3], now, 100),
            a.claim_singleton("scheduler", &o[4], now, 100),
            b.claim_singleton("scheduler", &o[5], now, 100),
        );
        let won = [won.0, won.1, won.2, won.3, won.4, won.5].map(|w| w.unwrap().is_applied());
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "round {round}: {won:?}");
        let winner = o.iter().zip(won).find(|(_, w)| *w).map(|(o, _)| o.clone());
        assert_eq!(b.singleton_owner("scheduler", now).await.unwrap(), winner, "round {round}");
    }
}

/// Chunks that carry their lines, and a preparer that opens the job while it still lists.
pub async fn payload_chunks_and_open_preparing(s: &dyn JobStore) {
    let j = created(s, "111111111111", "payload", 1000).await;
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 1000)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_duty(&j.id, "prep", 1000, 60_000).await.unwrap().is_applied());
    assert!(s.last_chunk(&j.id).await.unwrap().is_none());
    let chunk = |seq: i64, lines: &[u8]| NewChunk {
        seq,
        start_offset: 0,
        end_offset: lines.len() as i64,
        first_line: seq * 2 + 1,
        line_count: 2,
        payload: Some(lines.to_vec()),
    };
    assert!(s.insert_chunks(&j.id, "prep", &[chunk(0, b"b,k1,\nb,k2,\n")]).await.unwrap().is_applied());
    // Not the preparer: refused.
    assert!(
        !s.open_preparing(&j.id, "other", mv(JobStatus::Preparing, JobStatus::Ready), 1100).await.unwrap().is_applied()
    );
    assert!(
        s.open_preparing(&j.id, "prep", mv(JobStatus::Preparing, JobStatus::Ready), 1100).await.unwrap().is_applied()
    );
    let got = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.total_tasks), (JobStatus::Ready, None));
    // The duty lease stays with the preparer, which goes on recording chunks.
    assert!(!s.claim_duty(&j.id, "other", 1200, 60_000).await.unwrap().is_applied());
    assert!(s.insert_chunks(&j.id, "prep", &[chunk(1, b"b,k3,v1\nb,k4,\n")]).await.unwrap().is_applied());
    assert!(
        s.update_status(&j.id, mv(JobStatus::Ready, JobStatus::Active), &StatusChange::default(), 1300)
            .await
            .unwrap()
            .is_applied()
    );
    let c = s.claim_chunk("w", 1400, 1000).await.unwrap().expect("a chunk");
    assert_eq!((c.id.seq, c.payload.as_deref()), (0, Some(&b"b,k1,\nb,k2,\n"[..])));
    let last = s.last_chunk(&j.id).await.unwrap().expect("the last chunk");
    assert_eq!((last.id.seq, last.first_line, last.line_count), (1, 3, 2));
    assert_eq!(last.payload.as_deref(), Some(&b"b,k3,v1\nb,k4,\n"[..]));
    let payloads = s.chunk_payloads(&j.id, 0, 10).await.unwrap();
    assert_eq!(payloads, vec![(1, b"b,k3,v1\nb,k4,\n".to_vec())]);
    assert_eq!(s.chunk_payloads(&j.id, -1, 1).await.unwrap().len(), 1);
    assert!(!s.finish_listing(&j.id, "other", 4, 1500).await.unwrap().is_applied());
    assert!(s.finish_listing(&j.id, "prep", 4, 1500).await.unwrap().is_applied());
    assert!(!s.finish_listing(&j.id, "prep", 5, 1500).await.unwrap().is_applied(), "the total is set once");
    let got = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((got.status, got.total_tasks), (JobStatus::Active, Some(4)));
    s.set_generated_manifest(&j.id, "{\"Format\":\"S3InventoryReport_CSV_20211130\"}").await.unwrap();
    let got = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!(got.generated_manifest.as_deref(), Some("{\"Format\":\"S3InventoryReport_CSV_20211130\"}"));
    // A byte-range chunk has no payload.
    let plain = active_job(s, "111111111111", "plain", 1, 2000).await;
    let c = loop {
        let c = s.claim_chunk("w", 2100, 1000).await.unwrap().expect("a chunk");
        if c.id.job_id == plain.id {
            break c;
        }
    };
    assert_eq!(c.payload, None);
}

/// Every job creation and every status change records one event, in the transaction of the change; a replayed
/// create, a refused compare-and-set and a change that keeps the status record none.
pub async fn events_record_creation_and_changes(s: &dyn JobStore) {
    assert!(s.events_after(0, 100).await.unwrap().is_empty());
    let req = new_job("111111111111", "t");
    let CreateOutcome::Created(j) = s.create_job(&req, 10).await.unwrap() else { panic!("a new job") };
    assert!(matches!(s.create_job(&req, 11).await.unwrap(), CreateOutcome::Existing(_)));
    assert_eq!(
        s.update_status(&j.id, mv(JobStatus::Ready, JobStatus::Active), &StatusChange::default(), 12).await.unwrap(),
        CasOutcome::Conflict { found: Some(JobStatus::New) }
    );
    assert!(
        s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 13)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_duty(&j.id, "prep", 13, 1000).await.unwrap().is_applied());
    assert!(
        s.finish_preparing(&j.id, "prep", 3, "etag", mv(JobStatus::Preparing, JobStatus::Suspended), 14)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(
        !s.finish_preparing(&j.id, "prep", 3, "etag", mv(JobStatus::Preparing, JobStatus::Suspended), 14)
            .await
            .unwrap()
            .is_applied()
    );
    let confirm = StatusChange::default().reason(Some("looks right".into()));
    assert!(
        s.update_status(&j.id, mv(JobStatus::Suspended, JobStatus::Ready), &confirm, 15).await.unwrap().is_applied()
    );
    assert!(
        s.update_status(&j.id, mv(JobStatus::Ready, JobStatus::Active), &StatusChange::default(), 16)
            .await
            .unwrap()
            .is_applied()
    );
    let fail = StatusChange::default().failure("TaskFailureThresholdExceeded", "too many failed");
    assert!(s.update_status(&j.id, mv(JobStatus::Active, JobStatus::Failing), &fail, 17).await.unwrap().is_applied());
    assert!(
        s.update_status(&j.id, mv(JobStatus::Failing, JobStatus::Failed), &StatusChange::default(), 18)
            .await
            .unwrap()
            .is_applied()
    );
    // Another job's creation, in another account.
    let other = created(s, "222222222222", "t", 19).await;

    let evs = s.events_after(0, 100).await.unwrap();
    let got: Vec<(&str, &str, Option<JobStatus>, JobStatus, i64)> =
        evs.iter().map(|e| (e.account_id.as_str(), e.name.as_str(), e.from, e.to, e.time)).collect();
    use JobStatus::*;
    let a = "111111111111";
    assert_eq!(
        got,
        vec![
            (a, JOB_CREATED, None, New, 10),
            (a, JOB_STATUS_CHANGED, Some(New), Preparing, 13),
            (a, JOB_STATUS_CHANGED, Some(Preparing), Suspended, 14),
            (a, JOB_STATUS_CHANGED, Some(Suspended), Ready, 15),
            (a, JOB_STATUS_CHANGED, Some(Ready), Active, 16),
            (a, JOB_STATUS_CHANGED, Some(Active), Failing, 17),
            (a, JOB_STATUS_CHANGED, Some(Failing), Failed, 18),
            ("222222222222", JOB_CREATED, None, New, 19),
        ]
    );
    assert!(evs[..7].iter().all(|e| e.job_id == j.id));
    assert_eq!(evs[7].job_id, other.id);
    let reasons: Vec<Option<&str>> = evs.iter().map(|e| e.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [None, None, Some("AwaitingConfirmation"), Some("looks right"), None, Some("too many failed"), None, None]
    );
    let codes: Vec<usize> = evs.iter().map(|e| e.failure_codes.len()).collect();
    assert_eq!(codes, [0, 0, 0, 0, 0, 1, 1, 0], "the job's failure codes as of each change");
    assert_eq!(evs[6].failure_codes, ["TaskFailureThresholdExceeded"]);
    assert!(evs.windows(2).all(|w| w[0].seq < w[1].seq), "seqs increase");
    let ids: std::collections::HashSet<&str> = evs.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), evs.len(), "event ids are unique");
    assert!(evs.iter().all(|e| uuid::Uuid::parse_str(&e.event_id).is_ok()));
    assert!(evs.iter().all(|e| e.job_event_id.len() == 32 && e.job_event_id.bytes().all(|b| b.is_ascii_hexdigit())));

    // One job's events: its status history.
    assert_eq!(s.job_events(&j.id, 100).await.unwrap(), evs[..7]);
    assert_eq!(s.job_events(&j.id, 2).await.unwrap(), evs[..2]);
    assert_eq!(s.job_events(&other.id, 100).await.unwrap(), evs[7..]);

    assert!(s.job_events("no-such-job", 100).await.unwrap().is_empty());

    // Paging with a cursor gives the same events.
    let first = s.events_after(0, 3).await.unwrap();
    assert_eq!(first, evs[..3]);
    assert_eq!(s.events_after(first[2].seq, 100).await.unwrap(), evs[3..]);
    assert!(s.events_after(evs[7].seq, 100).await.unwrap().is_empty());
    // A deleted job's events stay (the audit trail outlives the job).
    s.delete_job(&other.id).await.unwrap();
    assert_eq!(s.events_after(0, 100).await.unwrap().len(), 8);
}

/// A user's pause of a job already pausing keeps its status (the transition leads back to it): the pause and the
/// reason are written, and no event is recorded, as for any write that is not a status change.
pub async fn user_pause_of_a_pausing_job_records_no_event(s: &dyn JobStore) {
    let p = active_job(s, "111111111111", "paused", 1, 20).await;
    let pause = |r: &str| StatusChange::default().reason(Some(r.into())).user_paused(true);
    let to_pausing = Transition::new(JobStatus::Active, Event::UserPause).unwrap();
    assert!(s.update_status(&p.id, to_pausing, &pause("first"), 21).await.unwrap().is_applied());
    let before = s.job_events(&p.id, 100).await.unwrap().len();
    let again = Transition::new(JobStatus::Pausing, Event::UserPause).unwrap();
    assert!(s.update_status(&p.id, again, &pause("again"), 22).await.unwrap().is_applied());
    assert_eq!(s.job_events(&p.id, 100).await.unwrap().len(), before, "no status change, no event");
    let got = s.get_job(None, &p.id).await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.user_paused, got.status_update_reason.as_deref()),
        (JobStatus::Pausing, true, Some("again"))
    );
}

/// Sinks' cursors only move forward, each on its own; pruning removes only events both delivered (seq) and old
/// (time), and a seq is never handed out again, even once every event was pruned.
pub async fn event_cursors_and_pruning(s: &dyn JobStore) {
    assert_eq!(s.event_cursor("audit").await.unwrap(), None);
    for (i, t) in [100, 200, 300].into_iter().enumerate() {
        created(s, "111111111111", &format!("t{i}"), t).await;
    }
    let evs = s.events_after(0, 10).await.unwrap();
    let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 3);

    s.advance_event_cursor("audit", seqs[1], 1).await.unwrap();
    assert_eq!(s.event_cursor("audit").await.unwrap(), Some(seqs[1]));
    s.advance_event_cursor("audit", seqs[0], 2).await.unwrap();
    assert_eq!(s.event_cursor("audit").await.unwrap(), Some(seqs[1]), "a cursor never moves back");
    assert_eq!(s.event_cursor("webhook:http://x/").await.unwrap(), None);
    s.advance_event_cursor("webhook:http://x/", seqs[2], 3).await.unwrap();
    assert_eq!(s.event_cursor("webhook:http://x/").await.unwrap(), Some(seqs[2]));
    assert_eq!(s.event_cursor("audit").await.unwrap(), Some(seqs[1]));

    // Delivered everywhere up to seqs[2], but only the first two are older than 250.
    assert_eq!(s.prune_events(seqs[2], 250).await.unwrap(), 2);
    assert_eq!(s.events_after(0, 10).await.unwrap(), evs[2..]);
    // Old enough but not delivered: kept.
    assert_eq!(s.prune_events(seqs[1], 1_000).await.unwrap(), 0);
    assert_eq!(s.prune_events(seqs[2], 1_000).await.unwrap(), 1);
    assert!(s.events_after(0, 10).await.unwrap().is_empty());

    created(s, "111111111111", "t3", 400).await;
    let next = s.events_after(0, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].seq > seqs[2], "seq {} handed out again", next[0].seq);
}

/// Writers on two handles creating and changing jobs at once while a reader follows the events with a cursor, as
/// the dispatcher does: the reader sees every event exactly once and in seq order. It would miss some if a seq
/// could commit after a greater one (the reader would have moved its cursor past it).
pub async fn concurrent_events_are_read_without_gaps(a: &dyn JobStore, b: &dyn JobStore) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const JOBS: usize = 15;
    const WRITERS: usize = 4;
    let finished = AtomicUsize::new(0);

    async fn write(s: &dyn JobStore, name: &str, finished: &AtomicUsize) {
        for i in 0..JOBS {
            let j = created(s, "111111111111", &format!("{name}-{i}"), 1).await;
            assert!(
                s.update_status(&j.id, mv(JobStatus::New, JobStatus::Preparing), &StatusChange::default(), 2)
                    .await
                    .unwrap()
                    .is_applied()
            );
            assert!(
                s.update_status(&j.id, mv(JobStatus::Preparing, JobStatus::Failing), &StatusChange::default(), 3)
                    .await
                    .unwrap()
                    .is_applied()
            );
        }
        finished.fetch_add(1, Ordering::SeqCst);
    }
    async fn follow(s: &dyn JobStore, finished: &AtomicUsize) -> Vec<JobEventRecord> {
        let mut seen: Vec<JobEventRecord> = Vec::new();
        let mut cursor = 0;
        loop {
            let done = finished.load(Ordering::SeqCst) == WRITERS;
            let page = s.events_after(cursor, 5).await.unwrap();
            if page.is_empty() {
                if done {
                    return seen;
                }
                tokio::task::yield_now().await;
                continue;
            }
            for e in page {
                assert!(e.seq > cursor, "seq {} after cursor {cursor}", e.seq);
                cursor = e.seq;
                seen.push(e);
            }
        }
    }
    let (_, _, _, _, seen) = tokio::join!(
        write(a, "a1", &finished),
        write(b, "b1", &finished),
        write(a, "a2", &finished),
        write(b, "b2", &finished),
        follow(b, &finished),
    );
    let all = a.events_after(0, 10_000).await.unwrap();
    assert_eq!(all.len(), WRITERS * JOBS * 3);
    assert_eq!(seen.len(), all.len(), "the reader missed events");
    assert_eq!(seen, all);
}

pub async fn rate_limit_and_job_controls(s: &dyn JobStore) {
    // Set at creation from the spec.
    let mut new = new_job("111111111111", "rl-1");
    new.spec.rate_limit = Some(50);
    let CreateOutcome::Created(j) = s.create_job(&new, 1000).await.unwrap() else { panic!("created") };
    assert_eq!(j.rate_limit, Some(50));
    assert_eq!(
        s.job_controls(&j.id, 1000).await.unwrap(),
        Some(JobControls { rate_limit: Some(50), lease_holders: 0 })
    );
    // Changed and removed by its account only.
    assert!(s.set_rate_limit("111111111111", &j.id, Some(7), 2000).await.unwrap().is_applied());
    assert!(!s.set_rate_limit("222222222222", &j.id, Some(9), 2000).await.unwrap().is_applied());
    assert_eq!(s.get_job(None, &j.id).await.unwrap().unwrap().rate_limit, Some(7));
    assert!(s.set_rate_limit("111111111111", &j.id, None, 3000).await.unwrap().is_applied());
    let got = s.get_job(None, &j.id).await.unwrap().unwrap();
    assert_eq!((got.rate_limit, got.updated_at), (None, 3000));
    assert_eq!(s.job_controls("no-such-job", 1000).await.unwrap(), None);
    // No limit by default.
    assert_eq!(created(s, "111111111111", "rl-2", 1000).await.rate_limit, None);

    // Lease holders: distinct workers with live leases.
    let a = active_job(s, "111111111111", "rl-3", 4, 1000).await;
    assert!(s.set_rate_limit("111111111111", &a.id, Some(100), 1000).await.unwrap().is_applied());
    for owner in ["w1", "w1", "w2"] {
        assert!(s.claim_chunk(owner, 1000, 500).await.unwrap().is_some());
    }
    assert_eq!(
        s.job_controls(&a.id, 1200).await.unwrap().unwrap(),
        JobControls { rate_limit: Some(100), lease_holders: 2 }
    );
    // Expired leases do not count.
    assert_eq!(s.job_controls(&a.id, 1600).await.unwrap().unwrap().lease_holders, 0);

    // A finished job's limit cannot change.
    for (from, to) in [(JobStatus::Active, JobStatus::Cancelling), (JobStatus::Cancelling, JobStatus::Cancelled)] {
        assert!(s.update_status(&a.id, mv(from, to), &StatusChange::default(), 2000).await.unwrap().is_applied());
    }
    assert_eq!(
        s.set_rate_limit("111111111111", &a.id, Some(5), 3000).await.unwrap(),
        CasOutcome::Conflict { found: Some(JobStatus::Cancelled) }
    );
    assert_eq!(s.get_job(None, &a.id).await.unwrap().unwrap().rate_limit, Some(100));
}

pub async fn claims_of_one_job_and_chunk_samples(s: &dyn JobStore) {
    let hi = active_job(s, "111111111111", "c-1", 2, 1000).await;
    assert!(s.set_priority("111111111111", &hi.id, 99, 1000).await.unwrap().is_applied());
    let lo = active_job(s, "111111111111", "c-2", 3, 1000).await;
    // claim_chunk would take the higher priority job's; claim_chunk_of takes the one asked for, in order.
    let c = s.claim_chunk_of("w1", &lo.id, 1000, 500).await.unwrap().expect("a chunk of lo");
    assert_eq!((c.id.job_id.as_str(), c.id.seq, c.attempts), (lo.id.as_str(), 0, 1));
    assert_eq!(s.claim_chunk_of("w1", &lo.id, 1000, 500).await.unwrap().unwrap().id.seq, 1);
    assert_eq!(s.claim_chunk_of("w1", &lo.id, 1000, 500).await.unwrap().unwrap().id.seq, 2);
    assert!(s.claim_chunk_of("w1", &lo.id, 1000, 500).await.unwrap().is_none(), "all leased");
    // An expired lease is claimed again.
    let again = s.claim_chunk_of("w2", &lo.id, 2000, 500).await.unwrap().expect("expired chunk");
    assert_eq!((again.id.seq, again.attempts), (0, 2));
    assert_eq!(s.claim_chunk("w1", 2000, 500).await.unwrap().unwrap().id.job_id, hi.id);
    // Only Active jobs.
    assert!(
        s.update_status(&hi.id, mv(JobStatus::Active, JobStatus::Pausing), &StatusChange::default(), 2000)
            .await
            .unwrap()
            .is_applied()
    );
    assert!(s.claim_chunk_of("w1", &hi.id, 2000, 500).await.unwrap().is_none());
    assert!(s.claim_chunk_of("w1", "no-such-job", 2000, 500).await.unwrap().is_none());

    // Chunk samples: the ones asked for that exist, in order.
    let got = s.chunks_at(&lo.id, &[2, 0, 7]).await.unwrap();
    assert_eq!(
        got,
        vec![
            NewChunk { seq: 0, start_offset: 0, end_offset: 10, first_line: 1, line_count: 1, payload: None },
            NewChunk { seq: 2, start_offset: 20, end_offset: 30, first_line: 3, line_count: 1, payload: None },
        ]
    );
    assert!(s.chunks_at(&lo.id, &[]).await.unwrap().is_empty());
    assert!(s.chunks_at("no-such-job", &[0]).await.unwrap().is_empty());
}

/// The database itself refuses a status that is not one of the 13, whatever writes it: `execute` runs one SQL
/// statement on the store's database and says whether it was accepted.
pub async fn unknown_status_is_refused<F, Fut>(s: &dyn JobStore, execute: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let j = created(s, "111111111111", "t", 1).await;
    let id = &j.id;
    assert!(execute(format!("UPDATE jobs SET status = 'Ready' WHERE id = '{id}'")).await, "a known status is taken");
    for bad in ["Running", "ready", ""] {
        assert!(!execute(format!("UPDATE jobs SET status = '{bad}' WHERE id = '{id}'")).await, "{bad:?} was taken");
        let sql = format!(
            "INSERT INTO events (seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status) \
             VALUES (1000000, 'e', 'j', 1, '111111111111', '{id}', 'JobStatusChanged', 'Ready', '{bad}')"
        );
        assert!(!execute(sql).await, "an event to {bad:?} was taken");
        let sql = format!(
            "INSERT INTO events (seq, event_id, job_event_id, time, account_id, job_id, name, from_status, to_status) \
             VALUES (1000001, 'e', 'j', 1, '111111111111', '{id}', 'JobStatusChanged', '{bad}', 'Ready')"
        );
        assert!(!execute(sql).await, "an event from {bad:?} was taken");
    }
    assert_eq!(s.get_job(None, id).await.unwrap().unwrap().status, JobStatus::Ready);
}
