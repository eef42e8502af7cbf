//! A job store that runs every call of another through a [`Gate`]: the test job stores that hold a paused clock
//! still (tests/scheduling.rs) or freeze a worker dead (tests/engine.rs) share this one forwarding of every
//! [`JobStore`] method, so a new store method is added here once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;
use s3batch_core::{JobStatus, Millis, Tag, Transition};
use s3batch_store::{
    Browse, CasOutcome, Chunk, ChunkCounts, ChunkId, ChunkResult, ChunkRows, CreateOutcome, Job, JobState, JobStore,
    ListFilter, NewChunk, NewJob, StatusChange, Worker,
};

type StoreResult<T> = s3batch_store::Result<T>;

/// What happens around every store call.
pub trait Gate: std::fmt::Debug + Send + Sync + 'static {
    fn around<'a, T: Send + 'a>(&'a self, call: BoxFuture<'a, T>) -> BoxFuture<'a, T>;
}

/// `inner`, every call through `gate`.
#[derive(Debug)]
pub struct Wrapped<G> {
    pub inner: Arc<dyn JobStore>,
    pub gate: G,
    /// Calls of `jobs_in` (whole jobs, specs and all, of every account) so far.
    pub jobs_in_calls: AtomicUsize,
}

impl<G: Gate> Wrapped<G> {
    pub fn new(inner: Arc<dyn JobStore>, gate: G) -> Wrapped<G> {
        Wrapped { inner, gate, jobs_in_calls: AtomicUsize::new(0) }
    }
}

