//! The 13 job statuses of S3 Batch Operations and the one pure transition function.
//!
//! ```text
//! New ─Start─> Preparing ─Prepared─> Suspended ─Confirm─> Ready ─Activate─> Active ─TasksDone─> Completing ─Finished─> Complete
//!                                                    Ready|Active ─Pause─> Pausing ─Drained─> Paused ─Activate─> Active
//! any non-terminal but Cancelling/Failing/Completing ─Cancel─> Cancelling ─Finished─> Cancelled
//! Preparing|Suspended|Ready|Active|Pausing|Paused|Completing ─Fail─> Failing ─Finished─> Failed
//! a user's pause (extension): Ready ─UserPause─> Paused, Active ─UserPause─> Pausing, Pausing|Paused stay;
//!                             Pausing|Paused ─UserResume─> the same status (the scheduler activates it later)
//! ```
//!
//! Every status write in every store is a compare-and-set on the status this function was given: the store takes
//! a [`Transition`], which only [`Transition::new`] (that is, [`transition`]) makes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's status, spelled exactly as the S3 Control `JobStatus` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    New,
    Preparing,
    Suspended,
    Ready,
    Active,
    Pausing,
    Paused,
    Completing,
    Complete,
    Cancelling,
    Cancelled,
    Failing,
    Failed,
}

/// Everything that moves a job from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The preparer picked the job up.
    Start,
    /// The manifest was read and chunked; the job needs confirmation before it may run.
    PreparedNeedsConfirmation,
    /// The manifest was read and chunked; the job may run.
    Prepared,
    /// A user confirmed a suspended job (`requestedJobStatus=Ready`).
    Confirm,
    /// The scheduler let the job run (from Ready, or back from Paused).
    Activate,
    /// The job must stop claiming work: pre-empted by a higher priority, or paused by a user.
    Pause,
    /// A pausing job has no task in flight any more.
    Drained,
    /// Every task ran; the report is being written.
    TasksDone,
    /// A user cancelled the job.
    Cancel,
    /// The job cannot go on: unreadable manifest, failure threshold, confirmation expired, report not writable.
    Fail,
    /// The transitional state's work is done (report written, in-flight tasks settled).
    Finished,
    /// A user paused the job (extension): unlike the scheduler's [`Event::Pause`], a job already pausing or
    /// paused stays where it is (the user's pause is then recorded on it).
    UserPause,
    /// A user resumed a job they paused (extension): its status stays Pausing or Paused; the scheduler activates
    /// it when it ranks among the jobs that may run.
    UserResume,
}

impl Event {
    /// Every event, for tables over (status, event).
    pub const ALL: [Event; 13] = [
        Event::Start,
        Event::PreparedNeedsConfirmation,
        Event::Prepared,
        Event::Confirm,
        Event::Activate,
        Event::Pause,
        Event::Drained,
        Event::TasksDone,
        Event::Cancel,
        Event::Fail,
        Event::Finished,
        Event::UserPause,
        Event::UserResume,
    ];

    /// What preparing ends with: the job waits for a confirmation, or may run at once.
    pub fn prepared(confirmation_required: bool) -> Event {
        if confirmation_required { Event::PreparedNeedsConfirmation } else { Event::Prepared }
    }
}

/// SuspendedCause of a job waiting for its confirmation (Suspended after preparing).
pub const AWAITING_CONFIRMATION_CAUSE: &str = "AwaitingConfirmation";
/// SuspendedCause of a job a user paused.
pub const USER_PAUSE_CAUSE: &str = "Paused by user";
/// SuspendedCause of a job the scheduler paused for a job of higher priority.
pub const PREEMPTED_CAUSE: &str = "Preempted by a job with a higher priority";

/// The event is not allowed in the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a job in status {from} cannot {event:?}")]
pub struct IllegalTransition {
    pub from: JobStatus,
    pub event: Event,
}

impl JobStatus {
    /// All 13, in the order of a job's life.
    pub const ALL: [JobStatus; 13] = [
        JobStatus::New,
        JobStatus::Preparing,
        JobStatus::Suspended,
        JobStatus::Ready,
        JobStatus::Active,
        JobStatus::Pausing,
        JobStatus::Paused,
        JobStatus::Completing,
        JobStatus::Complete,
        JobStatus::Cancelling,
        JobStatus::Cancelled,
        JobStatus::Failing,
        JobStatus::Failed,
    ];

