//! The forged-token suite: every case is 401, and a valid token passes. Plus
//! key rotation: an unknown kid refreshes the JWKS.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::{ALICE, Key, TestApp, b64, claims, now_s, signing_input};

/// HMAC-SHA256 (RFC 2104), to forge an HS256 token keyed with the public
/// key, as the classic algorithm-confusion attack does.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn with(mut value: Value, key: &str, set: Value) -> Value {
    value[key] = set;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

#[tokio::test]
async fn forged_tokens_are_all_refused() {
    let app = TestApp::spawn().await;
    let key = &app.key;
    let good = claims(ALICE, "customer");
    let header = key.header();
    let now = now_s();

    let valid = key.token(ALICE, "customer");
    assert_eq!(app.get("/v1/order/list", Some(&valid)).await.status, 200);

    let jwk = serde_json::to_value(key.jwk()).unwrap();
    let public_key_bytes = key
        .signing
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    let hs256_header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid});
    let hs256_input = signing_input(&hs256_header, &good);
    let hs256 = format!(
        "{hs256_input}.{}",
        b64(&hmac_sha256(&public_key_bytes, hs256_input.as_bytes()))
    );
    let hs256_jwk_json = format!(
        "{hs256_input}.{}",
        b64(&hmac_sha256(
            jwk.to_string().as_bytes(),
            hs256_input.as_bytes()
        ))
    );

    let attacker = Key::generate(&key.kid);
    let tampered = {
        let parts: Vec<&str> = valid.split('.').collect();
        let admin_claims = with(good.clone(), "role", json!("admin"));
        format!(
            "{}.{}.{}",
            parts[0],
            b64(admin_claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let zero_signature = format!("{}.{}", signing_input(&header, &good), b64(&[0u8; 64]));

    let cases: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.",
                signing_input(&json!({"alg": "none", "kid": key.kid}), &good)
            ),
        ),
        (
            "alg none, signed",
            attacker.sign(&json!({"alg": "none", "kid": key.kid}), &good),
        ),
        ("HS256 keyed with the public key", hs256),
        ("HS256 keyed with the JWK", hs256_jwk_json),
        (
            "expired",
            key.sign(&header, &with(good.clone(), "exp", json!(now - 3600))),
        ),
        (
            "not yet valid",
            key.sign(&header, &with(good.clone(), "nbf", json!(now + 3600))),
        ),
        (
            "issued in the future",
            key.sign(&header, &with(good.clone(), "iat", json!(now + 3600))),
        ),
        (
            "wrong iss",
            key.sign(&header, &with(good.clone(), "iss", json!("evil"))),
        ),
        (
            "wrong aud",
            key.sign(&header, &with(good.clone(), "aud", json!("other"))),
        ),
        (
            "missing exp",
            key.sign(&header, &without(good.clone(), "exp")),
        ),
        (
            "exp as a string",
            key.sign(
                &header,
                &with(good.clone(), "exp", json!((now + 600).to_string())),
            ),
        ),
        (
            "missing sub",
            key.sign(&header, &without(good.clone(), "sub")),
        ),
        (
            "unknown role",
            key.sign(&header, &with(good.clone(), "role", json!("root"))),
        ),
        ("tampered payload", tampered),
        ("all-zero signature", zero_signature),
        (
            "signed by another key, same kid",
            attacker.sign(&header, &good),
        ),
        (
            "unknown kid",
            Key::generate("k-unknown").token(ALICE, "customer"),
        ),
        ("no kid", key.sign(&without(header.clone(), "kid"), &good)),
        (
            "jku header",
            key.sign(
                &with(header.clone(), "jku", json!("https://evil.example/jwks")),
                &good,
            ),
        ),
        (
            "jwk header",
            attacker.sign(
                &with(
                    attacker.header(),
                    "jwk",
                    serde_json::to_value(attacker.jwk()).unwrap(),
                ),
                &good,
            ),
        ),
        (
            "x5u header",
            key.sign(
                &with(header.clone(), "x5u", json!("https://evil.example/cert")),
                &good,
            ),
        ),
        ("garbage", "not.a.token".into()),
        ("two parts", signing_input(&header, &good)),
        ("empty", String::new()),
    ];
    for (name, token) in cases {
        let answer = app.get("/v1/order/list", Some(&token)).await;
        assert_eq!(answer.status, 401, "{name}: {answer:?}");
        // A forged token is refused on public routes too.
        let public = app.get("/v1/product/list", Some(&token)).await;
        assert_eq!(public.status, 401, "{name} (public route): {public:?}");
    }
    let basic = app
        .send(
            http::Method::GET,
            "/v1/order/list",
            None,
            Vec::new(),
            &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        )
        .await;
    assert_eq!(basic.status, 401);
    app.stop().await;
}

#[tokio::test]
async fn a_new_kid_refreshes_the_jwks() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/v1/order/list", Some(&app.alice())).await.status,
        200
    );
    let calls = *app.auth.jwks_calls.lock().unwrap();
    // The auth service rotates to k2; the gateway and the order service
    // (which verifies the token the gateway passes on) each learn it on
    // first sight.
    let rotated = Key::generate("k2");
    app.auth.keys.lock().unwrap().push(rotated.jwk());
    let answer = app
        .get("/v1/order/list", Some(&rotated.token(ALICE, "customer")))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(*app.auth.jwks_calls.lock().unwrap(), calls + 2);
    // Known keys are served from the cache.
    app.get("/v1/order/list", Some(&app.alice())).await;
    assert_eq!(*app.auth.jwks_calls.lock().unwrap(), calls + 2);
    app.stop().await;
}
