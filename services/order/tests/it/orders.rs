//! Placing and reading orders: every query, validation, authorization,
//! pagination, read-your-writes and rebuilds.

use stocklet_proto::stocklet::order::v1 as pb;
use stocklet_service_kit::{Identity, Secret};
use tonic::{Code, Request};

use crate::app::*;

#[tokio::test]
async fn a_customer_places_an_order_and_reads_it_at_once() {
    let app = TestApp::spawn().await;
    let placed = app.place(&alice(), &[(P2, 3), (P1, 2)]).await.unwrap();
    assert_eq!(placed.customer_id, "alice");
    assert_eq!(placed.status(), pb::OrderStatus::Processing);
    let lines: Vec<(&str, i64, i64)> = placed
        .items
        .iter()
        .map(|i| (i.product_id.as_str(), i.quantity, i.unit_price_cents))
        .collect();
    assert_eq!(lines, [(P1, 2, 0), (P2, 3, 0)]);
    assert_eq!((placed.items_price_cents, placed.total_cents), (0, 0));
    assert_eq!(placed.status_history.len(), 1);
    assert_eq!(
        placed.status_history[0].status(),
        pb::OrderStatus::Processing
    );
    assert_eq!(placed.status_history[0].at_ms, placed.created_at_ms);
    assert!(placed.rejection.is_none());

    // Read-your-writes: the queries right after the command see it.
    assert_eq!(app.view(&alice(), &placed.id).await.unwrap(), placed);
    let listed = app.list(&alice(), "", 0, "").await.unwrap();
    assert_eq!(listed.orders, vec![placed.clone()]);
    assert!(listed.next_page_token.is_empty());

    // Product ids are canonical UUIDs, whatever the spelling.
    let upper = app
        .place(&alice(), &[(&P3.to_uppercase(), 1)])
        .await
        .unwrap();
    assert_eq!(upper.items[0].product_id, P3);

    let info = app
        .client
        .clone()
        .get_service_info(Request::new(pb::GetServiceInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.name, "order");
    app.stop().await;
}

#[tokio::test]
async fn orders_are_listed_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let mut placed = Vec::new();
    for product in [P1, P2, P3] {
        placed.push(app.place(&alice(), &[(product, 1)]).await.unwrap().id);
    }
    app.place(&bob(), &[(P1, 1)]).await.unwrap();

    let first = app.list(&alice(), "", 2, "").await.unwrap();
    let ids: Vec<&str> = first.orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, [placed[2].as_str(), placed[1].as_str()]);
    assert!(!first.next_page_token.is_empty());
    let second = app
        .list(&alice(), "", 2, &first.next_page_token)
        .await
        .unwrap();
    let ids: Vec<&str> = second.orders.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, [placed[0].as_str()]);
    assert!(second.next_page_token.is_empty());

    // An admin lists a named customer's orders, or their own (none).
    assert_eq!(
        app.list(&admin(), "alice", 10, "")
            .await
            .unwrap()
            .orders
            .len(),
        3
    );
    assert_eq!(
        app.list(&admin(), "bob", 10, "")
            .await
            .unwrap()
            .orders
            .len(),
        1
    );
    assert!(
        app.list(&admin(), "", 10, "")
            .await
            .unwrap()
            .orders
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_carts_name_every_bad_line() {
    let app = TestApp::spawn().await;
    let empty = app.place(&alice(), &[]).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&empty), ["items"]);

    let place = |request: pb::PlaceOrderRequest| {
        let mut client = app.client.clone();
        async move { client.place_order(as_user(&alice(), request)).await }
    };
    let no_cart = place(pb::PlaceOrderRequest::default()).await.unwrap_err();
    assert_eq!(violated_fields(&no_cart), ["items"]);

    // The bare map (the original's shape) names its own field.
    let bare = place(pb::PlaceOrderRequest {
        items: [("not-a-uuid".to_owned(), 1)].into(),
        cart: None,
    })
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&bare), ["items[not-a-uuid]"]);
    // Both shapes at once are refused rather than merged.
    let both = place(pb::PlaceOrderRequest {
        items: [(P1.to_owned(), 1)].into(),
        cart: Some(cart(&[(P2, 1)])),
    })
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&both), ["items"]);
    assert!(both.message().contains("not both") || format!("{both:?}").contains("not both"));

    let bad = app
        .place(&alice(), &[("not-a-uuid", 1), (P1, 0), (P2, 101), (P3, -4)])
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(
        fields,
        [
            format!("cart.items[{P1}]"),
            format!("cart.items[{P2}]"),
            format!("cart.items[{P3}]"),
            "cart.items[not-a-uuid]".to_owned(),
        ]
    );

    // The same product in two spellings is one product twice.
    let twice = app
        .place(&alice(), &[(P1, 1), (&P1.to_uppercase(), 2)])
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&twice).len(), 1);

    let ids: Vec<String> = (1..=51u128)
        .map(|n| uuid::Uuid::from_u128(n).to_string())
        .collect();
    let lines: Vec<(&str, i64)> = ids.iter().map(|id| (id.as_str(), 1)).collect();
    let too_many = app.place(&alice(), &lines).await.unwrap_err();
    assert_eq!(violated_fields(&too_many), ["cart.items"]);
    assert!(app.place(&alice(), &lines[..50]).await.is_ok());
    assert!(app.place(&alice(), &[(P1, 100)]).await.is_ok());

    // Nothing invalid was recorded.
    assert_eq!(
        app.list(&alice(), "", 100, "").await.unwrap().orders.len(),
        2
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_queries_name_their_fields() {
    let app = TestApp::spawn().await;
    let bad_id = app.view(&alice(), "order-1").await.unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad_id), ["order_id"]);

    let bad_page = app.list(&alice(), "", -1, "").await.unwrap_err();
    assert_eq!(violated_fields(&bad_page), ["page_size"]);
    let bad_token = app.list(&alice(), "", 10, "zz").await.unwrap_err();
    assert_eq!(violated_fields(&bad_token), ["page_token"]);
    let bad_customer = app.list(&admin(), "has space", 10, "zz").await.unwrap_err();
    assert_eq!(
        violated_fields(&bad_customer),
        ["customer_id", "page_token"]
    );

    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        app.view(&alice(), &unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn customers_see_only_their_own_orders() {
    let app = TestApp::spawn().await;
    let order = app.place(&alice(), &[(P1, 1)]).await.unwrap();

    // Bob cannot tell Alice's order from a missing one.
    assert_eq!(
        app.view(&bob(), &order.id).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(
        app.list(&bob(), "", 10, "")
            .await
            .unwrap()
            .orders
            .is_empty()
    );
    // Naming another customer is an admin's privilege; naming oneself is the
    // same as naming no one (as in payment and shipping).
    assert_eq!(
        app.list(&bob(), "alice", 10, "").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let own = app.list(&alice(), "alice", 10, "").await.unwrap();
    assert_eq!(
        own.orders,
        app.list(&alice(), "", 10, "").await.unwrap().orders
    );
    assert_eq!(own.orders.len(), 1);
    // Admins see it.
    assert_eq!(app.view(&admin(), &order.id).await.unwrap(), order);

    // Anonymous callers, and callers forging an identity without the
    // gateway's internal token, are nobody.
    let anonymous = app
        .client
        .clone()
        .place_order(Request::new(pb::PlaceOrderRequest {
            items: [(P1.to_owned(), 1)].into(),
            cart: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(pb::ViewOrderRequest {
        order_id: order.id.clone(),
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .view_order(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let anonymous_list = app
        .client
        .clone()
        .view_orders(Request::new(pb::ViewOrdersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(anonymous_list.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn the_customer_of_an_order_is_always_the_caller() {
    let app = TestApp::spawn().await;
    // The JSON body cannot carry a customer: unknown fields are rejected,
    // and the request message has no such field to bind.
    let smuggled = serde_json::from_str::<pb::PlaceOrderRequest>(&format!(
        r#"{{"cart": {{"items": {{"{P1}": "1"}}}}, "customerId": "alice"}}"#
    ));
    assert!(smuggled.is_err());
    let order = app.place(&bob(), &[(P1, 1)]).await.unwrap();
    assert_eq!(order.customer_id, "bob");
    // An admin placing an order places it for themselves.
    let own = app.place(&admin(), &[(P1, 1)]).await.unwrap();
    assert_eq!(own.customer_id, "admin-1");
    app.stop().await;
}

#[tokio::test]
async fn orders_survive_restarts_and_rebuild_from_the_stream() {
    let app = TestApp::spawn().await;
    let first = app.place(&alice(), &[(P1, 1)]).await.unwrap();
    let second = app.place(&alice(), &[(P2, 2)]).await.unwrap();
    let second = app.price(&second, &[250]).await;
    let (nats, db) = app.stop().await;

    // Lose the read model entirely: the next start rebuilds it.
    sqlx::raw_sql(
        r#"TRUNCATE "order".orders, "order".order_items; DELETE FROM "order".es_checkpoints"#,
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = app.list(&alice(), "", 10, "").await.unwrap().orders;
        if listed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed, vec![second, first]);
    app.stop().await;
}
