//! Password guessing straight at the auth service's gRPC port, past the
//! gateway and its per-client limits: each account has a budget of failed
//! checks, whoever sends them, and an email and an id of one account share
//! it.

use stocklet_proto::stocklet::auth::v1::login_password_request::Login;
use stocklet_service_kit::Identity;
use tonic::Code;
use tonic_types::StatusExt;

use stocklet_test_support::harness::{SETTLE, eventually};

use crate::app::{Infra, TestApp};

const BURST: u32 = 3;

async fn spawn() -> TestApp {
    let infra = Infra::start().await;
    let mut config = infra.config();
    (config.failed_logins_per_hour, config.failed_logins_burst) = (1, BURST);
    TestApp::spawn_with(infra, config).await
}

/// Registers `email` and waits until its credentials exist, without
/// logging in (a login tried too early would spend a guess).
async fn registered(app: &TestApp, email: &str, password: &str) -> String {
    let before = created(app).await;
    let id = app.users.register(email, password).await;
    eventually(SETTLE, "the credentials", async || {
        let now = created(app).await;
        if now > before { Ok(()) } else { Err(now) }
    })
    .await;
    id
}

async fn created(app: &TestApp) -> usize {
    app.auth_events()
        .await
        .iter()
        .filter(|(t, _)| t == "stocklet.events.v1.CredentialsCreated")
        .count()
}

#[tokio::test]
async fn an_accounts_failed_logins_are_limited_whoever_guesses() {
    let app = spawn().await;
    let ann = registered(&app, "ann@example.com", "ann's password").await;
    let bob = registered(&app, "bob@example.com", "bob's password").await;

    // Right passwords spend nothing.
    for _ in 0..2 * BURST {
        app.login(Login::UserId(ann.clone()), "ann's password")
            .await
            .unwrap();
    }
    // Wrong guesses, by id and by email alike, spend one budget.
    let guesses = [
        Login::UserId(ann.clone()),
        Login::Email("ANN@example.com".into()),
        Login::UserId(ann.clone()),
    ];
    for guess in guesses {
        let wrong = app.login(guess, "a wrong guess").await.unwrap_err();
        assert_eq!(wrong.code(), Code::Unauthenticated);
    }
    let limited = app
        .login(Login::Email("ann@example.com".into()), "another guess")
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    let retry = limited.get_details_retry_info().expect("retry info");
    assert!(retry.retry_delay.unwrap().as_secs() >= 1);
    // Even the right password waits now (the budget is the account's) ...
    let owner = app
        .login(Login::UserId(ann.clone()), "ann's password")
        .await
        .unwrap_err();
    assert_eq!(owner.code(), Code::ResourceExhausted);
    // ... and so does a guess at the current password with Ann's token.
    let as_ann = Identity::customer(ann.clone());
    let change = app
        .set_password(&as_ann, "", "a new password", "a guess")
        .await
        .unwrap_err();
    assert_eq!(change.code(), Code::ResourceExhausted);
    // Other accounts are untouched.
    app.login(Login::UserId(bob.clone()), "bob's password")
        .await
        .unwrap();
    // Guesses at an address nobody has are limited by that address.
    for _ in 0..BURST {
        let unknown = app
            .login(Login::Email("nobody@example.com".into()), "guess")
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::Unauthenticated);
    }
    let unknown = app
        .login(Login::Email("Nobody@Example.com".into()), "guess")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::ResourceExhausted);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_current_password_spends_the_accounts_budget() {
    let app = spawn().await;
    let ann = registered(&app, "ann@example.com", "ann's password").await;
    let as_ann = Identity::customer(ann.clone());
    for _ in 0..BURST {
        let wrong = app
            .set_password(&as_ann, "", "a new password", "a guess")
            .await
            .unwrap_err();
        assert_eq!(wrong.code(), Code::PermissionDenied);
    }
    let limited = app
        .set_password(&as_ann, "", "a new password", "ann's password")
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    // An admin's change checks no password and spends nothing.
    app.set_password(&Identity::admin("admin-1"), &ann, "an admin's choice", "")
        .await
        .unwrap();
    app.stop().await;
}
