//! Shipments: seen by their customer and by admins, dispatched by admins
//! once, refused beyond the capacity, listed newest first.

use es_core::{AggregateId, CommandContext};
use stocklet_proto::stocklet::shipping::v1 as pb;
use stocklet_service_kit::{Identity, Secret};
use stocklet_shipping::domain::{
    Capacity, Cents, CustomerId, OrderId, ShipmentCommand, ShipmentEvent, ShipmentStatus,
};
use tonic::{Code, Request, Status};

use crate::app::*;

const ALICE: &str = "customer-1";
const BOB: &str = "customer-2";

#[tokio::test]
async fn customers_see_their_own_shipments_and_manifests() {
    let app = TestApp::spawn().await;
    let (order_id, id) = app.allocate(ALICE, &[2, 3]).await;
    app.shipment_eventually(&id, |_| true).await;

    let shipment = app.shipment(&customer(), &id).await.unwrap();
    assert_eq!(shipment.status(), pb::ShipmentStatus::Allocated);
    assert_eq!(
        (shipment.order_id.as_str(), shipment.customer_id.as_str()),
        (order_id.as_str(), ALICE)
    );
    assert_eq!(shipment.dispatched_at_ms, 0);
    let manifest = app.manifest(&customer(), &id).await.unwrap();
    assert_eq!(manifest.shipment_id, id);
    assert_eq!(
        manifest.items,
        [
            pb::ManifestItem {
                product_id: "p0".into(),
                quantity: 2
            },
            pb::ManifestItem {
                product_id: "p1".into(),
                quantity: 3
            },
        ]
    );
    assert_eq!(app.manifest(&admin(), &id).await.unwrap(), manifest);

    // Another customer learns nothing, not even that it exists.
    for status in [
        app.shipment(&other_customer(), &id).await.unwrap_err(),
        app.manifest(&other_customer(), &id).await.unwrap_err(),
        app.shipment(&admin(), "0192-unknown").await.unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_admin_dispatches_an_allocated_shipment_once() {
    let app = TestApp::spawn().await;
    let (order_id, id) = app.allocate(ALICE, &[1]).await;
    app.shipment_eventually(&id, |_| true).await;

    assert_eq!(
        app.dispatch(&customer(), &id).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // Not before the order is paid (approved).
    let unpaid = app.dispatch(&admin(), &id).await.unwrap_err();
    assert_eq!(unpaid.code(), Code::FailedPrecondition);
    assert!(unpaid.message().contains("not paid"), "{unpaid:?}");
    app.approve(&order_id, ALICE).await;
    let dispatched = app.dispatch(&admin(), &id).await.unwrap();
    assert_eq!(dispatched.status(), pb::ShipmentStatus::Dispatched);
    assert!(dispatched.dispatched_at_ms > 0);
    // Read-your-writes: the query right after the command sees it.
    assert_eq!(app.shipment(&customer(), &id).await.unwrap(), dispatched);
    // ShipmentDispatched is on the stream for the order service.
    let loaded = app
        .shipments()
        .load(&AggregateId::parse(order_id.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(loaded.state.status(), ShipmentStatus::Dispatched);
    assert!(matches!(
        loaded.history.last().map(|r| &r.event),
        Some(ShipmentEvent::Dispatched(e)) if e.order_id == order_id && e.customer_id == ALICE
    ));

    let again = app.dispatch(&admin(), &id).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    // A released shipment cannot be dispatched.
    let (released_order, released) = app.allocate(ALICE, &[1]).await;
    app.shipments()
        .execute(
            &AggregateId::parse(released_order).unwrap(),
            &ShipmentCommand::Release { at_ms: 1 },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    app.shipment_eventually(&released, |s| s.status() == pb::ShipmentStatus::Released)
        .await;
    assert_eq!(
        app.dispatch(&admin(), &released).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    assert_eq!(
        app.dispatch(&admin(), "0192-unknown")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn an_order_over_the_capacity_gets_no_shipment() {
    let app = TestApp::spawn().await;
    let order_id = AggregateId::new_v7();
    let lines = manifest(&[40, 11]);
    let executed = app
        .shipments()
        .execute(
            &order_id,
            &ShipmentCommand::Allocate {
                shipment_id: "s-too-big".into(),
                order_id: OrderId::parse(order_id.as_str()).unwrap(),
                customer_id: CustomerId::parse(ALICE).unwrap(),
                reservation_id: "r1".into(),
                lines,
                total: Cents::parse(1).unwrap(),
                capacity: Capacity::parse(CAPACITY).unwrap(),
                at_ms: 1,
            },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    assert!(matches!(
        executed.events.as_slice(),
        [ShipmentEvent::AllocationFailed(e)] if e.requested_units == 51 && e.capacity_units == 50
    ));
    // Within the capacity, the next order ships; the failed one never shows.
    let (_, id) = app.allocate(ALICE, &[50]).await;
    app.shipment_eventually(&id, |_| true).await;
    let all = app
        .list(&admin(), pb::ViewShipmentsRequest::default())
        .await
        .unwrap();
    assert_eq!(all.shipments.len(), 1);
    assert_eq!(
        app.shipment(&admin(), "s-too-big")
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn shipments_list_newest_first_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(app.allocate(ALICE, &[1]).await);
    }
    let (_, bobs) = app.allocate(BOB, &[1]).await;
    let (released_order, released) = alices[0].clone();
    app.shipments()
        .execute(
            &AggregateId::parse(released_order).unwrap(),
            &ShipmentCommand::Release { at_ms: 1 },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    app.shipment_eventually(&released, |s| s.status() == pb::ShipmentStatus::Released)
        .await;
    app.shipment_eventually(&bobs, |_| true).await;
    let mut newest_first: Vec<String> = alices.iter().map(|(_, id)| id.clone()).collect();
    newest_first.reverse();

    // A customer cannot look at someone else's by naming them.
    let named = pb::ViewShipmentsRequest {
        customer_id: BOB.into(),
        ..Default::default()
    };
    let refused = app.list(&customer(), named).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let request = |page_size, page_token: &str| pb::ViewShipmentsRequest {
        page_size,
        page_token: page_token.into(),
        // Naming oneself is the same as naming no one.
        customer_id: ALICE.into(),
        status: 0,
    };
    let first = app.list(&customer(), request(2, "")).await.unwrap();
    let second = app
        .list(&customer(), request(2, &first.next_page_token))
        .await
        .unwrap();
    assert!(second.next_page_token.is_empty());
    let listed: Vec<String> = [first.shipments, second.shipments]
        .concat()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, newest_first);

    let everyone = app
        .list(&admin(), pb::ViewShipmentsRequest::default())
        .await
        .unwrap();
    assert_eq!(everyone.shipments.len(), 4);
    assert_eq!(everyone.shipments[0].id, bobs);
    let only_bob = app
        .list(
            &admin(),
            pb::ViewShipmentsRequest {
                customer_id: BOB.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(only_bob.shipments.len(), 1);
    let by_status = |status: pb::ShipmentStatus| pb::ViewShipmentsRequest {
        status: status.into(),
        ..Default::default()
    };
    let released_only = app
        .list(&admin(), by_status(pb::ShipmentStatus::Released))
        .await
        .unwrap();
    assert_eq!(
        released_only
            .shipments
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>(),
        [released]
    );
    assert!(
        app.list(&admin(), by_status(pb::ShipmentStatus::Dispatched))
            .await
            .unwrap()
            .shipments
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let fields = |status: Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        violated_fields(&status)
    };
    assert_eq!(
        fields(app.shipment(&customer(), "").await.unwrap_err()),
        ["shipment_id"]
    );
    assert_eq!(
        fields(app.manifest(&customer(), "a.b").await.unwrap_err()),
        ["shipment_id"]
    );
    assert_eq!(
        fields(app.dispatch(&admin(), "a*").await.unwrap_err()),
        ["shipment_id"]
    );
    let bad_list = pb::ViewShipmentsRequest {
        page_size: -1,
        page_token: String::new(),
        customer_id: "a b".into(),
        status: 99,
    };
    assert_eq!(
        fields(app.list(&admin(), bad_list).await.unwrap_err()),
        ["page_size", "status", "customer_id"]
    );
    let bad_token = pb::ViewShipmentsRequest {
        page_token: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        fields(app.list(&customer(), bad_token).await.unwrap_err()),
        ["page_token"]
    );
    app.stop().await;
}

#[tokio::test]
async fn everyone_must_sign_in() {
    let app = TestApp::spawn().await;
    // Describing the service is public.
    let info = app
        .client
        .clone()
        .get_service_info(Request::new(pb::GetServiceInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (info.name.as_str(), info.license.as_str()),
        ("shipping", "MIT")
    );
    let (_, id) = app.allocate(ALICE, &[1]).await;
    app.shipment_eventually(&id, |_| true).await;
    let anonymous = app
        .client
        .clone()
        .view_shipment(Request::new(pb::ViewShipmentRequest {
            shipment_id: id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let anonymous = app
        .client
        .clone()
        .view_shipments(Request::new(pb::ViewShipmentsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(pb::DispatchShipmentRequest {
        shipment_id: id.clone(),
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .dispatch_shipment(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        app.shipment(&admin(), &id).await.unwrap().status(),
        pb::ShipmentStatus::Allocated
    );
    app.stop().await;
}

#[tokio::test]
async fn shipments_survive_restarts_and_rebuild_from_the_stream() {
    let app = TestApp::spawn().await;
    let (order_id, id) = app.allocate(ALICE, &[3, 4]).await;
    app.shipment_eventually(&id, |_| true).await;
    app.approve(&order_id, ALICE).await;
    let dispatched = app.dispatch(&admin(), &id).await.unwrap();
    let (nats, db) = app.stop().await;

    // Lose the read model entirely: the next start rebuilds it.
    sqlx::raw_sql(
        "TRUNCATE shipping.shipments, shipping.shipment_items; DELETE FROM shipping.es_checkpoints",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let rebuilt = app
        .shipment_eventually(&id, |s| s.status() == pb::ShipmentStatus::Dispatched)
        .await;
    assert_eq!(rebuilt, dispatched);
    assert_eq!(app.manifest(&customer(), &id).await.unwrap().items.len(), 2);
    app.stop().await;
}
