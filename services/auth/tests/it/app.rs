//! `TestApp`: one auth service on the shared [`ServiceHarness`] (its own
//! nats-server and database) with its own data directory, typed client
//! calls as a given identity, and a stand-in for the user service's events.

use std::ops::Deref;

use base64ct::{Base64UrlUnpadded, Encoding};
use es_core::JetStreamEventStore;
use es_core::testing::append_event;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use stocklet_auth::domain::{Password, PasswordHash};
use stocklet_auth::tokens::KeySource;
use stocklet_auth::{AdminAccount, Config, run};
use stocklet_proto::stocklet::auth::v1 as pb;
use stocklet_proto::stocklet::auth::v1::auth_service_client::AuthServiceClient;
use stocklet_proto::stocklet::auth::v1::login_password_request::Login;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::password::Passwords;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::harness::{LISTEN_ADDR, SETTLE, common_config, eventually};
pub use stocklet_test_support::harness::{as_user, violated_fields};
use stocklet_test_support::{NatsServer, ServiceHarness, TestDb};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const ADMIN_EMAIL: &str = "Admin@Example.com";
pub const ADMIN_PASSWORD: &str = "admin password";

es_core::domain_events! {
    /// The user service's events, as it writes them.
    pub enum UserEvent {
        Registered(events::UserRegistered),
        EmailUpdated(events::UserEmailUpdated),
        Deleted(events::UserDeleted),
    }
}

/// The user service, played by the test: writes its events into the USER
/// stream, as the user service does.
pub struct Users(JetStreamEventStore);

impl Users {
    pub async fn on(nats: &NatsServer) -> Users {
        Users(stocklet_service_kit::lifecycle::event_store(
            nats.client().await,
        ))
    }

    /// Registers a user the way the user service does: hash, hand the hash
    /// over on the AUTH stream, then `UserRegistered` without it. Returns
    /// the user id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let user_id = uuid::Uuid::now_v7().to_string();
        self.hand_over(&user_id, password).await;
        self.record(events::UserRegistered {
            user_id: user_id.clone(),
            email: email.into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            occurred_at_ms: es_core::envelope::now_ms(),
            ..Default::default()
        })
        .await;
        user_id
    }

    /// Hands `password`'s hash for `user_id` to the auth service, as the
    /// user service does before it records the registration.
    pub async fn hand_over(&self, user_id: &str, password: &str) {
        let hash = hash(password).await;
        let stream = streams::AUTH
            .definition()
            .unwrap()
            .ensure(self.0.context())
            .await
            .unwrap();
        stocklet_service_kit::registration::hand_over(
            &self.0,
            &stream,
            user_id,
            &hash,
            &es_core::CommandContext::default(),
            es_core::envelope::now_ms(),
        )
        .await
        .unwrap();
    }

    /// Records one user event on its user's subject, on the USER stream
    /// (created if auth has not yet).
    pub async fn record(&self, event: impl Into<UserEvent>) {
        let (store, kind) = (&self.0, "user");
        let definition = streams::USER.definition().unwrap();
        let stream = definition.ensure(store.context()).await.unwrap();
        let appended = match event.into() {
            UserEvent::Registered(e) => {
                let id = e.user_id.clone();
                append_event(store, &stream, kind, &id, e).await
            }
            UserEvent::EmailUpdated(e) => {
                let id = e.user_id.clone();
                append_event(store, &stream, kind, &id, e).await
            }
            UserEvent::Deleted(e) => {
                let id = e.user_id.clone();
                append_event(store, &stream, kind, &id, e).await
            }
        };
        appended.unwrap();
    }
}

/// `password`'s Argon2id hash, as the user service makes it.
pub async fn hash(password: &str) -> PasswordHash {
    Passwords::new(1)
        .await
        .unwrap()
        .hash(Password::parse(password).unwrap())
        .await
        .unwrap()
}

/// Everything that outlives one run of the service.
pub struct Infra {
    pub nats: NatsServer,
    pub db: TestDb,
    pub data_dir: TempDir,
    pub users: Users,
}

impl Infra {
    pub async fn start() -> Infra {
        let nats = NatsServer::start().await;
        nats.provision().await;
        let users = Users::on(&nats).await;
        Infra {
            nats,
            db: TestDb::create().await,
            data_dir: tempfile::tempdir().unwrap(),
            users,
        }
    }

    pub fn config(&self) -> Config {
        Config {
            common: common_config(self.nats.url(), &self.db),
            listen_addr: LISTEN_ADDR.into(),
            signing_key: KeySource::Generated(
                self.data_dir.path().join("auth/jwt-signing-key.pem"),
            ),
            token_ttl_s: 900,
            hash_concurrency: 2,
            admin: None,
            // Out of the way of the other tests; `guesses.rs` sets its own.
            failed_logins_per_hour: 10_000,
            failed_logins_burst: 10_000,
        }
    }
}

