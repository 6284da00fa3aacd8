//! The catalogue: every command and query, validation, authorization,
//! read-your-writes and rebuilds.

use stocklet_proto::stocklet::product::v1 as pb;
use stocklet_service_kit::{Identity, Secret};
use tonic::{Code, Request};

use crate::app::*;

#[tokio::test]
async fn an_admin_manages_the_catalogue_and_everyone_reads_it_at_once() {
    let app = TestApp::spawn().await;
    let mug = app.create(&admin(), "Mug", 1299).await.unwrap();
    assert_eq!((mug.name.as_str(), mug.price_cents), ("Mug", 1299));

    // Read-your-writes: the query right after the command sees it.
    assert_eq!(app.view(&mug.id).await.unwrap(), mug);

    let repriced = app
        .client
        .clone()
        .update_product_price(as_user(
            &admin(),
            pb::UpdateProductPriceRequest {
                id: mug.id.clone(),
                price_cents: 999,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(repriced.price_cents, 999);
    assert_eq!(app.view(&mug.id).await.unwrap().price_cents, 999);

    let renamed = app
        .client
        .clone()
        .update_product_details(as_user(
            &admin(),
            pb::UpdateProductDetailsRequest {
                id: mug.id.clone(),
                name: Some("Big mug".into()),
                description: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_str()),
        ("Big mug", "Mug, described")
    );
    assert_eq!(app.view(&mug.id).await.unwrap().name, "Big mug");

    app.client
        .clone()
        .delete_product(as_user(
            &admin(),
            pb::DeleteProductRequest { id: mug.id.clone() },
        ))
        .await
        .unwrap();
    assert_eq!(app.view(&mug.id).await.unwrap_err().code(), Code::NotFound);
    assert!(app.list(0, "").await.unwrap().products.is_empty());
    let again = app
        .client
        .clone()
        .delete_product(as_user(
            &admin(),
            pb::DeleteProductRequest { id: mug.id.clone() },
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn the_catalogue_pages_oldest_first() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            app.create(&admin(), &format!("Product {i}"), i * 100)
                .await
                .unwrap()
                .id,
        );
    }
    let first = app.list(2, "").await.unwrap();
    let second = app.list(2, &first.next_page_token).await.unwrap();
    let third = app.list(2, &second.next_page_token).await.unwrap();
    assert!(third.next_page_token.is_empty());
    let listed: Vec<String> = [first.products, second.products, third.products]
        .concat()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed, created);
    // The page size is capped, not rejected.
    assert_eq!(app.list(1000, "").await.unwrap().products.len(), 5);
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .client
        .clone()
        .create_product(as_user(
            &admin(),
            pb::CreateProductRequest {
                name: "  ".into(),
                description: "x".repeat(2001),
                price_cents: -1,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["name", "description", "price_cents"]
    );

    let bad_id = app.view("a.b").await.unwrap_err();
    assert_eq!(
        (bad_id.code(), violated_fields(&bad_id)),
        (Code::InvalidArgument, vec!["id".to_owned()])
    );
    let empty_id = app.view("").await.unwrap_err();
    assert_eq!(violated_fields(&empty_id), ["id"]);

    let nothing = app
        .client
        .clone()
        .update_product_details(as_user(
            &admin(),
            pb::UpdateProductDetailsRequest {
                id: "p".into(),
                name: None,
                description: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        nothing.code(),
        Code::NotFound,
        "an unknown product is reported before the empty change"
    );

    let mug = app.create(&admin(), "Mug", 1).await.unwrap();
    let empty_change = app
        .client
        .clone()
        .update_product_details(as_user(
            &admin(),
            pb::UpdateProductDetailsRequest {
                id: mug.id,
                name: None,
                description: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (empty_change.code(), violated_fields(&empty_change)),
        (Code::InvalidArgument, vec!["name".to_owned()])
    );

    assert_eq!(
        violated_fields(&app.list(-1, "").await.unwrap_err()),
        ["page_size"]
    );
    assert_eq!(
        violated_fields(&app.list(10, "not-a-token").await.unwrap_err()),
        ["page_token"]
    );
    assert_eq!(
        app.view("unknown").await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn only_admins_change_the_catalogue() {
    let app = TestApp::spawn().await;
    let customer_try = app.create(&customer(), "Mug", 1).await.unwrap_err();
    assert_eq!(customer_try.code(), Code::PermissionDenied);

    let anonymous = app
        .client
        .clone()
        .create_product(Request::new(pb::CreateProductRequest {
            name: "Mug".into(),
            description: String::new(),
            price_cents: 1,
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);

    // Claiming to be an admin without the gateway's internal token is
    // claiming nothing.
    let mut forged = Request::new(pb::CreateProductRequest {
        name: "Mug".into(),
        description: String::new(),
        price_cents: 1,
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed-token"));
    assert_eq!(
        app.client
            .clone()
            .create_product(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let mug = app.create(&admin(), "Mug", 1).await.unwrap();
    let reprice = app
        .client
        .clone()
        .update_product_price(as_user(
            &customer(),
            pb::UpdateProductPriceRequest {
                id: mug.id.clone(),
                price_cents: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(reprice.code(), Code::PermissionDenied);
    let delete = app
        .client
        .clone()
        .delete_product(as_user(
            &customer(),
            pb::DeleteProductRequest { id: mug.id.clone() },
        ))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::PermissionDenied);
    assert_eq!(app.view(&mug.id).await.unwrap().price_cents, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_catalogue_survives_restarts_and_rebuilds_from_the_stream() {
    let app = TestApp::spawn().await;
    let mug = app.create(&admin(), "Mug", 1299).await.unwrap();
    let cup = app.create(&admin(), "Cup", 499).await.unwrap();
    let (nats, db) = app.stop().await;

    // Lose the read model entirely: the next start rebuilds it.
    sqlx::raw_sql("TRUNCATE product.products; DELETE FROM product.es_checkpoints")
        .execute(&db.pool)
        .await
        .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = app.list(10, "").await.unwrap().products;
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed, vec![mug, cup]);
    app.stop().await;
}
