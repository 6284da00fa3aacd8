//! `TestApp`: the gateway in front of the real product and order services
//! (one nats-server, one database), plus a test double of the auth service
//! that serves a JWKS of keys the test holds, so the test can sign tokens.
//! `TestApp::spawn_full` starts every real service instead, for the route
//! tests: users register and log in through the gateway, and the real auth
//! service signs with the test's key.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use rand_core::OsRng;
use serde_json::{Value, json};
use stocklet_auth::tokens::KeySource;
use stocklet_gateway::{Config, StartError};
use stocklet_order::DEFAULT_SHIPPING_FEE_CENTS;
use stocklet_order::domain::Cents;
use stocklet_proto::stocklet::auth::v1 as auth;
use stocklet_proto::stocklet::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use stocklet_service_kit::Secret;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_test_support::harness::{LISTEN_ADDR, common_config};
use stocklet_test_support::{NatsServer, TestDb};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub const ISSUER: &str = "stocklet-auth";
pub const AUDIENCE: &str = "stocklet";
pub const ALICE: &str = "0192f0c1-0000-7000-8000-00000000a11c";
pub const BOB: &str = "0192f0c1-0000-7000-8000-000000000b0b";
pub const ADMIN: &str = "0192f0c1-0000-7000-8000-0000000ad111";
/// A password the auth double takes 5 s to refuse.
pub const SLOW_PASSWORD: &str = "slow-password";
/// The one password the auth double accepts, for any account: at login,
/// and as the current password of a change.
pub const DOUBLE_PASSWORD: &str = "the double's password";
pub const P1: &str = "0192f0c1-0000-7000-8000-000000000001";
/// The bootstrap admin of the full app.
pub const ADMIN_EMAIL: &str = "admin@stocklet.test";
pub const ADMIN_PASSWORD: &str = "admin password 1";
/// The password every user of the full app registers with.
pub const PASSWORD: &str = "correct horse battery";
/// Units one shipment carries in the full app.
pub const SHIPMENT_CAPACITY: i64 = 10;
/// How long an asynchronous effect may take to show.
pub const SETTLE: Duration = Duration::from_secs(20);

/// A signing key the auth double publishes (or not).
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    pub signing: SigningKey,
}

impl Key {
    pub fn generate(kid: &str) -> Key {
        Key {
            kid: kid.into(),
            signing: SigningKey::random(&mut OsRng),
        }
    }

    pub fn jwk(&self) -> auth::Jwk {
        let point = self.signing.verifying_key().to_encoded_point(false);
        auth::Jwk {
            kty: "EC".into(),
            r#use: "sig".into(),
            alg: "ES256".into(),
            crv: "P-256".into(),
            x: Base64UrlUnpadded::encode_string(point.x().unwrap()),
            y: Base64UrlUnpadded::encode_string(point.y().unwrap()),
            kid: self.kid.clone(),
        }
    }

    /// A compact JWS of `header` and `claims`, signed with this key.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!(
            "{input}.{}",
            Base64UrlUnpadded::encode_string(&signature.to_bytes())
        )
    }

    /// A valid token for `user_id` with `role`.
    pub fn token(&self, user_id: &str, role: &str) -> String {
        self.sign(&self.header(), &claims(user_id, role))
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "JWT", "kid": self.kid})
    }
}

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn claims(user_id: &str, role: &str) -> Value {
    let now = now_s();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "role": role, "iat": now, "exp": now + 600})
}

/// The auth service double: a JWKS the test controls, and a login and a
/// password change that succeed with [`DOUBLE_PASSWORD`] only.
#[derive(Clone, Default)]
pub struct AuthDouble {
    pub keys: Arc<Mutex<Vec<auth::Jwk>>>,
    pub jwks_calls: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl AuthService for AuthDouble {
    async fn get_service_info(
        &self,
        _: Request<auth::GetServiceInfoRequest>,
    ) -> Result<Response<auth::GetServiceInfoResponse>, Status> {
        Ok(Response::new(auth::GetServiceInfoResponse {
            name: "auth (test double)".into(),
            ..Default::default()
        }))
    }

    async fn get_jwks(
        &self,
        _: Request<auth::GetJwksRequest>,
    ) -> Result<Response<auth::GetJwksResponse>, Status> {
        *self.jwks_calls.lock().unwrap() += 1;
        Ok(Response::new(auth::GetJwksResponse {
            keys: self.keys.lock().unwrap().clone(),
        }))
    }

    async fn login_password(
        &self,
        request: Request<auth::LoginPasswordRequest>,
    ) -> Result<Response<auth::LoginPasswordResponse>, Status> {
        match request.get_ref().password.as_str() {
            DOUBLE_PASSWORD => Ok(Response::new(auth::LoginPasswordResponse {
                token_type: "Bearer".into(),
                access_token: "not a real token".into(),
                expires_in_s: 60,
            })),
            SLOW_PASSWORD => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Err(Status::unauthenticated("wrong user or password"))
            }
            _ => Err(Status::unauthenticated("wrong user or password")),
        }
    }

