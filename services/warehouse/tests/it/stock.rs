//! Stock: opened from the catalogue, moved by admins, reservations held
//! apart from removable units, validation, authorization and rebuilds.

use es_core::{AggregateId, CommandContext};
use stocklet_proto::stocklet::warehouse::v1 as pb;
use stocklet_service_kit::{Identity, Secret};
use stocklet_warehouse::domain::{Cents, Quantity, StockCommand};
use tonic::{Code, Request};

use crate::app::*;

#[tokio::test]
async fn a_new_product_gets_an_empty_stock_that_admins_fill_and_drain() {
    let app = TestApp::spawn().await;
    let opened = app.open_stock("p1").await;
    assert_eq!(
        (opened.on_hand, opened.reserved, opened.available),
        (0, 0, 0)
    );

    let added = app.add(&admin(), "p1", 10).await.unwrap();
    assert_eq!((added.on_hand, added.available), (10, 10));
    // Read-your-writes: the query right after the command sees it.
    assert_eq!(app.stock("p1").await.unwrap().on_hand, 10);

    let removed = app.remove(&admin(), "p1", 3).await.unwrap();
    assert_eq!((removed.on_hand, removed.available), (7, 7));
    let too_many = app.remove(&admin(), "p1", 8).await.unwrap_err();
    assert_eq!(too_many.code(), Code::FailedPrecondition);
    let stock = app.stock("p1").await.unwrap();
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (7, 0, 7));
    assert!(stock.updated_at_ms >= opened.updated_at_ms);

    // A product the catalogue never announced has no stock.
    assert_eq!(
        app.add(&admin(), "ghost", 1).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(app.stock("ghost").await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn reserved_units_are_shown_apart_and_cannot_be_removed() {
    let app = TestApp::spawn().await;
    app.open_stock("p1").await;
    app.add(&admin(), "p1", 10).await.unwrap();
    let stocks = app.stocks();
    let p1 = AggregateId::parse("p1").unwrap();
    stocks
        .execute(
            &p1,
            &StockCommand::Reserve {
                reservation_id: "r1".into(),
                order_id: "o1".into(),
                customer_id: "c1".into(),
                quantity: Quantity::parse(4).unwrap(),
                unit_price: Cents::parse(1299).unwrap(),
                at_ms: 1,
            },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let stock = app.stock_eventually("p1", |s| s.reserved == 4).await;
    assert_eq!((stock.on_hand, stock.reserved, stock.available), (10, 4, 6));

    let reservation = loop {
        match app.reservation(&admin(), "r1").await {
            Ok(reservation) => break reservation,
            Err(status) if status.code() == Code::NotFound => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(status) => panic!("{status}"),
        }
    };
    assert_eq!(reservation.order_id, "o1");
    assert_eq!(reservation.status(), pb::ReservationStatus::Reserved);
    assert_eq!(
        reservation.lines,
        [pb::ReservationLine {
            product_id: "p1".into(),
            quantity: 4
        }]
    );

    let status = app.remove(&admin(), "p1", 7).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("6"), "{}", status.message());
    let drained = app.remove(&admin(), "p1", 6).await.unwrap();
    assert_eq!(
        (drained.on_hand, drained.reserved, drained.available),
        (4, 4, 0)
    );

    // Paying consumes the reservation: the units leave the stock on hand.
    stocks
        .execute(
            &p1,
            &StockCommand::Consume {
                reservation_id: "r1".into(),
                order_id: "o1".into(),
                quantity: Quantity::parse(4).unwrap(),
                at_ms: 2,
            },
            &CommandContext::default(),
        )
        .await
        .unwrap();
    let stock = app.stock_eventually("p1", |s| s.reserved == 0).await;
    assert_eq!((stock.on_hand, stock.available), (0, 0));
    let consumed = app.reservation(&admin(), "r1").await.unwrap();
    assert_eq!(consumed.status(), pb::ReservationStatus::Consumed);

    // Reservations are for admins only.
    assert_eq!(
        app.reservation(&customer(), "r1").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let anonymous = app
        .client
        .clone()
        .view_reservation(Request::new(pb::ViewReservationRequest {
            reservation_id: "r1".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(
        app.reservation(&admin(), "r404").await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let status = app.add(&admin(), "a.b", 0).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["product_id", "quantity"]);
    let status = app.remove(&admin(), "", -1).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["product_id", "quantity"]);
    let status = app.add(&admin(), "p1", 1_000_000_001).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["quantity"]);
    let status = app.stock("").await.unwrap_err();
    assert_eq!(
        (status.code(), violated_fields(&status)),
        (Code::InvalidArgument, vec!["product_id".to_owned()])
    );
    let status = app.reservation(&admin(), "r*").await.unwrap_err();
    assert_eq!(violated_fields(&status), ["reservation_id"]);
    app.stop().await;
}

#[tokio::test]
async fn only_admins_move_stock() {
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
        ("warehouse", "MIT")
    );
    app.open_stock("p1").await;
    assert_eq!(
        app.add(&customer(), "p1", 5).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert_eq!(
        app.remove(&customer(), "p1", 1).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let anonymous = app
        .client
        .clone()
        .add_stock(Request::new(pb::AddStockRequest {
            product_id: "p1".into(),
            quantity: 5,
        }))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // Claiming to be an admin without the gateway's internal token is
    // claiming nothing.
    let mut forged = Request::new(pb::AddStockRequest {
        product_id: "p1".into(),
        quantity: 5,
    });
    Identity::admin("mallory").write_metadata(forged.metadata_mut(), &Secret::new("guessed"));
    assert_eq!(
        app.client
            .clone()
            .add_stock(forged)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(app.stock("p1").await.unwrap().on_hand, 0);
    app.stop().await;
}

#[tokio::test]
async fn stock_survives_restarts_and_rebuilds_from_the_stream() {
    let app = TestApp::spawn().await;
    app.open_stock("p1").await;
    app.add(&admin(), "p1", 10).await.unwrap();
    let (nats, db) = app.stop().await;

    // Lose the read model entirely: the next start rebuilds it.
    sqlx::raw_sql(
        "TRUNCATE warehouse.stocks, warehouse.reservations, warehouse.reservation_lines;
         DELETE FROM warehouse.es_checkpoints",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::spawn_on(nats, db).await;
    let stock = app.stock_eventually("p1", |s| s.on_hand == 10).await;
    assert_eq!(stock.available, 10);
    // A product created while the service was down is picked up too.
    app.product_created("p2").await;
    app.stock_eventually("p2", |_| true).await;
    app.stop().await;
}
