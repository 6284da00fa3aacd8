//! The public gRPC contract, as a client with nothing but the ports sees it.
//!
//! The all-in-one binary runs on a private nats-server and database with the
//! demo data. The client knows no .proto file and has no generated stub: it
//! asks each port's server reflection what it serves, builds a descriptor
//! pool from the answers, and calls methods with prost-reflect's
//! `DynamicMessage`, as grpcurl does. It signs in with the auth service's
//! `LoginPassword` and sends `authorization: Bearer <token>`; what it may
//! then do is what the same user may do through the gateway (checked against
//! the gateway's REST answers), and nothing more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use prost_reflect::prost::Message as _;
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor};
use serde_json::{Value, json};
use stocklet_service_kit::access;
use stocklet_service_kit::dynamic::DynamicCodec;
use stocklet_service_kit::grpc::ALWAYS_SERVED;
use stocklet_test_support::{NatsServer, TestDb};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::{SERVICES, Stocklet, free_ports};

/// What each port serves besides health and reflection, in [`SERVICES`]
/// order.
const SERVED: [&[&str]; 7] = [
    &["stocklet.auth.v1.AuthService"],
    &["stocklet.user.v1.UserService"],
    &["stocklet.product.v1.ProductService"],
    &["stocklet.warehouse.v1.WarehouseService"],
    &[
        "stocklet.order.v1.DeadLetterService",
        "stocklet.order.v1.OrderService",
    ],
    &["stocklet.payment.v1.PaymentService"],
    &["stocklet.shipping.v1.ShippingService"],
];
/// What a refused token hears, whatever was wrong with it.
const REFUSED_TOKEN: &str = "invalid or expired bearer token";
/// How long an order's saga may take to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// One port, as its reflection describes it.
struct Port {
    channel: Channel,
    /// The services it lists, sorted.
    services: Vec<String>,
    /// Every file reflection handed out, with their dependencies.
    pool: DescriptorPool,
}

