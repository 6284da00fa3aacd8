//! Users: every command and query, validation, authorization, unique
//! emails under concurrency, read-your-writes and rebuilds.

use es_core::DomainEvent;
use stocklet_proto::stocklet::events::v1 as events;
use stocklet_proto::stocklet::user::v1 as pb;
use stocklet_service_kit::{Identity, Secret, streams};
use tonic::{Code, Request};

use crate::app::*;

/// Every event in the USER stream, decoded as user or claim events.
async fn user_stream(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    app.events(streams::USER).await
}

#[tokio::test]
async fn a_registered_user_reads_their_profile_at_once() {
    let app = TestApp::spawn().await;
    let ann = app.register("Ann@Example.com").await.unwrap();
    assert_eq!(
        (
            ann.email.as_str(),
            ann.first_name.as_str(),
            ann.last_name.as_str()
        ),
        ("Ann@Example.com", "Ann", "Lee")
    );
    assert!(ann.created_at_ms > 0 && ann.updated_at_ms == ann.created_at_ms);

    // Read-your-writes: the query right after the command sees it.
    let me = Identity::customer(ann.id.clone());
    assert_eq!(app.view(&me, &ann.id).await.unwrap(), ann);
    assert_eq!(app.view(&admin(), &ann.id).await.unwrap(), ann);

    // The public USER stream carries neither the password nor its hash.
    let stream = user_stream(&app).await;
    let types: Vec<&str> = stream.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "stocklet.events.v1.EmailClaimed",
            "stocklet.events.v1.UserRegistered"
        ]
    );
    for (_, payload) in &stream {
        let text = String::from_utf8_lossy(payload);
        assert!(!text.contains("correct horse") && !text.contains("$argon2id$"));
    }
    // The Argon2id hash went to the private AUTH stream, for the auth
    // service, under the user's id.
    let handed = app.events(streams::AUTH).await;
    let [(event_type, payload)] = handed.as_slice() else {
        panic!("one hand-over: {handed:?}");
    };
    assert_eq!(event_type, "stocklet.events.v1.InitialPasswordHashed");
    let hashed: events::InitialPasswordHashed = prost::Message::decode(payload.as_slice()).unwrap();
    assert_eq!(hashed.user_id, ann.id);
    assert!(
        hashed
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let attempts = [
        "race@example.com",
        "Race@Example.com",
        "RACE@example.com",
        " race@example.com",
    ];
    let results = futures::future::join_all(attempts.iter().map(|email| app.register(email))).await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let lost: Vec<Code> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(tonic::Status::code))
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert_eq!(lost, vec![Code::AlreadyExists; attempts.len() - 1]);

    // Losers left nothing behind: one claim and one user in the stream.
    let stream = user_stream(&app).await;
    assert_eq!(
        stream.len(),
        2,
        "{:?}",
        stream.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let listed = app.list(&admin(), 0, "").await.unwrap().users;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, won[0].id);
    app.stop().await;
}

