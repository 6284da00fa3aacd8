//! `TestApp`: the gateway in front of the real product and order services
//! (one nats-server, one database), plus a test double of the auth service
//! that serves a JWKS of keys the test holds, so the test can sign tokens.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
use rand_core::OsRng;
use serde_json::{Value, json};
use stocklet_gateway::{Config, StartError};
use stocklet_order::DEFAULT_SHIPPING_FEE_CENTS;
use stocklet_order::domain::Cents;
use stocklet_proto::stocklet::auth::v1 as auth;
use stocklet_proto::stocklet::auth::v1::auth_service_server::{AuthService, AuthServiceServer};
use stocklet_service_kit::Secret;
use stocklet_service_kit::config::CommonConfig;
use stocklet_service_kit::lifecycle::RunError;
use stocklet_test_support::{NatsServer, TestDb};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub const INTERNAL_TOKEN: &str = "test-internal-token";
pub const ISSUER: &str = "stocklet-auth";
pub const AUDIENCE: &str = "stocklet";
pub const ALICE: &str = "0192f0c1-0000-7000-8000-00000000a11c";
pub const BOB: &str = "0192f0c1-0000-7000-8000-000000000b0b";
pub const ADMIN: &str = "0192f0c1-0000-7000-8000-0000000ad111";
/// A password the auth double takes 5 s to refuse.
pub const SLOW_PASSWORD: &str = "slow-password";
pub const P1: &str = "0192f0c1-0000-7000-8000-000000000001";

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

/// The auth service double: a JWKS the test controls, and a login that
/// always fails.
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
        if request.get_ref().password == SLOW_PASSWORD {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Err(Status::unauthenticated("wrong user or password"))
    }

    async fn set_password(
        &self,
        _: Request<auth::SetPasswordRequest>,
    ) -> Result<Response<auth::SetPasswordResponse>, Status> {
        Err(Status::unimplemented("not in the double"))
    }
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
    _db: TestDb,
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

    /// Starts everything, letting `tweak` change the gateway's settings.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let nats = NatsServer::start().await;
        let db = TestDb::create().await;
        let common = CommonConfig {
            nats_url: nats.url(),
            database_url: Secret::new(db.url.clone()),
            internal_token: Secret::new(INTERNAL_TOKEN),
            stream_replicas: 1,
        };
        let shutdown = CancellationToken::new();

        let (product_listener, product_addr) = listen().await;
        let product = tokio::spawn(stocklet_product::run(
            stocklet_product::Config {
                common: common.clone(),
                listen_addr: "127.0.0.1:0".into(),
            },
            product_listener,
            shutdown.clone(),
        ));
        let (order_listener, order_addr) = listen().await;
        let order = tokio::spawn(stocklet_order::run(
            stocklet_order::Config {
                common: common.clone(),
                listen_addr: "127.0.0.1:0".into(),
                shipping_fee: Cents::parse(DEFAULT_SHIPPING_FEE_CENTS).unwrap(),
            },
            order_listener,
            shutdown.clone(),
        ));

        let key = Key::generate("k1");
        let auth = AuthDouble::default();
        auth.keys.lock().unwrap().push(key.jwk());
        let (auth_listener, auth_addr) = listen().await;
        let auth_server = tonic::transport::Server::builder()
            .add_service(AuthServiceServer::new(auth.clone()))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(auth_listener),
                shutdown.clone().cancelled_owned(),
            );
        tokio::spawn(auth_server);

        // Backends not started here point at a closed port.
        let mut backends: BTreeMap<String, String> = stocklet_gateway::BACKENDS
            .iter()
            .map(|(name, _)| ((*name).to_owned(), "http://127.0.0.1:9".to_owned()))
            .collect();
        backends.insert("auth".into(), format!("http://{auth_addr}"));
        backends.insert("product".into(), format!("http://{product_addr}"));
        backends.insert("order".into(), format!("http://{order_addr}"));
        let mut config = Config::from_env().unwrap();
        config.backends = backends;
        config.internal_token = Secret::new(INTERNAL_TOKEN);
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
            services: vec![product, order],
            _nats: nats,
            _db: db,
        };
        app.wait_until_ready().await;
        app
    }

    /// Waits until both real services answer through the gateway.
    async fn wait_until_ready(&self) {
        for _ in 0..300 {
            let product = self.get("/v1/product/service", None).await;
            let order = self.get("/v1/order/service", None).await;
            if product.status == 200 && order.status == 200 {
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
        let response = self.http.request(request).await.unwrap();
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
        self.post("/v1/order/place", Some(token), &json!({"items": items}))
            .await
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