    async fn set_password(
        &self,
        request: Request<auth::SetPasswordRequest>,
    ) -> Result<Response<auth::SetPasswordResponse>, Status> {
        if request.get_ref().current_password == DOUBLE_PASSWORD {
            Ok(Response::new(auth::SetPasswordResponse {}))
        } else {
            Err(Status::permission_denied("permission denied"))
        }
    }
}

/// What a test may change about the services behind the gateway.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// The PostgreSQL server (a test's own `PostgresServer`); default
    /// `DATABASE_URL`.
    pub postgres_url: Option<String>,
    /// `STOCKLET_IDEMPOTENCY_TTL_S` of every service; default a day.
    pub idempotency_ttl: Option<Duration>,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub key: Key,
    pub auth: AuthDouble,
    http: Client<HttpConnector, Full<Bytes>>,
    shutdown: CancellationToken,
    gateway: JoinHandle<Result<(), StartError>>,
    services: Vec<JoinHandle<Result<(), RunError>>>,
    _nats: NatsServer,
    db: TestDb,
}

/// An answer: status, headers and JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub json: Value,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts product and order behind the gateway, with the auth double,
    /// letting `tweak` change the gateway's settings.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(false, tweak, Setup::default()).await
    }

    /// Starts every real service (auth with a bootstrap admin, user,
    /// product, warehouse, order, payment, shipping) behind the gateway.
    /// The auth service signs with `key`, so `alice()`-style tokens work
    /// too; the rate limits are lifted so tests may register and log in
    /// freely.
    pub async fn spawn_full() -> TestApp {
        Self::spawn_full_with(Setup::default()).await
    }

    /// [`spawn_full`](Self::spawn_full) with `setup`.
    pub async fn spawn_full_with(setup: Setup) -> TestApp {
        Self::spawn_full_tweaked(setup, |_| {}).await
    }

    /// [`spawn_full`](Self::spawn_full) with `setup`, letting `tweak`
    /// change the gateway's settings after the limits are lifted.
    pub async fn spawn_full_tweaked(setup: Setup, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let tweak = |config: &mut Config| {
            config.rate_limit_burst = 100_000;
            config.account_rate_limit_burst = 100_000;
            config.register_rate_limit_burst = 100_000;
            tweak(config);
        };
        Self::start(true, tweak, setup).await
    }

    /// [`spawn_with`](Self::spawn_with) (product and order, the auth
    /// double) with `setup`.
    pub async fn spawn_with_setup(setup: Setup, tweak: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(false, tweak, setup).await
    }

    async fn start(full: bool, tweak: impl FnOnce(&mut Config), setup: Setup) -> TestApp {
        let nats = NatsServer::start().await;
        nats.provision().await;
        let db = match &setup.postgres_url {
            Some(url) => TestDb::create_on(url).await,
            None => TestDb::create().await,
        };
        let mut common = common_config(nats.url(), &db);
        if let Some(ttl) = setup.idempotency_ttl {
            common.idempotency_ttl = ttl;
        }
        // The auth service (or its double) listens first, so every service
        // verifies bearer tokens against its JWKS as deployed.
        let (auth_listener, auth_addr) = listen().await;
        common.auth_url = format!("http://{auth_addr}");
        common.jwt.issuer = ISSUER.into();
        common.jwt.audience = AUDIENCE.into();
        // As the gateway's below: the services verify the same tokens.
        common.jwt.min_refresh = Duration::ZERO;
        let shutdown = CancellationToken::new();
        let mut services = Vec::new();
        // Backends not started here point at a closed port.
        let mut backends: BTreeMap<String, String> = stocklet_gateway::BACKENDS
            .iter()
            .map(|(name, _)| ((*name).to_owned(), "http://127.0.0.1:9".to_owned()))
            .collect();
        let mut serve = async |name: &str,
                               task: fn(
            TcpListener,
            CommonConfig,
            CancellationToken,
        ) -> JoinHandle<Result<(), RunError>>| {
            let (listener, addr) = listen().await;
            services.push(task(listener, common.clone(), shutdown.clone()));
            backends.insert(name.into(), format!("http://{addr}"));
        };
        serve("product", |listener, common, shutdown| {
            let mut config = stocklet_product::config_from_env().unwrap();
            (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
            tokio::spawn(stocklet_product::run(config, listener, shutdown))
        })
        .await;
        serve("order", |listener, common, shutdown| {
            let mut config = stocklet_order::Config::from_env().unwrap();
            (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
            config.shipping_fee = Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap();
            tokio::spawn(stocklet_order::run(config, listener, shutdown))
        })
        .await;
        let mut key = Key::generate("k1");
        let auth = AuthDouble::default();
        if full {
            serve("user", |listener, common, shutdown| {
                let mut config = stocklet_user::Config::from_env().unwrap();
                (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
                tokio::spawn(stocklet_user::run(config, listener, shutdown))
            })
            .await;
            serve("warehouse", |listener, common, shutdown| {
                let mut config = stocklet_warehouse::config_from_env().unwrap();
                (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
                tokio::spawn(stocklet_warehouse::run(config, listener, shutdown))
            })
            .await;
            serve("payment", |listener, common, shutdown| {
                let mut config = stocklet_payment::config_from_env().unwrap();
                (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
                tokio::spawn(stocklet_payment::run(config, listener, shutdown))
            })
            .await;
            serve("shipping", |listener, common, shutdown| {
                let mut config = stocklet_shipping::Config::from_env().unwrap();
                (config.common, config.listen_addr) = (common, LISTEN_ADDR.into());
                config.shipment_capacity =
                    stocklet_shipping::domain::Capacity::parse(SHIPMENT_CAPACITY).unwrap();
                tokio::spawn(stocklet_shipping::run(config, listener, shutdown))
            })
            .await;
            // The real auth service signs with the test's key, under the
            // kid it derives (the RFC 7638 thumbprint).
            let secret = p256::SecretKey::from(key.signing.clone());
            key.kid = stocklet_auth::tokens::public_jwk(&secret).kid;
            let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
            let signing_key = KeySource::Pem(Secret::new(pem.as_str()));
            let mut config = stocklet_auth::Config::from_env().unwrap();
            (config.common, config.listen_addr) = (common.clone(), LISTEN_ADDR.into());
            config.signing_key = signing_key;
            config.admin = Some(stocklet_auth::AdminAccount {
                email: ADMIN_EMAIL.into(),
                password: Secret::new(ADMIN_PASSWORD),
            });
            services.push(tokio::spawn(stocklet_auth::run(
                config,
                auth_listener,
                shutdown.clone(),
            )));
            backends.insert("auth".into(), format!("http://{auth_addr}"));
        } else {
            auth.keys.lock().unwrap().push(key.jwk());
            let auth_server = tonic::transport::Server::builder()
                .add_service(AuthServiceServer::new(auth.clone()))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(auth_listener),
                    shutdown.clone().cancelled_owned(),
                );
            tokio::spawn(auth_server);
            backends.insert("auth".into(), format!("http://{auth_addr}"));
        }

        let mut config = Config::from_env().unwrap();
        config.backends = backends;
        config.jwt.issuer = ISSUER.into();
        config.jwt.audience = AUDIENCE.into();
        config.jwt.min_refresh = Duration::ZERO;
        config.cors_origins = vec!["https://shop.example".into()];
        tweak(&mut config);
        let (gateway_listener, addr) = listen().await;
        let gateway = tokio::spawn(stocklet_gateway::run(
            config,
            gateway_listener,
            shutdown.clone(),
        ));

        let app = TestApp {
            addr,
            key,
            auth,
            http: Client::builder(TokioExecutor::new()).build_http(),
            shutdown,
            gateway,
            services,
            _nats: nats,
            db,
        };
        let running: &[&str] = if full {
            &stocklet_gateway::BACKENDS.map(|(name, _)| name)
        } else {
            &["product", "order"]
        };
        app.wait_until_ready(running).await;
        app
    }

    /// Waits until every `running` service answers through the gateway.
    async fn wait_until_ready(&self, running: &[&str]) {
        for _ in 0..300 {
            let mut ready = true;
            for name in running {
                let answer = self.get(&format!("/v1/{name}/service"), None).await;
                ready &= answer.status == 200;
            }
            if ready {
                return;
            }
            assert!(!self.gateway.is_finished(), "the gateway stopped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the services did not become ready");
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.gateway
            .await
            .unwrap()
            .expect("the gateway stops cleanly");
        for service in self.services {
            service.await.unwrap().expect("the service stops cleanly");
        }
    }

    /// Files the event stored at `sequence` of `stream` as a dead letter of
    /// `consumer`, as that consumer does when it gives up on an event.
    pub async fn file_dead_letter(&self, consumer: &str, stream: &str, sequence: u64) {
        let context = self._nats.jetstream().await;
        es_core::deadletter::publish_stored(
            &context,
            &stocklet_service_kit::lifecycle::conventions(),
            consumer,
            stream,
            sequence,
            "a test filed it",
        )
        .await
        .unwrap();
    }

    /// The headers of the last event stored on `subject` of `stream`.
    pub async fn last_event(&self, stream: &str, subject: &str) -> es_core::async_nats::HeaderMap {
        let context = self._nats.jetstream().await;
        context
            .get_stream(stream)
            .await
            .unwrap()
            .get_last_raw_message_by_subject(subject)
            .await
            .unwrap()
            .headers
    }

    /// The payload and header bytes of every message of `stream`, as an
    /// outside subscriber reads them.
    pub async fn stream_bytes(&self, stream: &str) -> Vec<Vec<u8>> {
        let context = self._nats.jetstream().await;
        let mut stream = context.get_stream(stream).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for sequence in 1..=last {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let mut bytes = message.payload.to_vec();
            for (name, values) in message.headers.iter() {
                bytes.extend_from_slice(name.to_string().as_bytes());
                for value in values {
                    bytes.extend_from_slice(value.as_str().as_bytes());
                }
            }
            out.push(bytes);
        }
        out
    }

    /// The services' database (each service in its own schema).
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    pub fn alice(&self) -> String {
        self.key.token(ALICE, "customer")
    }

    pub fn bob(&self) -> String {
        self.key.token(BOB, "customer")
    }

    pub fn admin(&self) -> String {
        self.key.token(ADMIN, "admin")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(http::Method::GET, path, token, Vec::new(), &[])
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(
            http::Method::POST,
            path,
            token,
            body.to_string().into_bytes(),
            &[],
        )
        .await
    }

    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send_with(&self.http, method, path, token, body, headers)
            .await
    }

    /// Posts `body` from the local address `from` (any of 127.0.0.0/8), so
    /// the gateway sees another client.
    pub async fn post_from(
        &self,
        from: IpAddr,
        path: &str,
        token: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(from));
        let http = Client::builder(TokioExecutor::new()).build(connector);
        let body = body.to_string().into_bytes();
        self.send_with(&http, http::Method::POST, path, token, body, headers)
            .await
    }

    async fn send_with(
        &self,
        http: &Client<HttpConnector, Full<Bytes>>,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = http.request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            json,
        }
    }

    /// Creates a product as the admin and returns its JSON.
    pub async fn create_product(&self, name: &str, price_cents: i64) -> Value {
        let answer = self
            .post(
                "/v1/product",
                Some(&self.admin()),
                &json!({"name": name, "description": "", "priceCents": price_cents.to_string()}),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json["product"].clone()
    }

    /// Places an order for `items` with `token`.
    pub async fn place(&self, token: &str, items: &[(&str, i64)]) -> Answer {
        let items: serde_json::Map<String, Value> = items
            .iter()
            .map(|(id, q)| ((*id).to_owned(), json!(q)))
            .collect();
        self.post("/v1/order/place", Some(token), &Value::Object(items))
            .await
    }
}

/// A registered, signed-in user of the full app.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// Helpers of the full app (`TestApp::spawn_full`).
impl TestApp {
    /// Polls `path` with `token` until `done` holds; returns that answer.
    pub async fn eventually(
        &self,
        path: &str,
        token: Option<&str>,
        done: impl Fn(&Answer) -> bool,
    ) -> Answer {
        let what = format!("GET {path} settling");
        stocklet_test_support::eventually(SETTLE, what, async || {
            let answer = self.get(path, token).await;
            if done(&answer) {
                Ok(answer)
            } else {
                Err(answer)
            }
        })
        .await
    }

    /// Sends until the answer is not a 404 (a read model or reactor that
    /// has not caught up yet) or `SETTLE` has passed.
    pub async fn once_known(
        &self,
        method: http::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Answer {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let answer = self
                .send(
                    method.clone(),
                    path,
                    Some(token),
                    body.to_string().into_bytes(),
                    &[],
                )
                .await;
            if answer.status != 404 || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts `body` (no token) until the answer is a 200 or `SETTLE` has
    /// passed: a login while the auth service catches up.
    pub async fn eventually_post(&self, path: &str, body: &Value) -> Answer {
        let what = format!("POST {path} succeeding");
        stocklet_test_support::eventually(SETTLE, what, async || {
            let answer = self.post(path, None, body).await;
            if answer.status == 200 {
                Ok(answer)
            } else {
                Err(answer)
            }
        })
        .await
    }

    /// Logs in with `email` and `password`, waiting for the auth service to
    /// catch up with a fresh registration.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let answer = self
                .post(
                    "/v1/auth/login",
                    None,
                    &json!({"email": email, "password": password}),
                )
                .await;
            if answer.status == 200 {
                assert_eq!(answer.json["tokenType"], "Bearer", "{answer:?}");
                return answer.json["accessToken"].as_str().unwrap().to_owned();
            }
            assert_eq!(answer.status, 401, "{answer:?}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{email} could not log in: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers `email` with `PASSWORD` and logs in.
    pub async fn register(&self, email: &str) -> User {
        let answer = self
            .post(
                "/v1/user/register",
                None,
                &json!({"firstName": "Ann", "lastName": "Lee", "email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let id = answer.json["user"]["id"].as_str().unwrap().to_owned();
        let token = self.login(email, PASSWORD).await;
        User { id, token }
    }

    /// The bootstrap admin, signed in.
    pub async fn admin_user(&self) -> User {
        User {
            id: stocklet_auth::admin_user_id(ADMIN_EMAIL),
            token: self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await,
        }
    }

    /// A product priced `price_cents` with `units` in stock; its id.
    pub async fn stocked_product(&self, admin: &User, price_cents: i64, units: i64) -> String {
        let product = self
            .create_product_as(&admin.token, "Kettle", price_cents)
            .await;
        let id = product["id"].as_str().unwrap().to_owned();
        let added = self
            .once_known(
                http::Method::POST,
                &format!("/v1/warehouse/product/{id}/add"),
                &admin.token,
                &json!({"quantity": units.to_string()}),
            )
            .await;
        assert_eq!(added.status, 200, "{added:?}");
        id
    }

    /// Creates a product with `token` and returns its JSON.
    pub async fn create_product_as(&self, token: &str, name: &str, price_cents: i64) -> Value {
        let answer = self
            .post(
                "/v1/product",
                Some(token),
                &json!({"name": name, "description": "", "priceCents": price_cents.to_string()}),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.json["product"].clone()
    }

    /// Credits `cents` to `customer`'s balance, once the balance exists.
    pub async fn credit(&self, admin: &User, customer: &User, cents: i64) -> Answer {
        let answer = self
            .once_known(
                http::Method::POST,
                &format!("/v1/payment/balance/{}/credit", customer.id),
                &admin.token,
                &json!({"amountCents": cents.to_string()}),
            )
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
    }

    /// Places an order of `units` of `product` for `customer` and waits
    /// until its saga settles; returns the settled order.
    pub async fn settled_order(&self, customer: &User, product: &str, units: i64) -> Value {
        let placed = self.place(&customer.token, &[(product, units)]).await;
        assert_eq!(placed.status, 200, "{placed:?}");
        let id = placed.json["order"]["id"].as_str().unwrap().to_owned();
        let settled = self
            .eventually(
                &format!("/v1/order/orders/{id}"),
                Some(&customer.token),
                |answer| {
                    !matches!(
                        answer.json["order"]["status"].as_str(),
                        Some("ORDER_STATUS_PROCESSING" | "ORDER_STATUS_PENDING") | None
                    )
                },
            )
            .await;
        settled.json["order"].clone()
    }

    /// A customer with an APPROVED order (paid, shipment allocated):
    /// (customer, order id).
    pub async fn customer_with_order(&self, admin: &User, email: &str) -> (User, String) {
        let customer = self.register(email).await;
        let product = self.stocked_product(admin, 1_000, 5).await;
        self.credit(admin, &customer, 10_000).await;
        let order = self.settled_order(&customer, &product, 1).await;
        assert_eq!(order["status"], "ORDER_STATUS_APPROVED", "{order}");
        (customer, order["id"].as_str().unwrap().to_owned())
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// The fields named in an error body's BadRequest details.
pub fn violated_fields(json: &Value) -> Vec<String> {
    json["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["field"].as_str().map(str::to_owned))
        .collect()
}
