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
