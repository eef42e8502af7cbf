//! Work done under a job's duty lease that may outlast the lease (writing the report of a large job, or through a
//! slow store): [`hold`] renews the lease while the work runs, and stops the work as soon as the lease may be lost.
//!
//! Another process takes a duty over once its lease has run out. A holder that went on working past that point
//! would do the duty twice at once with its successor (two reports, two final status writes); one that stops
//! while its lease still holds never overlaps with anyone.

use std::future::Future;
use std::time::Duration;

use s3batch_core::Millis;
use s3batch_store::CasOutcome;

use crate::{Engine, now};

/// Why work under a duty lease was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DutyLost {
    /// A renewal found another process holding the lease (or the job gone).
    #[error("another process holds the job's duty lease")]
    TakenOver,
    /// The store did not renew the lease in time (it failed or did not answer), so it could run out while the
    /// work went on.
    #[error("the job's duty lease could not be renewed before it ran out")]
    NotRenewed,
}

/// Run `work` while renewing this process's duty lease on `job_id` every third of the lease (as chunk leases are),
/// the lease having been taken or renewed at `claimed_at`. If a renewal finds another holder, or the lease could
/// run out before the next renewal (the store failing or not answering), `work` is dropped where it stands, a
/// sixth of the lease before it runs out, and the reason returned.
pub async fn hold<T>(
    engine: &Engine,
    job_id: &str,
    claimed_at: Millis,
    work: impl Future<Output = T>,
) -> Result<T, DutyLost> {
    tokio::select! {
        biased;
        lost = renew(engine, job_id, claimed_at) => Err(lost),
        done = work => Ok(done),
    }
}

/// Renew the lease until it is lost; returns why.
async fn renew(engine: &Engine, job_id: &str, claimed_at: Millis) -> DutyLost {
    let lease = engine.config.lease_ms;
    let every = engine.config.heartbeat_every().as_millis() as i64;
    let margin = (lease / 6).max(1);
    let mut renewed_at = claimed_at;
    let mut last_try = claimed_at;
    loop {
        // Stop a margin before the lease runs out; renew every third of it until then.
        let deadline = renewed_at + lease - margin;
        let next = (last_try + every).min(deadline);
        tokio::time::sleep(Duration::from_millis((next - now()).max(0) as u64)).await;
        let t = now();
        if t >= deadline {
            return DutyLost::NotRenewed;
        }
        last_try = t;
        let claim = engine.store.claim_duty(job_id, &engine.worker_id, t, lease);
        match tokio::time::timeout(Duration::from_millis((deadline - t) as u64), claim).await {
            Ok(Ok(CasOutcome::Applied)) => renewed_at = t,
            Ok(Ok(_)) => return DutyLost::TakenOver,
            Ok(Err(e)) => tracing::warn!(job = job_id, error = %e, "renewing the duty lease failed; trying again"),
            Err(_) => tracing::warn!(job = job_id, "renewing the duty lease did not finish in time"),
        }
    }
}