    /// Complete, Failed and Cancelled: a job never leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// The enum value as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::New => "New",
            JobStatus::Preparing => "Preparing",
            JobStatus::Suspended => "Suspended",
            JobStatus::Ready => "Ready",
            JobStatus::Active => "Active",
            JobStatus::Pausing => "Pausing",
            JobStatus::Paused => "Paused",
            JobStatus::Completing => "Completing",
            JobStatus::Complete => "Complete",
            JobStatus::Cancelling => "Cancelling",
            JobStatus::Cancelled => "Cancelled",
            JobStatus::Failing => "Failing",
            JobStatus::Failed => "Failed",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not one of the 13 statuses (case-sensitive, as AWS enums are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a job status")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// The one transition function. Pure: it only says where `event` takes a job in `from`.
pub fn transition(from: JobStatus, event: Event) -> Result<JobStatus, IllegalTransition> {
    use Event as E;
    use JobStatus as S;
    let to = match (from, event) {
        (S::New, E::Start) => S::Preparing,
        (S::Preparing, E::Prepared) => S::Ready,
        (S::Preparing, E::PreparedNeedsConfirmation) => S::Suspended,
        (S::Suspended, E::Confirm) => S::Ready,
        (S::Ready | S::Paused, E::Activate) => S::Active,
        (S::Active, E::Pause) => S::Pausing,
        (S::Ready, E::Pause) => S::Paused,
        (S::Pausing, E::Drained) => S::Paused,
        (S::Active, E::TasksDone) => S::Completing,
        (S::New | S::Preparing | S::Suspended | S::Ready | S::Active | S::Pausing | S::Paused, E::Cancel) => {
            S::Cancelling
        }
        (S::Preparing | S::Suspended | S::Ready | S::Active | S::Pausing | S::Paused | S::Completing, E::Fail) => {
            S::Failing
        }
        (S::Completing, E::Finished) => S::Complete,
        (S::Cancelling, E::Finished) => S::Cancelled,
        (S::Failing, E::Finished) => S::Failed,
        (S::Ready, E::UserPause) => S::Paused,
        (S::Active, E::UserPause) => S::Pausing,
        (S::Pausing | S::Paused, E::UserPause | E::UserResume) => from,
        _ => return Err(IllegalTransition { from, event }),
    };
    Ok(to)
}

/// A legal move of a job, as [`transition`] found it: `from` along `event` to `to`. The only status write a store
/// accepts, as a compare-and-set on `from`; its fields are private, so no writer can pick a target status itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    from: JobStatus,
    event: Event,
    to: JobStatus,
}

impl Transition {
    /// Where `event` takes a job in `from`, if it may go there.
    pub fn new(from: JobStatus, event: Event) -> Result<Transition, IllegalTransition> {
        transition(from, event).map(|to| Transition { from, event, to })
    }

    /// The status the job must still be in for the move to apply.
    pub fn from(&self) -> JobStatus {
        self.from
    }

    pub fn event(&self) -> Event {
        self.event
    }

    /// The status the job is in afterwards (`from` itself for a user's pause or resume of a paused job).
    pub fn to(&self) -> JobStatus {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: [Event; 13] = Event::ALL;

    /// The whole table: every (status, event) pair and where it leads, `None` where it is illegal.
    fn expected(from: JobStatus, e: Event) -> Option<JobStatus> {
        use Event as E;
        use JobStatus as S;
        let table: &[(S, E, S)] = &[
            (S::New, E::Start, S::Preparing),
            (S::New, E::Cancel, S::Cancelling),
            (S::Preparing, E::Prepared, S::Ready),
            (S::Preparing, E::PreparedNeedsConfirmation, S::Suspended),
            (S::Preparing, E::Cancel, S::Cancelling),
            (S::Preparing, E::Fail, S::Failing),
            (S::Suspended, E::Confirm, S::Ready),
            (S::Suspended, E::Cancel, S::Cancelling),
            (S::Suspended, E::Fail, S::Failing),
            (S::Ready, E::Activate, S::Active),
            (S::Ready, E::Pause, S::Paused),
            (S::Ready, E::Cancel, S::Cancelling),
            (S::Ready, E::Fail, S::Failing),
            (S::Active, E::Pause, S::Pausing),
            (S::Active, E::TasksDone, S::Completing),
            (S::Active, E::Cancel, S::Cancelling),
            (S::Active, E::Fail, S::Failing),
            (S::Pausing, E::Drained, S::Paused),
            (S::Pausing, E::Cancel, S::Cancelling),
            (S::Pausing, E::Fail, S::Failing),
            (S::Paused, E::Activate, S::Active),
            (S::Paused, E::Cancel, S::Cancelling),
            (S::Paused, E::Fail, S::Failing),
            (S::Completing, E::Finished, S::Complete),
            (S::Completing, E::Fail, S::Failing),
            (S::Cancelling, E::Finished, S::Cancelled),
            (S::Failing, E::Finished, S::Failed),
            (S::Ready, E::UserPause, S::Paused),
            (S::Active, E::UserPause, S::Pausing),
            (S::Pausing, E::UserPause, S::Pausing),
            (S::Paused, E::UserPause, S::Paused),
            (S::Pausing, E::UserResume, S::Pausing),
            (S::Paused, E::UserResume, S::Paused),
        ];
        table.iter().find(|(f, ev, _)| *f == from && *ev == e).map(|(_, _, to)| *to)
    }

    #[test]
    fn every_status_and_event() {
        for from in JobStatus::ALL {
            for e in EVENTS {
                assert_eq!(transition(from, e).ok(), expected(from, e), "{from} on {e:?}");
            }
        }
    }

    #[test]
    fn a_transition_is_what_the_function_says() {
        for from in JobStatus::ALL {
            for e in EVENTS {
                let t = Transition::new(from, e);
                assert_eq!(
                    t.map(|t| (t.from(), t.event(), t.to())).ok(),
                    transition(from, e).ok().map(|to| (from, e, to))
                );
            }
        }
    }

    #[test]
    fn prepared_event_follows_confirmation() {
        assert_eq!(Event::prepared(true), Event::PreparedNeedsConfirmation);
        assert_eq!(Event::prepared(false), Event::Prepared);
    }

    #[test]
    fn terminal_states_have_no_exit() {
        for from in JobStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for e in EVENTS {
                assert!(transition(from, e).is_err(), "{from} left on {e:?}");
            }
        }
    }

    #[test]
    fn once_confirmed_never_suspended_again() {
        for from in JobStatus::ALL.into_iter().filter(|s| *s != JobStatus::Preparing) {
            for e in EVENTS {
                assert_ne!(transition(from, e).ok(), Some(JobStatus::Suspended));
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
        assert!("active".parse::<JobStatus>().is_err());
    }
}