#[tokio::test]
async fn changing_the_email_moves_the_claim() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann@example.com").await.unwrap();
    let bob = app.register("bob@example.com").await.unwrap();
    let me = Identity::customer(ann.id.clone());

    let taken = app
        .update_email(&me, &ann.id, "BOB@example.com")
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);

    let moved = app
        .update_email(&me, &ann.id, "ann@new.example")
        .await
        .unwrap();
    assert_eq!(moved.email, "ann@new.example");
    assert!(moved.updated_at_ms >= ann.updated_at_ms);
    assert_eq!(
        app.view(&me, &ann.id).await.unwrap().email,
        "ann@new.example"
    );

    // The old address is free again; the new one is not.
    app.register("ann@example.com").await.unwrap();
    assert_eq!(
        app.register("Ann@New.Example").await.unwrap_err().code(),
        Code::AlreadyExists
    );

    // Changing only the case keeps the claim; the same address changes nothing.
    let recased = app
        .update_email(&me, &ann.id, "Ann@New.Example")
        .await
        .unwrap();
    assert_eq!(recased.email, "Ann@New.Example");
    let same = app
        .update_email(&me, &ann.id, "Ann@New.Example")
        .await
        .unwrap();
    assert_eq!(same, recased);

    // An admin may change anyone's address.
    let by_admin = app
        .update_email(&admin(), &bob.id, "robert@example.com")
        .await
        .unwrap();
    assert_eq!(by_admin.email, "robert@example.com");
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_user_releases_their_email() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann@example.com").await.unwrap();
    let bob = app.register("bob@example.com").await.unwrap();
    let me = Identity::customer(ann.id.clone());
    app.delete(&me, &ann.id).await.unwrap();
    assert_eq!(
        app.view(&admin(), &ann.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        app.delete(&me, &ann.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        app.update_email(&me, &ann.id, "x@example.com")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let again = app.register("ANN@example.com").await.unwrap();
    assert_ne!(again.id, ann.id);

    app.delete(&admin(), &bob.id).await.unwrap();
    let listed: Vec<String> = app
        .list(&admin(), 0, "")
        .await
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, [again.id]);

    let stream = user_stream(&app).await;
    assert!(stream.iter().any(|(t, payload)| {
        t == "stocklet.events.v1.UserDeleted"
            && <events::UserDeleted as prost::Message>::decode(payload.as_slice())
                .unwrap()
                .user_id
                == ann.id
    }));
    app.stop().await;
}

#[tokio::test]
async fn users_list_oldest_first_for_admins_only() {
    let app = TestApp::spawn().await;
    let mut registered = Vec::new();
    for i in 0..5 {
        registered.push(
            app.register(&format!("user{i}@example.com"))
                .await
                .unwrap()
                .id,
        );
    }
    let first = app.list(&admin(), 2, "").await.unwrap();
    let second = app.list(&admin(), 2, &first.next_page_token).await.unwrap();
    let third = app
        .list(&admin(), 2, &second.next_page_token)
        .await
        .unwrap();
    assert!(third.next_page_token.is_empty());
    let listed: Vec<String> = [first.users, second.users, third.users]
        .concat()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(listed, registered);
    assert_eq!(app.list(&admin(), 1000, "").await.unwrap().users.len(), 5);
    assert_eq!(
        violated_fields(&app.list(&admin(), -1, "").await.unwrap_err()),
        ["page_size"]
    );
    assert_eq!(
        violated_fields(&app.list(&admin(), 10, "zz").await.unwrap_err()),
        ["page_token"]
    );

    let customer = Identity::customer(registered[0].clone());
    assert_eq!(
        app.list(&customer, 0, "").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let anonymous = app
        .client
        .clone()
        .list_users(Request::new(pb::ListUsersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn customers_reach_only_themselves() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann@example.com").await.unwrap();
    let bob = app.register("bob@example.com").await.unwrap();
    let as_bob = Identity::customer(bob.id.clone());

    // Someone else's profile does not exist, as far as a customer can tell.
    assert_eq!(
        app.view(&as_bob, &ann.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        app.update_email(&as_bob, &ann.id, "mine@example.com")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        app.delete(&as_bob, &ann.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(app.view(&admin(), &ann.id).await.unwrap(), ann);

    // No identity, or a forged one without the internal token, is anonymous.
    let anonymous = app
        .client
        .clone()
        .view_user(Request::new(pb::ViewUserRequest { id: ann.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(pb::DeleteUserRequest { id: ann.id.clone() });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .delete_user(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(app.view(&admin(), &ann.id).await.unwrap(), ann);
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .client
        .clone()
        .register_user(Request::new(pb::RegisterUserRequest {
            first_name: " ".into(),
            last_name: "x".repeat(36),
            email: "not-an-email".into(),
            password: String::new(),
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["first_name", "last_name", "email", "password"]
    );
    // The password policy: 8 to 128 characters, not a common password.
    for (weak, why) in [
        ("p".repeat(129), "must be at most 128 characters"),
        ("7 chars".to_owned(), "must be at least 8 characters"),
        (
            "Password1".to_owned(),
            "is one of the most commonly used passwords",
        ),
        (
            "qwertyuiop".to_owned(),
            "is one of the most commonly used passwords",
        ),
    ] {
        let refused = app
            .client
            .clone()
            .register_user(Request::new(pb::RegisterUserRequest {
                password: weak.clone(),
                ..registration("ann@example.com")
            }))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{weak}");
        assert_eq!(violated_fields(&refused), ["password"], "{weak}");
        assert!(refused.message().contains(why), "{weak}: {refused:?}");
    }

    let ann = app.register("ann@example.com").await.unwrap();
    let bad_email = app
        .update_email(&admin(), &ann.id, "ann@")
        .await
        .unwrap_err();
    assert_eq!(
        (bad_email.code(), violated_fields(&bad_email)),
        (Code::InvalidArgument, vec!["email".to_owned()])
    );
    let bad_both = app.update_email(&admin(), "a.b", "").await.unwrap_err();
    assert_eq!(violated_fields(&bad_both), ["id", "email"]);
    assert_eq!(
        violated_fields(&app.view(&admin(), "").await.unwrap_err()),
        ["id"]
    );
    assert_eq!(
        violated_fields(&app.delete(&admin(), "a*").await.unwrap_err()),
        ["id"]
    );
    assert_eq!(
        app.view(&admin(), "unknown").await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn the_directory_survives_restarts_and_rebuilds_from_the_stream() {
    let app = TestApp::spawn().await;
    let ann = app.register("ann@example.com").await.unwrap();
    let bob = app.register("bob@example.com").await.unwrap();
    let (nats, db) = app.stop().await;

    sqlx::raw_sql("TRUNCATE \"user\".users; DELETE FROM \"user\".es_checkpoints")
        .execute(&db.pool)
        .await
        .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = app.list(&admin(), 10, "").await.unwrap().users;
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed, vec![ann, bob]);
    // Uniqueness does not depend on the read model: the claims survive.
    assert_eq!(
        app.register("ann@example.com").await.unwrap_err().code(),
        Code::AlreadyExists
    );
    app.stop().await;
}

#[test]
fn user_events_decode_under_their_proto_names() {
    let names = stocklet_user::domain::UserEvent::event_types();
    assert!(names.contains(&"stocklet.events.v1.UserRegistered"));
    let raw = stocklet_user::domain::UserEvent::from(events::UserDeleted::default()).to_raw();
    assert_eq!(raw.event_type, "stocklet.events.v1.UserDeleted");
}

/// The user service's worst crash window is the commit itself: the claim
/// and the user are one atomic batch, so a broker killed mid-flight (with
/// registrations in every stage) must leave every claim with its user and
/// every user with their claim.
#[tokio::test]
async fn a_crash_during_registrations_leaves_no_claim_without_its_user() {
    let mut app = TestApp::spawn().await;
    let client = app.client.clone();
    let registrations: Vec<_> = (0..16)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .register_user(Request::new(registration(&format!("crash{i}@example.com"))))
                    .await
                    .map(|r| r.into_inner().user.unwrap().id)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    app.nats.kill();
    // Down long enough for in-flight appends to time out (in doubt).
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    app.nats.restart().await;
    let mut answered = Vec::new();
    for registration in registrations {
        if let Ok(id) = registration.await.unwrap() {
            answered.push(id);
        }
    }

    // The service recovers: a new registration goes through.
    let mut after = None;
    for _ in 0..100 {
        if let Ok(user) = app.register("after@example.com").await {
            after = Some(user.id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    answered.push(after.expect("registrations work again after the restart"));

    let mut claimed = Vec::new();
    let mut registered = Vec::new();
    for (event_type, payload) in user_stream(&app).await {
        match event_type.as_str() {
            "stocklet.events.v1.EmailClaimed" => claimed.push(
                <events::EmailClaimed as prost::Message>::decode(payload.as_slice())
                    .unwrap()
                    .user_id,
            ),
            "stocklet.events.v1.UserRegistered" => registered.push(
                <events::UserRegistered as prost::Message>::decode(payload.as_slice())
                    .unwrap()
                    .user_id,
            ),
            other => panic!("unexpected {other}"),
        }
    }
    claimed.sort();
    registered.sort();
    eprintln!(
        "{} of 16 registrations answered before the crash, {} stored",
        answered.len() - 1,
        registered.len() - 1
    );
    assert_eq!(claimed, registered, "claims and users match one to one");
    for id in &answered {
        assert!(
            registered.contains(id),
            "an answered registration is stored"
        );
    }
    app.stop().await;
}
