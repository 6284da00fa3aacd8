//! `TestApp`: one auth service on a port-0 listener, its own nats-server,
//! database and data directory, with typed client calls as a given
//! identity, and a stand-in for the user service's events.

use std::convert::Infallible;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use es_core::{Aggregate, AggregateId, CommandContext, JetStreamEventStore, Repository};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use stocklet_auth::domain::Password;
use stocklet_auth::password::Passwords;
use stocklet_auth::tokens::KeySource;
use stocklet_auth::{AdminAccount, Config, run};
use stocklet_proto::stocklet::auth::v1 as pb;
use stocklet_proto::stocklet::auth::v1::auth_service_client::AuthServiceClient;
use stocklet_proto::stocklet::auth::v1::login_password_request::Login;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_service_kit::streams;
use stocklet_service_kit::{Identity, Secret};
use stocklet_test_support::{NatsServer, RunningService, TestDb};
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";
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

/// Stands in for the user service's user aggregate: records what it is told.
#[derive(Clone, Debug, Default)]
pub struct FakeUser;

impl Aggregate for FakeUser {
    const TYPE: &'static str = "user";
    type Command = UserEvent;
    type Event = UserEvent;
    type Error = Infallible;

    fn decide(&self, command: &UserEvent) -> Result<Vec<UserEvent>, Infallible> {
        Ok(vec![command.clone()])
    }

    fn apply(&mut self, _event: &UserEvent) {}
}

/// Everything that outlives one run of the service.
pub struct Infra {
    pub nats: NatsServer,
    pub db: TestDb,
    pub data_dir: TempDir,
}

impl Infra {
    pub async fn start() -> Infra {
        Infra {
            nats: NatsServer::start().await,
            db: TestDb::create().await,
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config(&self) -> Config {
        Config {
            common: CommonConfig {
                nats_url: self.nats.url(),
                database_url: Secret::new(self.db.url.clone()),
                internal_token: Secret::new(INTERNAL_TOKEN),
                stream_replicas: 1,
                db_pool_size: stocklet_service_kit::config::DEFAULT_DB_POOL_SIZE,
            },
            listen_addr: "127.0.0.1:0".into(),
            signing_key: KeySource::Generated(
                self.data_dir.path().join("auth/jwt-signing-key.pem"),
            ),
            issuer: "stocklet-auth".into(),
            audience: "stocklet".into(),
            token_ttl_s: 900,
            hash_concurrency: 2,
            admin: None,
        }
    }

    /// The user service: writes its events into the USER stream.
    pub async fn users(&self) -> Repository<FakeUser, JetStreamEventStore> {
        let client = async_nats::connect(self.nats.url()).await.unwrap();
        let store = JetStreamEventStore::new(client);
        let stream = streams::USER
            .definition()
            .unwrap()
            .ensure(store.context())
            .await
            .unwrap();
        Repository::new(store, stream)
    }

    /// Registers a user the way the user service does: hash, then
    /// `UserRegistered` with the hash. Returns the user id.
    pub async fn register(&self, email: &str, password: &str) -> String {
        let hash = Passwords::new(1)
            .await
            .unwrap()
            .hash(Password::parse(password).unwrap())
            .await
            .unwrap();
        let user_id = uuid::Uuid::now_v7().to_string();
        self.record(events::UserRegistered {
            user_id: user_id.clone(),
            email: email.into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            password_hash: hash.expose().to_owned(),
            occurred_at_ms: es_core::envelope::now_ms(),
        })
        .await;
        user_id
    }

    /// Records one user event on its user's subject.
    pub async fn record(&self, event: impl Into<UserEvent>) {
        let event = event.into();
        let user_id = match &event {
            UserEvent::Registered(e) => e.user_id.clone(),
            UserEvent::EmailUpdated(e) => e.user_id.clone(),
            UserEvent::Deleted(e) => e.user_id.clone(),
        };
        let id = AggregateId::parse(user_id).unwrap();
        self.users()
            .await
            .execute(&id, &event, &CommandContext::default())
            .await
            .unwrap();
    }
}

pub struct TestApp {
    pub infra: Infra,
    pub client: AuthServiceClient<Channel>,
    service: RunningService<RunError>,
}

/// A request carrying `identity` the way the gateway sends it.
pub fn as_user<T>(identity: &Identity, message: T) -> Request<T> {
    let mut request = Request::new(message);
    identity.write_metadata(request.metadata_mut(), &Secret::new(INTERNAL_TOKEN));
    request
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

    /// Starts the service on existing infrastructure with `config`.
    pub async fn spawn_with(infra: Infra, config: Config) -> TestApp {
        let (service, channel) =
            RunningService::start(|listener, shutdown| run(config, listener, shutdown)).await;
        TestApp {
            infra,
            client: AuthServiceClient::new(channel),
            service,
        }
    }

    /// Stops the service gracefully and hands back its infrastructure.
    pub async fn stop(self) -> Infra {
        self.service.stop().await;
        self.infra
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
        let mut last = None;
        for _ in 0..200 {
            match self.login(login.clone(), password).await {
                Ok(response) => return response,
                Err(status) => last = Some(status),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("login never succeeded: {last:?}");
    }

    /// Waits until logging in fails for good (after a deletion or change).
    pub async fn login_fails_eventually(&self, login: Login, password: &str) -> Status {
        for _ in 0..200 {
            if let Err(status) = self.login(login.clone(), password).await {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("login kept succeeding");
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

    /// Every event type in the AUTH stream, in order.
    pub async fn auth_events(&self) -> Vec<(String, Vec<u8>)> {
        let client = async_nats::connect(self.infra.nats.url()).await.unwrap();
        let store = JetStreamEventStore::new(client);
        let info = store
            .context()
            .get_stream("AUTH")
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        store
            .read_range(
                &es_core::StreamRef::new("AUTH", "auth"),
                1,
                info.state.last_sequence,
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.raw.event_type, e.raw.payload.to_vec()))
            .collect()
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

/// The fields named in a status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|details| {
            details
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}
