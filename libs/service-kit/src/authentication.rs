//! Who is calling, worked out once per call, before any handler runs.
//!
//! A step of every call in [`grpc::serve`](crate::grpc::serve), so every
//! service has it and no handler reads credentials itself:
//!
//! 1. `authorization: Bearer <jwt>` metadata: the token is verified by the
//!    same [`TokenVerifier`] and rules as the gateway's (ES256 pinned, the
//!    auth service's JWKS, `exp`/`nbf`/`iat` with leeway, `iss`, `aud`),
//!    and the caller is its `sub` with its `role`. A token that does not
//!    verify, or credentials of another scheme, end the call with
//!    `UNAUTHENTICATED` and a message that says only that (the reason is
//!    logged); keys that cannot be fetched end it with `UNAVAILABLE`.
//! 2. No `authorization`: the identity metadata next to the internal token
//!    (see [`identity`](crate::identity)), as the gateway sends it.
//! 3. Neither: anonymous. An anonymous call to a method that is not public
//!    ([`access`]) ends here with `UNAUTHENTICATED`, as the gateway would
//!    refuse it. (Every handler also checks its caller itself; this makes
//!    the rule hold for any method added later.)
//!
//! The result travels with the request (its extensions, which no client can
//! set), and everything after reads it from there: the handlers with
//! [`Identity::of`], the [`idempotency`](crate::idempotency) step (which
//! comes after this one) for the caller its keys belong to. One place
//! decides, so no two parts of a call can disagree on who made it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tower::Service as _;

use crate::access;
use crate::config::Secret;
use crate::error::ApiError;
use crate::grpc::{CallStep, GrpcRequest, GrpcResponse, Next};
use crate::identity::Identity;
use crate::jwt::{Refusal, TokenVerifier};

/// The identity the layer resolved, in the request's extensions. Private
/// to the crate: only [`Authentication`] puts it there.
#[derive(Clone, Debug)]
pub(crate) struct Caller(pub(crate) Identity);

/// How a service tells who is calling: a token verifier and the internal
/// token that makes identity metadata trustworthy.
#[derive(Clone, Debug)]
pub struct Authentication {
    verifier: Arc<TokenVerifier>,
    internal_token: Secret,
}

impl Authentication {
    /// Verifies bearer tokens with `verifier`, and trusts identity metadata
    /// next to `internal_token`.
    pub fn new(verifier: TokenVerifier, internal_token: Secret) -> Self {
        Self {
            verifier: Arc::new(verifier),
            internal_token,
        }
    }

    /// The caller of a request with `headers`.
    pub async fn identify(&self, headers: &http::HeaderMap) -> Result<Identity, Refusal> {
        if let Some(identity) = self.verifier.authenticate(headers).await? {
            return Ok(identity);
        }
        Ok(Identity::from_metadata(
            &MetadataMap::from_headers(headers.clone()),
            &self.internal_token,
        ))
    }
}

impl CallStep for Authentication {
    fn call<E: Send + 'static>(
        &self,
        mut inner: Next<E>,
        mut request: GrpcRequest,
    ) -> BoxFuture<'static, Result<GrpcResponse, E>> {
        let authentication = self.clone();
        Box::pin(async move {
            let identity = match authentication.identify(request.headers()).await {
                Ok(identity) => identity,
                Err(refusal) => return Ok(Status::from(refusal).into_http()),
            };
            if identity == Identity::Anonymous && access::needs_user(request.uri().path()) {
                return Ok(Status::from(ApiError::Unauthenticated).into_http());
            }
            request.extensions_mut().insert(Caller(identity));
            inner.call(request).await
        })
    }
}
