//! The NATS users of the tests: the shipped `nats/permissions.conf`, with
//! passwords made up once per test process.
//!
//! Every test server runs the project's permissions, so a service under
//! test connects as its own user and meets the same limits as in
//! production: a service that lacks a permission fails its tests. Tests
//! that play another service, create streams of their own or inspect
//! anything connect as the provisioner, which may do everything.

use std::sync::OnceLock;
use std::time::Duration;

use stocklet_service_kit::Secret;
use stocklet_service_kit::config::{
    NATS_USERS, NatsCredentials, NatsPasswords, PROVISION_NATS_USER, nats_password_variable,
};

/// Every user's password, made up at the first call of this process.
pub fn nats_passwords() -> NatsPasswords {
    static PASSWORDS: OnceLock<NatsPasswords> = OnceLock::new();
    PASSWORDS
        .get_or_init(|| {
            NATS_USERS
                .iter()
                .fold(NatsPasswords::default(), |passwords, user| {
                    let password = format!("{user}-{}", uuid::Uuid::now_v7().simple());
                    passwords.with(user, Secret::new(password))
                })
        })
        .clone()
}

/// `user` and its password.
///
/// # Panics
/// If `user` is not one of [`NATS_USERS`].
pub fn nats_credentials(user: &str) -> NatsCredentials {
    nats_passwords()
        .credentials(user)
        .unwrap_or_else(|e| panic!("no NATS user {user:?} in nats/permissions.conf: {e}"))
}

/// The environment a nats-server (or a `stocklet` process) needs:
/// `STOCKLET_<USER>_NATS_PASSWORD` for every user.
pub fn nats_password_env() -> Vec<(String, String)> {
    NATS_USERS
        .iter()
        .map(|user| {
            (
                nats_password_variable(user),
                nats_credentials(user).password.expose().to_owned(),
            )
        })
        .collect()
}

/// A client of the servers at `urls` as `user`, with the inbox prefix the
/// services use (`_INBOX_<user>`; the subscriber keeps the default, as an
/// outside program would), failing rather than retrying when refused.
///
/// # Errors
/// What the server or the connection answered.
pub async fn connect_as(
    urls: &[String],
    user: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let credentials = nats_credentials(user);
    let mut options = async_nats::ConnectOptions::with_user_and_password(
        credentials.user.clone(),
        credentials.password.expose().to_owned(),
    )
    .connection_timeout(Duration::from_secs(5));
    if user != stocklet_service_kit::config::SUBSCRIBER_NATS_USER {
        options = options.custom_inbox_prefix(format!("_INBOX_{user}"));
    }
    options.connect(urls).await
}

/// The provisioner's client of the servers at `urls`.
///
/// # Panics
/// If connecting fails.
pub async fn connect_as_provisioner(urls: &[String]) -> async_nats::Client {
    connect_as(urls, PROVISION_NATS_USER)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to nats-server at {urls:?} as the provisioner: {e}")
        })
}