/// The auth service under test; derefs to its [`ServiceHarness`]
/// (`client`, `nats`, `db`, `store`, `events`, ...).
pub struct TestApp {
    harness: ServiceHarness<AuthServiceClient<Channel>>,
    pub data_dir: TempDir,
    pub users: Users,
}

impl Deref for TestApp {
    type Target = ServiceHarness<AuthServiceClient<Channel>>;

    fn deref(&self) -> &Self::Target {
        &self.harness
    }
}

pub fn with_admin(mut config: Config) -> Config {
    config.admin = Some(AdminAccount {
        email: ADMIN_EMAIL.into(),
        password: Secret::new(ADMIN_PASSWORD),
    });
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        let infra = Infra::start().await;
        let config = infra.config();
        Self::spawn_with(infra, config).await
    }

    /// Starts the service on existing infrastructure with `config` (its
    /// common settings are the harness's).
    pub async fn spawn_with(infra: Infra, config: Config) -> TestApp {
        let Infra {
            nats,
            db,
            data_dir,
            users,
        } = infra;
        let start =
            |common, listener, shutdown| run(Config { common, ..config }, listener, shutdown);
        let ready = async |client: &mut AuthServiceClient<Channel>| {
            client.get_service_info(pb::GetServiceInfoRequest {}).await
        };
        let harness = ServiceHarness::start(nats, db, start, AuthServiceClient::new, ready).await;
        TestApp {
            harness,
            data_dir,
            users,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> Infra {
        let (nats, db) = self.harness.stop().await;
        Infra {
            nats,
            db,
            data_dir: self.data_dir,
            users: self.users,
        }
    }

    pub async fn login(
        &self,
        login: Login,
        password: &str,
    ) -> Result<pb::LoginPasswordResponse, Status> {
        let request = Request::new(pb::LoginPasswordRequest {
            login: Some(login),
            password: password.into(),
        });
        Ok(self
            .client
            .clone()
            .login_password(request)
            .await?
            .into_inner())
    }

    /// Logs in, retrying while auth catches up with the user service.
    pub async fn login_eventually(
        &self,
        login: Login,
        password: &str,
    ) -> pb::LoginPasswordResponse {
        eventually(SETTLE, "a login", async || {
            self.login(login.clone(), password).await
        })
        .await
    }

    /// Waits until logging in fails for good (after a deletion or change).
    pub async fn login_fails_eventually(&self, login: Login, password: &str) -> Status {
        eventually(SETTLE, "a refused login", async || {
            match self.login(login.clone(), password).await {
                Ok(response) => Err(response),
                Err(status) => Ok(status),
            }
        })
        .await
    }

    pub async fn jwks(&self) -> Vec<pb::Jwk> {
        self.client
            .clone()
            .get_jwks(Request::new(pb::GetJwksRequest {}))
            .await
            .unwrap()
            .into_inner()
            .keys
    }

    pub async fn set_password(
        &self,
        identity: &Identity,
        user_id: &str,
        password: &str,
        current_password: &str,
    ) -> Result<(), Status> {
        let request = as_user(
            identity,
            pb::SetPasswordRequest {
                user_id: user_id.into(),
                password: password.into(),
                current_password: current_password.into(),
            },
        );
        self.client.clone().set_password(request).await?;
        Ok(())
    }

    /// Every event in the AUTH stream, in order: (event type, payload).
    pub async fn auth_events(&self) -> Vec<(String, Vec<u8>)> {
        self.events(streams::AUTH).await
    }
}

/// Verifies `token` as the gateway will: ES256 only, against the JWKS.
/// Returns the header and the claims.
pub fn verify(token: &str, jwks: &[pb::Jwk]) -> (serde_json::Value, serde_json::Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS");
    let json = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(part).unwrap()).unwrap()
    };
    let (header, claims) = (json(parts[0]), json(parts[1]));
    assert_eq!(header["alg"], "ES256");
    let jwk = jwks
        .iter()
        .find(|k| header["kid"] == k.kid.as_str())
        .expect("the token's kid is in the JWKS");
    let mut point = vec![4u8];
    point.extend(Base64UrlUnpadded::decode_vec(&jwk.x).unwrap());
    point.extend(Base64UrlUnpadded::decode_vec(&jwk.y).unwrap());
    let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
    let signature =
        Signature::from_slice(&Base64UrlUnpadded::decode_vec(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the signature verifies");
    (header, claims)
}
