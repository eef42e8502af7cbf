//! Why a manifest cannot be used. Preparing, listing (ManifestGenerator), reading an inventory report and writing
//! the generated manifest all end with one of these, which becomes the job's FailureReason.

/// Why a manifest cannot be used: becomes a FailureReason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    pub code: &'static str,
    pub reason: String,
}

pub(crate) fn problem(code: &'static str, reason: impl Into<String>) -> ManifestProblem {
    ManifestProblem { code, reason: reason.into() }
}
