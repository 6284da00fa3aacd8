//! The API error enum and its one mapping to gRPC status.
//!
//! Handlers return `Result<_, ApiError>`. Validation failures carry field
//! violations, sent as `google.rpc.BadRequest` details so clients (and the
//! gateway's JSON errors) can point at the bad field. Infrastructure
//! failures are logged with their cause and reach the client only as
//! `Unavailable` or `Internal` with a generic message.

use es_core::{ExecuteError, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's name, as in the proto (snake_case).
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

/// Everything a handler can answer instead of a response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: each bad field is listed.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The named thing does not exist (or is not the caller's).
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A business rule refuses the command in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller is known but may not do this.
    #[error("permission denied")]
    PermissionDenied,
    /// The caller must authenticate first.
    #[error("authentication required")]
    Unauthenticated,
    /// A concurrency conflict outlived its retries, or a call with the same
    /// idempotency key is still running; retrying may succeed.
    #[error("concurrent modification, please retry")]
    Aborted,
    /// An idempotency key already used with a different request (see
    /// [`idempotency`](crate::idempotency)): `InvalidArgument` with the
    /// `google.rpc.ErrorInfo` reason `IDEMPOTENCY_KEY_REUSED`, which the
    /// gateway answers 422.
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// Too many attempts (failed password checks on one account): retry
    /// after this long. `ResourceExhausted` with `google.rpc.RetryInfo`,
    /// which the gateway answers 429.
    #[error("too many attempts, retry in {} s", crate::ratelimit::retry_after_seconds(*.0))]
    RateLimited(std::time::Duration),
    /// A dependency is unavailable; the cause is logged, not sent.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation {
            field: field.into(),
            description: description.into(),
        }])
    }

    /// Maps a repository failure, with `rejected` for the domain's own
    /// rejections.
    pub fn from_execute<E: std::error::Error + 'static>(
        error: ExecuteError<E>,
        rejected: impl FnOnce(E) -> ApiError,
    ) -> Self {
        match error {
            ExecuteError::Rejected(e) => rejected(e),
            ExecuteError::Conflict { .. } => Self::Aborted,
            ExecuteError::Store(e) => e.into(),
            // A failure a newer es-core added: a server-side problem.
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::Aborted,
            StoreError::Timeout | StoreError::Unavailable(_) => {
                Self::Unavailable(error.to_string())
            }
            // Rejections, decode failures, and whatever a newer es-core adds.
            _ => Self::Internal(error.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Self::Unavailable(error.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::AlreadyExists(_) => Status::already_exists(message),
            ApiError::FailedPrecondition(_) => Status::failed_precondition(message),
            ApiError::PermissionDenied => Status::permission_denied(message),
            ApiError::Unauthenticated => Status::unauthenticated(message),
            ApiError::Aborted => Status::aborted(message),
            ApiError::IdempotencyKeyReused => {
                let mut details = ErrorDetails::new();
                details.set_error_info(
                    crate::idempotency::KEY_REUSED,
                    crate::idempotency::ERROR_DOMAIN,
                    std::collections::HashMap::new(),
                );
                details.add_bad_request_violation(
                    crate::idempotency::METADATA_KEY,
                    "already used with a different request; send the same request again \
                     to get its answer, or use a new key",
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::RateLimited(wait) => {
                let mut details = ErrorDetails::new();
                details.set_retry_info(Some(std::time::Duration::from_secs(
                    crate::ratelimit::retry_after_seconds(wait),
                )));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "answering Unavailable");
                Status::unavailable(message)
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "answering Internal");
                Status::internal(message)
            }
        }
    }
}

/// Collects every field violation of a request before answering, so the
/// client learns about all bad fields at once.
#[derive(Debug, Default)]
pub struct Validation(Vec<FieldViolation>);

impl Validation {
    /// An empty validation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) -> &mut Self {
        if !ok {
            self.0.push(FieldViolation {
                field: field.to_owned(),
                description: description.into(),
            });
        }
        self
    }

    /// Keeps a parsed value, or records the parse error against `field`.
    pub fn parse<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                self.check(false, field, error.to_string());
                None
            }
        }
    }

    /// `Ok` when nothing was recorded.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidArgument(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_travel_as_bad_request_details() {
        let mut validation = Validation::new();
        validation
            .check(false, "name", "must be 1-35 characters")
            .check(true, "email", "fine")
            .check(false, "price_cents", "must be zero or more");
        let status = Status::from(validation.finish().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad_request = status.get_details_bad_request().unwrap();
        let fields: Vec<_> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["name", "price_cents"]);
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let status = Status::from(ApiError::Internal("password=hunter2 in SQL".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
