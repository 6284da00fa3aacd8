//! Logins, tokens and the JWKS; credentials following users (also across a
//! restart of auth); SetPassword's rules; the admin bootstrap.

use std::time::Duration;

use p256::pkcs8::{EncodePrivateKey, LineEnding};
use stocklet_auth::tokens::{KeySource, public_jwk};
use stocklet_proto::stocklet::auth::v1 as pb;
use stocklet_proto::stocklet::auth::v1::login_password_request::Login;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_service_kit::{Identity, Secret};
use tonic::{Code, Request};

use crate::app::*;

fn by_id(id: &str) -> Login {
    Login::UserId(id.into())
}

fn by_email(email: &str) -> Login {
    Login::Email(email.into())
}

fn count(events: &[(String, Vec<u8>)], event_type: &str) -> usize {
    events.iter().filter(|(t, _)| t == event_type).count()
}

#[tokio::test]
async fn a_registered_user_logs_in_with_a_token_the_jwks_verifies() {
    let app = TestApp::spawn().await;
    let jwks = app.jwks().await;
    assert_eq!(jwks.len(), 1);
    let jwk = &jwks[0];
    assert_eq!(
        (
            jwk.kty.as_str(),
            jwk.crv.as_str(),
            jwk.alg.as_str(),
            jwk.r#use.as_str()
        ),
        ("EC", "P-256", "ES256", "sig")
    );

    let ann = app.users.register("Ann@Example.com", "correct horse").await;
    let response = app.login_eventually(by_id(&ann), "correct horse").await;
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in_s, 900);
    let (header, claims) = verify(&response.access_token, &jwks);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["sub"], ann.as_str());
    assert_eq!(claims["role"], "customer");
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some("stocklet-auth"), Some("stocklet"))
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    assert!((iat - es_core::envelope::now_ms() / 1000).abs() < 60);

    // By email, in any case.
    let by_mail = app
        .login_eventually(by_email(" ann@EXAMPLE.com"), "correct horse")
        .await;
    assert_eq!(verify(&by_mail.access_token, &jwks).1["sub"], ann.as_str());

    // Wrong passwords and unknown users get the same answer.
    for (login, password) in [
        (by_id(&ann), "wrong horse"),
        (by_email("ann@example.com"), "Correct horse"),
        (by_id(&uuid::Uuid::now_v7().to_string()), "correct horse"),
        (by_email("nobody@example.com"), "correct horse"),
    ] {
        let status = app.login(login, password).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let stored = app.auth_events().await;
    assert_eq!(count(&stored, "stocklet.events.v1.CredentialsCreated"), 1);
    app.stop().await;
}

#[tokio::test]
async fn registrations_made_while_auth_is_down_get_credentials_when_it_returns() {
    let app = TestApp::spawn().await;
    let ann = app.users.register("ann@example.com", "ann password").await;
    app.login_eventually(by_id(&ann), "ann password").await;
    let infra = app.stop().await;

    // Auth is down: the user service registers and answers anyway.
    let bob = infra
        .users
        .register("bob@example.com", "bob password")
        .await;
    let config = infra.config();
    let app = TestApp::spawn_with(infra, config).await;

    // Consistent in the end: Bob's credentials exist and he logs in.
    let token = app
        .login_eventually(by_email("bob@example.com"), "bob password")
        .await;
    assert_eq!(
        verify(&token.access_token, &app.jwks().await).1["sub"],
        bob.as_str()
    );
    app.login(by_id(&ann), "ann password").await.unwrap();
    let stored = app.auth_events().await;
    assert_eq!(count(&stored, "stocklet.events.v1.CredentialsCreated"), 2);
    app.stop().await;
}

#[tokio::test]
async fn tokens_survive_a_restart_because_the_generated_key_is_kept() {
    let app = TestApp::spawn().await;
    let ann = app.users.register("ann@example.com", "ann password").await;
    let token = app.login_eventually(by_id(&ann), "ann password").await;
    let before = app.jwks().await;
    let infra = app.stop().await;
    let config = infra.config();
    let app = TestApp::spawn_with(infra, config).await;
    let after = app.jwks().await;
    assert_eq!(before, after);
    verify(&token.access_token, &after);
    app.stop().await;
}