/// Asks reflection one question.
async fn ask(
    reflection: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    reflection
        .server_reflection_info(tonic::codegen::tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

impl Port {
    /// Lists what the port serves and resolves every file it names.
    async fn discover(port: u16) -> Port {
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let MessageResponse::ListServicesResponse(list) =
            ask(&mut reflection, MessageRequest::ListServices(String::new())).await
        else {
            panic!("port {port} does not list its services");
        };
        let mut services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        services.sort();
        let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
        let mut wanted: Vec<MessageRequest> = services
            .iter()
            .map(|s| MessageRequest::FileContainingSymbol(s.clone()))
            .collect();
        while let Some(request) = wanted.pop() {
            let answer = ask(&mut reflection, request.clone()).await;
            let MessageResponse::FileDescriptorResponse(found) = answer else {
                panic!("port {port} does not resolve {request:?}: {answer:?}");
            };
            for bytes in found.file_descriptor_proto {
                let file = FileDescriptorProto::decode(bytes.as_slice()).unwrap();
                for dependency in &file.dependency {
                    if !files.contains_key(dependency) {
                        wanted.push(MessageRequest::FileByFilename(dependency.clone()));
                    }
                }
                files.insert(file.name().to_owned(), file);
            }
        }
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(files.into_values())
            .unwrap_or_else(|e| panic!("port {port}'s descriptors do not build: {e}"));
        Port {
            channel,
            services,
            pool,
        }
    }

    /// The method at `path` (`package.Service/Method`).
    fn method(&self, path: &str) -> MethodDescriptor {
        let (service, name) = path.split_once('/').unwrap();
        self.pool
            .get_service_by_name(service)
            .unwrap_or_else(|| panic!("reflection did not describe {service}"))
            .methods()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("reflection did not describe {path}"))
    }

    fn request(
        method: &MethodDescriptor,
        metadata: &[(&'static str, &str)],
        body: Value,
    ) -> Request<DynamicMessage> {
        let message = DynamicMessage::deserialize(method.input(), body).unwrap();
        let mut request = Request::new(message);
        for (key, value) in metadata {
            request
                .metadata_mut()
                .insert(*key, MetadataValue::try_from(*value).unwrap());
        }
        request
    }

    /// Calls the unary method at `path` with `body` (proto3 JSON) and
    /// `metadata`; the answer as proto3 JSON.
    async fn call(
        &self,
        path: &str,
        metadata: &[(&'static str, &str)],
        body: Value,
    ) -> Result<Value, Status> {
        let method = self.method(path);
        let request = Self::request(&method, metadata, body);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let path = PathAndQuery::try_from(format!("/{path}")).unwrap();
        let answer = grpc
            .unary(request, path, DynamicCodec(method.output()))
            .await?;
        Ok(serde_json::to_value(answer.into_inner()).unwrap())
    }

    /// The first message of the server-streaming method at `path`.
    async fn first_of_stream(&self, path: &str, body: Value) -> Value {
        let method = self.method(path);
        let request = Self::request(&method, &[], body);
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let uri = PathAndQuery::try_from(format!("/{path}")).unwrap();
        let mut stream = grpc
            .server_streaming(request, uri, DynamicCodec(method.output()))
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().unwrap();
        serde_json::to_value(first).unwrap()
    }
}

/// The `authorization` metadata value of `token`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A JWT's claims, read without verifying.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).unwrap()).unwrap()
}

fn b64_json(value: &Value) -> String {
    Base64UrlUnpadded::encode_string(value.to_string().as_bytes())
}

/// The HTTP status the gateway answers `GET path` with `token`.
fn rest_status(gateway: &str, path: &str, token: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["-H", &format!("authorization: Bearer {token}")])
        .arg(format!("{gateway}{path}"))
        .output()
        .expect("curl is installed (the tour needs it too)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn code_of(answer: &Result<Value, Status>) -> Code {
    answer.as_ref().err().map_or(Code::Ok, Status::code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflection_only_client_calls_every_port_and_acts_as_a_customer_with_a_bearer_token() {
    let nats = NatsServer::start().await;
    nats.provision().await; // as `stocklet provision` does
    let db = TestDb::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let ports = free_ports(8);
    let gateway = format!("http://127.0.0.1:{}", ports[7]);
    let mut stocklet = Stocklet::start(&nats, &db, &ports, data_dir.path());
    stocklet.await_ready(&gateway);
    stocklet.await_seeded();

    // Every port lists exactly what it serves, reflection describes every
    // method of it, and health answers (a check and a watch).
    for (i, name) in SERVICES.iter().enumerate() {
        let port = Port::discover(ports[i]).await;
        let mut expected: Vec<String> = SERVED[i]
            .iter()
            .chain(ALWAYS_SERVED.iter())
            .map(|s| (*s).to_owned())
            .collect();
        expected.sort();
        assert_eq!(port.services, expected, "{name}'s port");
        for service in SERVED[i] {
            let described = port.pool.get_service_by_name(service).unwrap();
            assert!(described.methods().len() > 0, "{service} has methods");
            let health = json!({"service": service});
            let check = port
                .call("grpc.health.v1.Health/Check", &[], health.clone())
                .await
                .unwrap();
            assert_eq!(check["status"], "SERVING", "{service}");
            let watched = port
                .first_of_stream("grpc.health.v1.Health/Watch", health)
                .await;
            assert_eq!(watched["status"], "SERVING", "{service}");
        }
    }
    let port = async |name: &str| {
        let index = SERVICES.iter().position(|s| *s == name).unwrap();
        Port::discover(ports[index]).await
    };
    let auth = port("AUTH").await;
    let user = port("USER").await;
    let product = port("PRODUCT").await;
    let order = port("ORDER").await;

    // Sign in with a password, as a client would.
    let login = async |email: &str, password: &str| {
        let answer = auth
            .call(
                "stocklet.auth.v1.AuthService/LoginPassword",
                &[],
                json!({"email": email, "password": password}),
            )
            .await
            .unwrap();
        assert_eq!(answer["tokenType"], "Bearer");
        answer["accessToken"].as_str().unwrap().to_owned()
    };
    let ada = login("ada@example.com", "stocklet-ada").await;
    let grace = login("grace@example.com", "stocklet-grace").await;
    let ada_id = claims(&ada)["sub"].as_str().unwrap().to_owned();
    let (ada_bearer, grace_bearer) = (bearer(&ada), bearer(&grace));
    let as_ada = [("authorization", ada_bearer.as_str())];
    let as_grace = [("authorization", grace_bearer.as_str())];

    // A public read needs no token; placing an order needs one.
    let catalogue = product
        .call(
            "stocklet.product.v1.ProductService/ViewProducts",
            &[],
            json!({"pageSize": 10}),
        )
        .await
        .unwrap();
    let cup = catalogue["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Espresso cup")
        .expect("the demo catalogue has the espresso cup")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cart = json!({"cart": {"items": {cup.as_str(): "2"}}});
    let anonymous = order
        .call(
            "stocklet.order.v1.OrderService/PlaceOrder",
            &[],
            cart.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert_eq!(anonymous.message(), "authentication required");

    // Ada places an order and reads it back until the saga approves it.
    let placed = order
        .call("stocklet.order.v1.OrderService/PlaceOrder", &as_ada, cart)
        .await
        .unwrap();
    assert_eq!(placed["order"]["customerId"], ada_id.as_str());
    assert_eq!(placed["order"]["status"], "ORDER_STATUS_PROCESSING");
    let order_id = placed["order"]["id"].as_str().unwrap().to_owned();
    let view = json!({"orderId": order_id});
    let deadline = Instant::now() + SETTLE;
    let approved = loop {
        let seen = order
            .call(
                "stocklet.order.v1.OrderService/ViewOrder",
                &as_ada,
                view.clone(),
            )
            .await
            .unwrap();
        if seen["order"]["status"] == "ORDER_STATUS_APPROVED" {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "the order did not settle: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(approved["order"]["totalCents"], "2999", "2 × 12.50 + 4.99");
    let mine = order
        .call(
            "stocklet.order.v1.OrderService/ViewOrders",
            &as_ada,
            json!({}),
        )
        .await
        .unwrap();
    assert!(
        mine["orders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == order_id.as_str()),
        "{mine}"
    );

    // Nothing more: another customer's order is not found, admin methods
    // are denied, exactly as the gateway answers the same token.
    let theirs = order
        .call(
            "stocklet.order.v1.OrderService/ViewOrder",
            &as_grace,
            view.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    assert_eq!(
        rest_status(&gateway, &format!("/v1/order/orders/{order_id}"), &grace),
        404
    );
    for (port, path) in [
        (&order, "stocklet.order.v1.OrderService/ListStuckSagas"),
        (
            &order,
            "stocklet.order.v1.DeadLetterService/ListDeadLetters",
        ),
        (&user, "stocklet.user.v1.UserService/ListUsers"),
    ] {
        let denied = port.call(path, &as_ada, json!({})).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{path}: {denied:?}");
    }
    assert_eq!(rest_status(&gateway, "/v1/order/sagas/stuck", &ada), 403);
    // Identity metadata next to a token counts for nothing without the
    // internal token: the caller is the token's.
    let claimed = order
        .call(
            "stocklet.order.v1.OrderService/ListStuckSagas",
            &[
                as_ada[0],
                ("x-stocklet-user-id", "root"),
                ("x-stocklet-role", "admin"),
            ],
            json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(claimed.code(), Code::PermissionDenied, "{claimed:?}");

    // Tokens that do not verify are refused, and say only that.
    let [header, _, signature]: [&str; 3] = ada.split('.').collect::<Vec<_>>().try_into().unwrap();
    let mut admin_claims = claims(&ada);
    admin_claims["role"] = json!("admin");
    let tampered = format!("{header}.{}.{signature}", b64_json(&admin_claims));
    let unsigned = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT"})),
        b64_json(&admin_claims)
    );
    // Signed with the auth service's own key, an hour ago, for a minute.
    let pem = std::fs::read_to_string(data_dir.path().join("auth/jwt-signing-key.pem")).unwrap();
    let key = stocklet_auth::tokens::parse_pem(&pem).unwrap();
    let signer = stocklet_auth::tokens::TokenSigner::new(
        &key,
        "stocklet-auth".into(),
        "stocklet".into(),
        60,
    );
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let customer = stocklet_auth::domain::Role::Customer;
    let expired = signer.issue(&ada_id, customer, now - 3600).token;
    let fresh = signer.issue(&ada_id, customer, now).token;
    let list = "stocklet.order.v1.OrderService/ViewOrders";
    order
        .call(
            list,
            &[("authorization", bearer(&fresh).as_str())],
            json!({}),
        )
        .await
        .expect("the same key's fresh token is accepted");
    for (what, token) in [
        ("tampered", tampered.as_str()),
        ("alg none", unsigned.as_str()),
        ("expired", expired.as_str()),
        ("garbage", "not-a-token"),
    ] {
        let refused = order
            .call(
                list,
                &[("authorization", bearer(token).as_str())],
                json!({}),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{what}: {refused:?}");
        assert_eq!(refused.message(), REFUSED_TOKEN, "{what}");
        assert_eq!(
            rest_status(&gateway, "/v1/order/list", token),
            401,
            "{what}"
        );
    }
    let basic = order
        .call(
            list,
            &[("authorization", "Basic YWRhOnN0b2NrbGV0LWFkYQ==")],
            json!({}),
        )
        .await
        .unwrap_err();
    assert_eq!(basic.code(), Code::Unauthenticated, "{basic:?}");

    // Every method of every port answers: anonymously, a method that is
    // not public is refused before anything runs; with a token, each
    // answers its own way (never unimplemented, refused or failing).
    for (i, port) in ports.iter().take(SERVICES.len()).enumerate() {
        let port = Port::discover(*port).await;
        for service in SERVED[i] {
            let described = port.pool.get_service_by_name(service).unwrap();
            for method in described.methods() {
                assert!(
                    !method.is_client_streaming() && !method.is_server_streaming(),
                    "{}",
                    method.full_name()
                );
                let path = format!("{service}/{}", method.name());
                let anonymous = port.call(&path, &[], json!({})).await;
                if access::is_public(method.full_name()) {
                    assert!(
                        !matches!(
                            code_of(&anonymous),
                            Code::Unauthenticated | Code::Unimplemented | Code::Internal
                        ),
                        "{path} is public: {anonymous:?}"
                    );
                } else {
                    let refused = anonymous.unwrap_err();
                    assert_eq!(refused.code(), Code::Unauthenticated, "{path}");
                    assert_eq!(refused.message(), "authentication required", "{path}");
                }
                let answered = port.call(&path, &as_ada, json!({})).await;
                assert!(
                    !matches!(
                        code_of(&answered),
                        Code::Unimplemented
                            | Code::Unauthenticated
                            | Code::Internal
                            | Code::Unknown
                            | Code::Unavailable
                            | Code::DataLoss
                    ),
                    "{path} as a customer: {answered:?}"
                );
            }
        }
    }
    stocklet.stop();
}