#[async_trait]
impl<G: Gate> JobStore for Wrapped<G> {
    async fn create_job(&self, new: &NewJob, now: Millis) -> StoreResult<CreateOutcome> {
        self.gate.around(self.inner.create_job(new, now)).await
    }
    async fn get_job(&self, account: Option<&str>, id: &str) -> StoreResult<Option<Job>> {
        self.gate.around(self.inner.get_job(account, id)).await
    }
    async fn list_jobs(&self, account: &str, filter: &ListFilter) -> StoreResult<Vec<Job>> {
        self.gate.around(self.inner.list_jobs(account, filter)).await
    }
    async fn jobs_in(&self, statuses: &[JobStatus]) -> StoreResult<Vec<Job>> {
        self.jobs_in_calls.fetch_add(1, Ordering::Relaxed);
        self.gate.around(self.inner.jobs_in(statuses)).await
    }
    async fn job_states(&self, statuses: &[JobStatus]) -> StoreResult<Vec<JobState>> {
        self.gate.around(self.inner.job_states(statuses)).await
    }
    async fn browse_jobs(&self, account: &str, q: &Browse) -> StoreResult<Vec<Job>> {
        self.gate.around(self.inner.browse_jobs(account, q)).await
    }
    async fn count_by_status(&self) -> StoreResult<Vec<(JobStatus, i64)>> {
        self.gate.around(self.inner.count_by_status()).await
    }
    async fn count_jobs(&self, account: &str, q: &Browse) -> StoreResult<Vec<(JobStatus, i64)>> {
        self.gate.around(self.inner.count_jobs(account, q)).await
    }
    async fn update_status(&self, id: &str, t: Transition, ch: &StatusChange, now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.update_status(id, t, ch, now)).await
    }
    async fn set_priority(&self, account: &str, id: &str, priority: i64, now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.set_priority(account, id, priority, now)).await
    }
    async fn set_tags(&self, account: &str, id: &str, tags: &[Tag], now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.set_tags(account, id, tags, now)).await
    }
    async fn claim_duty(&self, id: &str, owner: &str, now: Millis, ttl_ms: i64) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.claim_duty(id, owner, now, ttl_ms)).await
    }
    async fn release_duty(&self, id: &str, owner: &str) -> StoreResult<()> {
        self.gate.around(self.inner.release_duty(id, owner)).await
    }
    async fn clear_chunks(&self, job_id: &str) -> StoreResult<()> {
        self.gate.around(self.inner.clear_chunks(job_id)).await
    }
    async fn insert_chunks(&self, job_id: &str, owner: &str, chunks: &[NewChunk]) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.insert_chunks(job_id, owner, chunks)).await
    }
    async fn finish_preparing(
        &self,
        job_id: &str,
        owner: &str,
        total_tasks: i64,
        manifest_etag: &str,
        t: Transition,
        now: Millis,
    ) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.finish_preparing(job_id, owner, total_tasks, manifest_etag, t, now)).await
    }
    async fn claim_chunk(&self, owner: &str, now: Millis, lease_ms: i64) -> StoreResult<Option<Chunk>> {
        self.gate.around(self.inner.claim_chunk(owner, now, lease_ms)).await
    }
    async fn heartbeat(
        &self,
        owner: &str,
        chunks: &[ChunkId],
        now: Millis,
        lease_ms: i64,
    ) -> StoreResult<Vec<ChunkId>> {
        self.gate.around(self.inner.heartbeat(owner, chunks, now, lease_ms)).await
    }
    async fn complete_chunk(
        &self,
        owner: &str,
        chunk: &ChunkId,
        r: &ChunkResult,
        now: Millis,
    ) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.complete_chunk(owner, chunk, r, now)).await
    }
    async fn release_chunk(&self, owner: &str, chunk: &ChunkId) -> StoreResult<()> {
        self.gate.around(self.inner.release_chunk(owner, chunk)).await
    }
    async fn fence_chunks(&self, job_id: &str) -> StoreResult<u64> {
        self.gate.around(self.inner.fence_chunks(job_id)).await
    }
    async fn chunk_counts(&self, job_id: &str, now: Millis) -> StoreResult<ChunkCounts> {
        self.gate.around(self.inner.chunk_counts(job_id, now)).await
    }
    async fn chunk_results(&self, job_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<ChunkRows>> {
        self.gate.around(self.inner.chunk_results(job_id, after_seq, limit)).await
    }
    async fn set_report_key(&self, job_id: &str, key: &str) -> StoreResult<()> {
        self.gate.around(self.inner.set_report_key(job_id, key)).await
    }
    async fn delete_job(&self, job_id: &str) -> StoreResult<()> {
        self.gate.around(self.inner.delete_job(job_id)).await
    }
    async fn claim_singleton(&self, name: &str, owner: &str, now: Millis, lease_ms: i64) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.claim_singleton(name, owner, now, lease_ms)).await
    }
    async fn release_singleton(&self, name: &str, owner: &str) -> StoreResult<()> {
        self.gate.around(self.inner.release_singleton(name, owner)).await
    }
    async fn singleton_owner(&self, name: &str, now: Millis) -> StoreResult<Option<String>> {
        self.gate.around(self.inner.singleton_owner(name, now)).await
    }
    async fn register_worker(&self, worker: &Worker) -> StoreResult<()> {
        self.gate.around(self.inner.register_worker(worker)).await
    }
    async fn worker_heartbeat(&self, id: &str, chunks: i64, draining: bool, now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.worker_heartbeat(id, chunks, draining, now)).await
    }
    async fn deregister_worker(&self, id: &str) -> StoreResult<()> {
        self.gate.around(self.inner.deregister_worker(id)).await
    }
    async fn list_workers(&self) -> StoreResult<Vec<Worker>> {
        self.gate.around(self.inner.list_workers()).await
    }
    async fn prune_workers(&self, heartbeat_before: Millis) -> StoreResult<u64> {
        self.gate.around(self.inner.prune_workers(heartbeat_before)).await
    }
    async fn open_preparing(&self, job_id: &str, owner: &str, t: Transition, now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.open_preparing(job_id, owner, t, now)).await
    }
    async fn finish_listing(&self, job_id: &str, owner: &str, total: i64, now: Millis) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.finish_listing(job_id, owner, total, now)).await
    }
    async fn last_chunk(&self, job_id: &str) -> StoreResult<Option<Chunk>> {
        self.gate.around(self.inner.last_chunk(job_id)).await
    }
    async fn chunk_payloads(&self, job_id: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        self.gate.around(self.inner.chunk_payloads(job_id, after_seq, limit)).await
    }
    async fn set_generated_manifest(&self, job_id: &str, descriptor: &str) -> StoreResult<()> {
        self.gate.around(self.inner.set_generated_manifest(job_id, descriptor)).await
    }
    async fn events_after(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<s3batch_store::JobEventRecord>> {
        self.gate.around(self.inner.events_after(after_seq, limit)).await
    }
    async fn job_events(&self, job_id: &str, limit: i64) -> StoreResult<Vec<s3batch_store::JobEventRecord>> {
        self.gate.around(self.inner.job_events(job_id, limit)).await
    }
    async fn event_cursor(&self, sink: &str) -> StoreResult<Option<i64>> {
        self.gate.around(self.inner.event_cursor(sink)).await
    }
    async fn advance_event_cursor(&self, sink: &str, seq: i64, now: Millis) -> StoreResult<()> {
        self.gate.around(self.inner.advance_event_cursor(sink, seq, now)).await
    }
    async fn prune_events(&self, up_to_seq: i64, before: Millis) -> StoreResult<u64> {
        self.gate.around(self.inner.prune_events(up_to_seq, before)).await
    }
    async fn set_rate_limit(
        &self,
        account: &str,
        id: &str,
        limit: Option<i64>,
        now: Millis,
    ) -> StoreResult<CasOutcome> {
        self.gate.around(self.inner.set_rate_limit(account, id, limit, now)).await
    }
    async fn job_controls(&self, job_id: &str, now: Millis) -> StoreResult<Option<s3batch_store::JobControls>> {
        self.gate.around(self.inner.job_controls(job_id, now)).await
    }
    async fn claim_chunk_of(
        &self,
        owner: &str,
        job_id: &str,
        now: Millis,
        lease_ms: i64,
    ) -> StoreResult<Option<Chunk>> {
        self.gate.around(self.inner.claim_chunk_of(owner, job_id, now, lease_ms)).await
    }
    async fn chunks_at(&self, job_id: &str, seqs: &[i64]) -> StoreResult<Vec<NewChunk>> {
        self.gate.around(self.inner.chunks_at(job_id, seqs)).await
    }
}