#[tokio::test]
async fn a_configured_key_signs_the_tokens() {
    let infra = Infra::start().await;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let mut config = infra.config();
    config.signing_key = KeySource::Pem(Secret::new(pem.as_str()));
    let app = TestApp::spawn_with(infra, config).await;
    assert_eq!(app.jwks().await, vec![public_jwk(&secret)]);

    let path = app.data_dir.path().join("configured.pem");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    let infra = app.stop().await;
    let mut config = infra.config();
    config.signing_key = KeySource::File(path);
    let app = TestApp::spawn_with(infra, config).await;
    assert_eq!(app.jwks().await, vec![public_jwk(&secret)]);
    app.stop().await;

    // A key that is not a P-256 key stops the service at start-up.
    let infra = Infra::start().await;
    let mut config = infra.config();
    config.signing_key = KeySource::Pem(Secret::new(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = stocklet_auth::run(config, listener, tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(!error.to_string().contains("AAAA"), "{error}");
}

#[tokio::test]
async fn credentials_follow_email_changes_and_deletions() {
    let app = TestApp::spawn().await;
    let ann = app.users.register("ann@example.com", "ann password").await;
    app.login_eventually(by_id(&ann), "ann password").await;

    app.users
        .record(events::UserEmailUpdated {
            user_id: ann.clone(),
            email: "ann@new.example".into(),
            previous_email: "ann@example.com".into(),
            occurred_at_ms: es_core::envelope::now_ms(),
        })
        .await;
    app.login_eventually(by_email("Ann@New.Example"), "ann password")
        .await;
    let old = app
        .login(by_email("ann@example.com"), "ann password")
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated);

    app.users
        .record(events::UserDeleted {
            user_id: ann.clone(),
            email: "ann@new.example".into(),
            occurred_at_ms: es_core::envelope::now_ms(),
        })
        .await;
    let gone = app
        .login_fails_eventually(by_id(&ann), "ann password")
        .await;
    assert_eq!(gone.code(), Code::Unauthenticated);
    let gone = app
        .login_fails_eventually(by_email("ann@new.example"), "ann password")
        .await;
    assert_eq!(gone.code(), Code::Unauthenticated);
    let stored = app.auth_events().await;
    assert_eq!(
        count(&stored, "stocklet.events.v1.CredentialsEmailChanged"),
        1
    );
    assert_eq!(count(&stored, "stocklet.events.v1.CredentialsRemoved"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_deletion_that_overtakes_the_registration_leaves_no_credentials() {
    let app = TestApp::spawn().await;
    let user_id = uuid::Uuid::now_v7().to_string();
    // Recorded in the "wrong" order, as a concurrent reactor could see them.
    app.users
        .record(events::UserDeleted {
            user_id: user_id.clone(),
            email: "ghost@example.com".into(),
            occurred_at_ms: 2,
        })
        .await;
    app.users.hand_over(&user_id, "ghost password").await;
    app.users
        .record(events::UserRegistered {
            user_id: user_id.clone(),
            email: "ghost@example.com".into(),
            first_name: "G".into(),
            last_name: "H".into(),
            occurred_at_ms: 1,
            ..Default::default()
        })
        .await;
    let witness = app
        .users
        .register("witness@example.com", "witness password")
        .await;
    app.login_eventually(by_id(&witness), "witness password")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = app
        .login(by_id(&user_id), "ghost password")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn users_change_their_own_password_and_admins_anyones() {
    let app = TestApp::spawn().await;
    let ann = app.users.register("ann@example.com", "ann password").await;
    let bob = app.users.register("bob@example.com", "bob password").await;
    app.login_eventually(by_id(&ann), "ann password").await;
    app.login_eventually(by_id(&bob), "bob password").await;
    let as_ann = Identity::customer(ann.clone());

    // Their own, with the current password (user_id empty means "mine").
    app.set_password(&as_ann, "", "ann new password", "ann password")
        .await
        .unwrap();
    app.login(by_id(&ann), "ann new password").await.unwrap();
    assert_eq!(
        app.login(by_id(&ann), "ann password")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let wrong_current = app
        .set_password(&as_ann, &ann, "a third password", "not my password")
        .await
        .unwrap_err();
    assert_eq!(wrong_current.code(), Code::PermissionDenied);
    let no_current = app
        .set_password(&as_ann, &ann, "a third password", "")
        .await
        .unwrap_err();
    assert_eq!(
        (no_current.code(), violated_fields(&no_current)),
        (Code::InvalidArgument, vec!["current_password".to_owned()])
    );

    // Someone else's password is not a customer's business.
    let others = app
        .set_password(&as_ann, &bob, "hijacked", "ann new password")
        .await
        .unwrap_err();
    assert_eq!(others.code(), Code::NotFound);
    app.login(by_id(&bob), "bob password").await.unwrap();

    // An admin needs no current password.
    app.set_password(&Identity::admin("admin-1"), &bob, "reset by admin", "")
        .await
        .unwrap();
    app.login(by_id(&bob), "reset by admin").await.unwrap();
    let unknown = app
        .set_password(
            &Identity::admin("admin-1"),
            &uuid::Uuid::now_v7().to_string(),
            "nobody's password",
            "",
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // Anonymous callers, and forged identities, are turned away.
    let anonymous = app
        .client
        .clone()
        .set_password(Request::new(pb::SetPasswordRequest {
            user_id: ann.clone(),
            password: "x".into(),
            current_password: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(pb::SetPasswordRequest {
        user_id: ann.clone(),
        password: "x".into(),
        current_password: String::new(),
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .set_password(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let stored = app.auth_events().await;
    assert_eq!(count(&stored, "stocklet.events.v1.PasswordChanged"), 2);
    // Hashes in events, never plain passwords.
    assert!(
        stored
            .iter()
            .all(|(_, payload)| !String::from_utf8_lossy(payload).contains("reset by admin"))
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let nothing = app
        .client
        .clone()
        .login_password(Request::new(pb::LoginPasswordRequest {
            login: None,
            password: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(nothing.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&nothing), ["user_id", "password"]);
    let bad_id = app.login(by_id("a.b"), &"p".repeat(129)).await.unwrap_err();
    assert_eq!(violated_fields(&bad_id), ["user_id", "password"]);
    let bad_email = app.login(by_email("  "), "p").await.unwrap_err();
    assert_eq!(violated_fields(&bad_email), ["email"]);

    let admin = Identity::admin("admin-1");
    let bad_set = app.set_password(&admin, "a*", "", "").await.unwrap_err();
    assert_eq!(violated_fields(&bad_set), ["user_id", "password"]);
    let long = app
        .set_password(&admin, "u1", &"p".repeat(129), "")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&long), ["password"]);

    let info = app
        .client
        .clone()
        .get_service_info(Request::new(pb::GetServiceInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "auth");
    app.stop().await;
}

#[tokio::test]
async fn the_first_admin_is_created_once_at_start_up() {
    let infra = Infra::start().await;
    let config = with_admin(infra.config());
    let app = TestApp::spawn_with(infra, config).await;
    let token = app
        .login_eventually(by_email("admin@example.com"), ADMIN_PASSWORD)
        .await;
    let (_, claims) = verify(&token.access_token, &app.jwks().await);
    assert_eq!(claims["role"], "admin");
    let admin_id = claims["sub"].as_str().unwrap().to_owned();
    assert_eq!(admin_id, stocklet_auth::admin_user_id(ADMIN_EMAIL));

    // The admin changes their password; a restart does not reset it.
    app.set_password(
        &Identity::admin(admin_id.clone()),
        "",
        "changed admin password",
        "",
    )
    .await
    .unwrap();
    let infra = app.stop().await;
    let config = with_admin(infra.config());
    let app = TestApp::spawn_with(infra, config).await;
    app.login(by_id(&admin_id), "changed admin password")
        .await
        .unwrap();
    let stored = app.auth_events().await;
    assert_eq!(count(&stored, "stocklet.events.v1.CredentialsCreated"), 1);

    // A customer registered under the admin's address (possible: the
    // bootstrap does not claim it) logs in as themselves, not as the admin.
    let twin = app
        .users
        .register("ADMIN@example.com", "twin password")
        .await;
    let token = app
        .login_eventually(by_email("admin@example.com"), "twin password")
        .await;
    let (_, claims) = verify(&token.access_token, &app.jwks().await);
    assert_eq!(
        (claims["sub"].as_str(), claims["role"].as_str()),
        (Some(twin.as_str()), Some("customer"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_registration_from_before_the_hand_over_still_gets_its_credentials() {
    // Histories written before the hash moved to the AUTH stream carry it
    // inside UserRegistered; replaying them must give the same logins.
    let app = TestApp::spawn().await;
    let user_id = uuid::Uuid::now_v7().to_string();
    let hash = crate::app::hash("legacy password").await;
    #[allow(deprecated)]
    let legacy = events::UserRegistered {
        user_id: user_id.clone(),
        email: "legacy@example.com".into(),
        first_name: "L".into(),
        last_name: "G".into(),
        password_hash: hash.expose().to_owned(),
        occurred_at_ms: 1,
    };
    app.users.record(legacy).await;
    app.login_eventually(by_id(&user_id), "legacy password")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_registration_waits_for_its_handed_over_hash() {
    // A UserRegistered whose hash is not readable yet (a lagging replica)
    // is retried, not dropped: the credentials appear once the hash does.
    let app = TestApp::spawn().await;
    let user_id = uuid::Uuid::now_v7().to_string();
    app.users
        .record(events::UserRegistered {
            user_id: user_id.clone(),
            email: "late@example.com".into(),
            first_name: "L".into(),
            last_name: "T".into(),
            occurred_at_ms: 1,
            ..Default::default()
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = app
        .login(by_id(&user_id), "late password")
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::Unauthenticated);
    app.users.hand_over(&user_id, "late password").await;
    app.login_eventually(by_id(&user_id), "late password").await;
    app.stop().await;
}

#[tokio::test]
async fn new_passwords_follow_the_policy_and_logins_only_their_length() {
    let app = TestApp::spawn().await;
    let ann = app.users.register("ann@example.com", "ann password").await;
    app.login_eventually(by_id(&ann), "ann password").await;
    let as_ann = Identity::customer(ann.clone());
    let admin = Identity::admin("admin-1");

    // Too short, too common (in any case), too long: InvalidArgument naming
    // the field, for a user and for an admin alike.
    for (who, weak, why) in [
        (&as_ann, "7 chars", "at least 8 characters"),
        (&as_ann, "Password1", "most commonly used"),
        (&admin, "iloveyou", "most commonly used"),
        (&admin, &"p".repeat(129) as &str, "at most 128 characters"),
    ] {
        let refused = app
            .set_password(who, &ann, weak, "ann password")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{weak}");
        assert_eq!(violated_fields(&refused), ["password"], "{weak}");
        assert!(refused.message().contains(why), "{weak}: {refused:?}");
    }
    app.login(by_id(&ann), "ann password").await.unwrap();

    // 8 and 128 characters are fine.
    app.set_password(&as_ann, "", "8 chars!", "ann password")
        .await
        .unwrap();
    app.login(by_id(&ann), "8 chars!").await.unwrap();
    let longest = "p".repeat(127) + "!";
    app.set_password(&admin, &ann, &longest, "").await.unwrap();
    app.login(by_id(&ann), &longest).await.unwrap();

    // A login is not judged by the policy: a short or common password is
    // just wrong (401), which tells a guesser nothing about the policy.
    for guess in ["x", "password", "1234567"] {
        let status = app.login(by_id(&ann), guess).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{guess}");
    }
    app.stop().await;
}
