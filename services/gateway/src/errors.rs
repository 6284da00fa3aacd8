//! Error responses: JSON `{code, message, details}`, one mapping from gRPC
//! status codes to HTTP statuses, in one place.
//!
//! `code` is the gRPC code number, as gRPC-Gateway sends it. One status is
//! not the code's: an idempotency key reused with another request
//! (`InvalidArgument` with the `google.rpc.ErrorInfo` reason
//! `IDEMPOTENCY_KEY_REUSED`) is 422. Field
//! violations (`google.rpc.BadRequest` in the status details) are kept in
//! `details`. For server-side failures (`Internal`, `Unknown`, `DataLoss`,
//! `Unimplemented`, `Unavailable`, `DeadlineExceeded`, `Cancelled`) the
//! backend's message is replaced by a generic one, so internal causes never
//! reach a client; they are logged instead.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use stocklet_service_kit::idempotency;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The `@type` of field-violation details.
const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";

/// An error answer of the gateway.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The gRPC code.
    pub code: Code,
    /// The message sent.
    pub message: String,
    /// Field violations: (field, description).
    pub violations: Vec<(String, String)>,
    /// Seconds to send as `Retry-After`.
    pub retry_after_s: Option<u64>,
    /// The methods to send as `Allow` with a 405.
    pub allow: Vec<http::Method>,
}

impl ApiError {
    /// An error with `code`'s HTTP status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            status: http_status(code),
            code,
            message: message.into(),
            violations: Vec::new(),
            retry_after_s: None,
            allow: Vec::new(),
        }
    }

    /// 405 with `Allow` listing the methods the path does answer (RFC 9110
    /// requires it).
    pub fn method_not_allowed(allow: Vec<http::Method>) -> Self {
        Self {
            allow,
            ..Self::new(Code::Unimplemented, "method not allowed")
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
        }
    }

    /// Overrides the HTTP status (405, 413).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a field violation.
    pub fn with_violation(
        mut self,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.violations.push((field.into(), description.into()));
        self
    }

    /// 401 with a fixed message: why a token failed is logged, not sent.
    pub fn unauthenticated() -> Self {
        Self::new(Code::Unauthenticated, "authentication required")
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(Code::ResourceExhausted, "too many requests, retry later")
        }
    }

    /// Maps a backend status, hiding server-side causes.
    pub fn from_status(status: &Status) -> Self {
        let code = status.code();
        let message = match code {
            Code::Unavailable | Code::Cancelled => "service temporarily unavailable".to_owned(),
            Code::DeadlineExceeded => "the request timed out".to_owned(),
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => {
                "internal error".to_owned()
            }
            _ => status.message().to_owned(),
        };
        if message != status.message() {
            tracing::warn!(?code, cause = %status.message(), "backend failed");
        }
        let violations = status
            .get_details_bad_request()
            .map(|details| {
                details
                    .field_violations
                    .into_iter()
                    .map(|v| (v.field, v.description))
                    .collect()
            })
            .unwrap_or_default();
        // A key used again with another request: 422, as the IETF
        // Idempotency-Key draft says (the gRPC code stays InvalidArgument).
        let key_reused = status
            .get_details_error_info()
            .is_some_and(|info| info.reason == idempotency::KEY_REUSED);
        let error = Self {
            violations,
            ..Self::new(code, message)
        };
        if key_reused {
            error.with_status(StatusCode::UNPROCESSABLE_ENTITY)
        } else {
            error
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let details: Vec<Value> = if self.violations.is_empty() {
            Vec::new()
        } else {
            let violations: Vec<Value> = self
                .violations
                .iter()
                .map(|(field, description)| json!({"field": field, "description": description}))
                .collect();
            vec![json!({"@type": BAD_REQUEST_TYPE, "fieldViolations": violations})]
        };
        json!({"code": self.code as i32, "message": self.message, "details": details})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if !self.allow.is_empty() {
            let allow: Vec<&str> = self.allow.iter().map(http::Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                headers.insert(header::ALLOW, value);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn field_violations_are_kept_in_details() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation("price_cents", "must be zero or more");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid request", details);
        let error = ApiError::from_status(&status);
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        let body = error.body();
        assert_eq!(body["code"], 3);
        assert_eq!(body["details"][0]["@type"], BAD_REQUEST_TYPE);
        assert_eq!(
            body["details"][0]["fieldViolations"][0]["field"],
            "price_cents"
        );
    }

    #[test]
    fn internal_causes_are_never_sent() {
        let error = ApiError::from_status(&Status::internal("pq: password=hunter2"));
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.body().to_string().contains("hunter2"));
        let error = ApiError::from_status(&Status::unavailable("tcp connect to 10.0.0.3 refused"));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.body().to_string().contains("10.0.0.3"));
    }

    #[test]
    fn a_reused_idempotency_key_is_422_with_a_reason() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            idempotency::KEY_REUSED,
            idempotency::ERROR_DOMAIN,
            std::collections::HashMap::new(),
        );
        details.add_bad_request_violation("idempotency-key", "already used");
        let status = Status::with_error_details(Code::InvalidArgument, "key reused", details);
        let error = ApiError::from_status(&status);
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.body()["message"], "key reused");
        // Other invalid arguments stay 400.
        let error = ApiError::from_status(&Status::invalid_argument("bad"));
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn codes_map_to_the_issues_statuses() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::FailedPrecondition, 412),
            (Code::ResourceExhausted, 429),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
        ];
        for (code, status) in cases {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
    }
}
