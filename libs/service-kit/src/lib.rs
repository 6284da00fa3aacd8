//! What every Stocklet service shares, so that each service crate holds only
//! its domain, its API handlers and its read models.
//!
//! - [`api`]: what every service's gRPC API holds (repository, read model,
//!   pool), and commands run with read-your-writes.
//! - [`identity`]: who is calling, and the gRPC metadata contract that
//!   carries the caller's user id and role from the gateway, with the
//!   internal token that makes it trustworthy.
//! - [`jwt`]: verifying ES256 access tokens against the auth service's
//!   JWKS, the one verifier of the gateway and the services.
//! - [`authentication`]: the layer of [`grpc`] that tells who is calling
//!   (a bearer token, or identity metadata) once per call.
//! - [`access`]: which methods anyone may call without signing in.
//! - [`error`]: one API error enum, mapped to gRPC status (with
//!   `google.rpc.BadRequest` field violations) in one place.
//! - [`pagination`]: page sizes and opaque page tokens.
//! - [`ratelimit`]: in-memory rate limits (GCRA) with refunds, for the
//!   gateway's budgets and the auth service's failed password checks.
//! - [`password`]: Argon2id hashing and verification on the blocking pool,
//!   for the user and auth services.
//! - [`config`]: typed settings from environment variables, with secrets
//!   that never print, and the [`ServiceConfig`] of a service that needs
//!   only an address of its own.
//! - [`grpc`]: serving a tonic service with health and reflection, and
//!   graceful shutdown.
//! - [`idempotency`]: the `idempotency-key` metadata: a repeated call gets
//!   the first call's answer instead of running again (a layer of [`grpc`]).
//! - [`dynamic`]: a codec to call any gRPC method by its descriptor.
//! - [`db`]: a PostgreSQL pool whose connections live in the service's own
//!   schema.
//! - [`streams`]: Stocklet's stream definitions (`nats/streams/*.json`).
//! - [`provision`]: creating and updating them, as the one NATS user
//!   allowed to (services only look streams up).
//! - [`registration`]: how the user service hands a new user's password
//!   hash to the auth service on the private AUTH stream.
//! - [`service`]: the builder every service's `run` is declared with.
//! - [`lifecycle`]: connecting as a NATS user (with Stocklet's wire names, its es-core
//!   `Conventions`), a binary's `main` (`serve_binary`), and stopping on a
//!   signal.
//! - [`consumers`]: a service's projections and reactors, started and
//!   stopped together (used by [`service`]).
//! - [`telemetry`]: logs and OpenTelemetry traces, and trace context in
//!   gRPC metadata.
//! - [`metrics`]: the Prometheus registry behind every service's `/metrics`.

pub mod access;
pub mod api;
pub mod authentication;
pub mod config;
pub mod consumers;
pub mod db;
pub mod dynamic;
pub mod error;
pub mod grpc;
pub mod idempotency;
pub mod identity;
pub mod jwt;
pub mod lifecycle;
pub mod metrics;
pub mod pagination;
pub mod password;
pub mod provision;
pub mod ratelimit;
pub mod registration;
pub mod service;
pub mod streams;
pub mod telemetry;

pub use api::CommandApi;
pub use config::{ConfigError, Secret, ServiceConfig};
pub use error::{ApiError, FieldViolation, Validation};
pub use identity::{Identity, Role};
pub use pagination::PageRequest;
