//! Every status write of the engine and the job service: the transition function picks where an event takes the
//! job ([`Transition::new`]), and the store compare-and-sets it on the status the job was read in. No writer names
//! a target status itself, so the table test over every (status, event) pair in `s3batch_core::status` covers every
//! path a job can take.

use s3batch_core::status::IllegalTransition;
use s3batch_core::{Event, JobStatus, Transition};
use s3batch_store::{CasOutcome, Job, JobStore, StatusChange, StoreError};

use crate::now;

/// What a status write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The job moved along the transition (or, for a user's pause of a paused job, stayed where it was).
    Applied(Transition),
    /// The event is not allowed in the status the job was read in: nothing was written.
    Illegal(IllegalTransition),
    /// The job is no longer in the status it was read in (`found`: where it is now): nothing was written.
    Conflict { found: Option<JobStatus> },
    /// The job is gone.
    NotFound,
}

impl Written {
    pub fn is_applied(&self) -> bool {
        matches!(self, Written::Applied(_))
    }
}

/// Move the job `id`, read in status `from`, along `event`, with what goes with the change.
pub async fn apply(
    store: &dyn JobStore,
    id: &str,
    from: JobStatus,
    event: Event,
    change: &StatusChange,
) -> Result<Written, StoreError> {
    let t = match Transition::new(from, event) {
        Ok(t) => t,
        Err(illegal) => return Ok(Written::Illegal(illegal)),
    };
    Ok(match store.update_status(id, t, change, now()).await? {
        CasOutcome::Applied => {
            tracing::info!(job = id, from = %t.from(), to = %t.to(), event = ?event, "status");
            Written::Applied(t)
        }
        CasOutcome::Conflict { found } => Written::Conflict { found },
        CasOutcome::NotFound => Written::NotFound,
    })
}

/// Move the job `id` along `event` from whatever status it is in now: read it, apply, and when another writer moved
/// it in between, apply again from the status the store found (a few times at most).
pub async fn apply_current(
    store: &dyn JobStore,
    id: &str,
    event: Event,
    change: &StatusChange,
) -> Result<Written, StoreError> {
    let Some(job) = store.get_job(None, id).await? else { return Ok(Written::NotFound) };
    let mut from = job.status;
    let mut written = Written::Conflict { found: Some(from) };
    for _ in 0..5 {
        written = apply(store, id, from, event, change).await?;
        match written {
            Written::Conflict { found: Some(now_in) } => from = now_in,
            _ => break,
        }
    }
    Ok(written)
}

/// Preparing is over: the job goes on to Suspended (it needs a confirmation) or Ready.
pub fn prepared(job: &Job) -> Transition {
    Transition::new(JobStatus::Preparing, Event::prepared(job.spec.confirmation_required))
        .expect("a preparing job may always leave Preparing once prepared")
}
