//! The `idempotency-key` metadata on the product service's gRPC API
//! directly (no gateway): service-kit's layer records the first answer of a
//! keyed call and replays it, per caller, across a restart of the service.

use stocklet_proto::stocklet::product::v1 as pb;
use stocklet_service_kit::Identity;
use stocklet_service_kit::idempotency::{KEY_REUSED, METADATA_KEY, REPLAYED};
use tonic::Code;
use tonic_types::StatusExt;

use crate::app::{TestApp, admin, as_user, violated_fields};

fn create(name: &str) -> pb::CreateProductRequest {
    pb::CreateProductRequest {
        name: name.into(),
        description: String::new(),
        price_cents: 1_250,
    }
}

impl TestApp {
    /// CreateProduct as `identity` with `key`: (product id, replayed?).
    async fn create_keyed(
        &self,
        identity: &Identity,
        key: &str,
        request: pb::CreateProductRequest,
    ) -> Result<(String, bool), tonic::Status> {
        let mut request = as_user(identity, request);
        request
            .metadata_mut()
            .insert(METADATA_KEY, key.parse().unwrap());
        let response = self.client.clone().create_product(request).await?;
        let replayed = response.metadata().get(REPLAYED).is_some();
        Ok((response.into_inner().product.unwrap().id, replayed))
    }
}

#[tokio::test]
async fn a_keyed_call_is_answered_once_and_replayed_per_caller_across_restarts() {
    let app = TestApp::spawn().await;
    let (id, replayed) = app
        .create_keyed(&admin(), "create-1", create("Cup"))
        .await
        .unwrap();
    assert!(!replayed);
    assert_eq!(
        app.create_keyed(&admin(), "create-1", create("Cup"))
            .await
            .unwrap(),
        (id.clone(), true)
    );

    // The key with another request: InvalidArgument, with the reason.
    let reused = app
        .create_keyed(&admin(), "create-1", create("Kettle"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    assert_eq!(reused.get_details_error_info().unwrap().reason, KEY_REUSED);
    assert_eq!(violated_fields(&reused), [METADATA_KEY]);

    // Another caller's key is theirs.
    let other_admin = Identity::admin("admin-2");
    let (theirs, replayed) = app
        .create_keyed(&other_admin, "create-1", create("Cup"))
        .await
        .unwrap();
    assert!(!replayed);
    assert_ne!(theirs, id);

    // A refusal that may change is not recorded: the key is free again.
    let refused = app
        .create_keyed(&admin(), "create-2", create(""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let (_, replayed) = app
        .create_keyed(&admin(), "create-2", create("Grinder"))
        .await
        .unwrap();
    assert!(!replayed);

    // A bad key names the metadata.
    let bad = app
        .create_keyed(&admin(), "a/b", create("Cup"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), [METADATA_KEY]);

    // The record is in PostgreSQL: a restarted service replays it.
    let (nats, db) = app.stop().await;
    let app = TestApp::spawn_on(nats, db).await;
    assert_eq!(
        app.create_keyed(&admin(), "create-1", create("Cup"))
            .await
            .unwrap(),
        (id, true)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_call_its_client_gave_up_on_still_runs_once_and_its_retry_gets_the_answer() {
    let app = TestApp::spawn().await;
    // Deadlines from 1 ms up: some run out before the claim, some while
    // the command runs, some after. Whatever happened, the retry with the
    // key answers, and each key made one product.
    let mut cut_off = 0;
    for i in 0..20u64 {
        let key = format!("impatient-{i}");
        let name = format!("Impatient {i}");
        let mut request = as_user(&admin(), create(&name));
        request
            .metadata_mut()
            .insert(METADATA_KEY, key.parse().unwrap());
        request.set_timeout(std::time::Duration::from_millis(1 + i / 2));
        if app.client.clone().create_product(request).await.is_err() {
            cut_off += 1;
        }
        let retried = stocklet_test_support::eventually(
            std::time::Duration::from_secs(10),
            format!("the retry of {key}"),
            async || match app.create_keyed(&admin(), &key, create(&name)).await {
                Err(status) if status.code() == Code::Aborted => Err(status),
                answered => Ok(answered),
            },
        )
        .await;
        assert!(retried.is_ok(), "{retried:?}");
    }
    assert!(cut_off > 0, "no call was cut off; shorten the deadlines");
    let listed = app.list(100, "").await.unwrap();
    let mut names: Vec<String> = listed.products.into_iter().map(|p| p.name).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "a key made two products: {names:?}");
    assert_eq!(before, 20);
    app.stop().await;
}
