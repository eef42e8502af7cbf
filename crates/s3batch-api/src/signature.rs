//! What the two signature verifiers (`sigv4`, `qsign`) and the account checks (`auth`)
//! share: the refusal they answer with, and a constant-time comparison.

/// Why a request was refused: the error code both wire dialects use for it, its HTTP status and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

/// A `403` refusal with `code`.
pub fn denied(code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError { code, status: 403, message: message.into() }
}

/// Compare secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
