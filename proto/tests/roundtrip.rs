//! Round trips through the protobuf wire format and the proto3 JSON mapping,
//! and the HTTP route that the descriptor set carries for `PlaceOrder`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use prost::{Message as _, Name as _};
use serde_json::json;
use stocklet_proto::google::api::http_rule::Pattern;
use stocklet_proto::stocklet::auth::v1::{Jwk, LoginPasswordRequest, login_password_request};
use stocklet_proto::stocklet::events::v1::{
    EventBatch, EventRecord, OrderPlaced, OrderRejected, OrderRejectionReason, PricedOrderLine,
    StockReserved,
};
use stocklet_proto::stocklet::order::v1::{
    Cart, Order, OrderItem, OrderStatus, PlaceOrderRequest, Rejection, RejectionReason,
    StatusChange,
};

fn stock_reserved() -> StockReserved {
    StockReserved {
        reservation_id: "8f0c7a52-3a4e-4f41-9b1e-0c1f3c5d9a10".into(),
        order_id: "0d9a3b1c-5e2f-4a7b-8c6d-1e2f3a4b5c6d".into(),
        customer_id: "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e".into(),
        lines: vec![
            PricedOrderLine {
                product_id: "p-1".into(),
                quantity: 2,
                unit_price_cents: 1_250,
            },
            PricedOrderLine {
                product_id: "p-2".into(),
                quantity: 1,
                unit_price_cents: 99,
            },
        ],
        items_price_cents: 2_599,
        shipping_fee_cents: 500,
        total_cents: 3_099,
        occurred_at_ms: 1_764_072_000_123,
    }
}

#[test]
fn an_event_survives_a_protobuf_round_trip() {
    let event = stock_reserved();

    let bytes = event.encode_to_vec();
    let decoded = StockReserved::decode(bytes.as_slice()).unwrap();

    assert_eq!(decoded, event);
    assert_eq!(
        StockReserved::full_name(),
        "stocklet.events.v1.StockReserved"
    );
}

#[test]
fn a_batch_carries_several_events_of_one_commit() {
    let placed = OrderPlaced {
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        lines: Vec::new(),
        occurred_at_ms: 1,
    };
    let rejected = OrderRejected {
        order_id: "o-1".into(),
        customer_id: "c-1".into(),
        reason: OrderRejectionReason::InsufficientStock.into(),
        detail: "p-2 is short".into(),
        product_ids: vec!["p-2".into()],
        occurred_at_ms: 2,
        ..OrderRejected::default()
    };
    let batch = EventBatch {
        events: vec![
            EventRecord {
                event_id: "e-1".into(),
                event_type: OrderPlaced::full_name(),
                schema_version: 1,
                payload: placed.encode_to_vec(),
            },
            EventRecord {
                event_id: "e-2".into(),
                event_type: OrderRejected::full_name(),
                schema_version: 1,
                payload: rejected.encode_to_vec(),
            },
        ],
    };

    let decoded = EventBatch::decode(batch.encode_to_vec().as_slice()).unwrap();

    assert_eq!(decoded, batch);
    let second = &decoded.events[1];
    assert_eq!(second.event_type, "stocklet.events.v1.OrderRejected");
    let inner = OrderRejected::decode(second.payload.as_slice()).unwrap();
    assert_eq!(inner, rejected);
    assert_eq!(inner.reason(), OrderRejectionReason::InsufficientStock);
}

#[test]
fn json_uses_camel_case_int64_strings_and_enum_names() {
    let order = Order {
        id: "o-1".into(),
        customer_id: "c-1".into(),
        status: OrderStatus::Rejected.into(),
        items: vec![OrderItem {
            product_id: "p-1".into(),
            quantity: 3,
            unit_price_cents: 1_250,
        }],
        items_price_cents: 3_750,
        shipping_fee_cents: 0,
        total_cents: 3_750,
        rejection: Some(Rejection {
            reason: RejectionReason::InsufficientStock.into(),
            detail: "not enough stock".into(),
            product_ids: vec!["p-1".into()],
        }),
        status_history: vec![StatusChange {
            status: OrderStatus::Processing.into(),
            at_ms: 1_764_072_000_123,
        }],
        created_at_ms: 1_764_072_000_123,
        ..Order::default()
    };

    let value = serde_json::to_value(&order).unwrap();

    assert_eq!(
        value,
        json!({
            "id": "o-1",
            "customerId": "c-1",
            "status": "ORDER_STATUS_REJECTED",
            "items": [{"productId": "p-1", "quantity": "3", "unitPriceCents": "1250"}],
            "itemsPriceCents": "3750",
            "totalCents": "3750",
            "rejection": {
                "reason": "REJECTION_REASON_INSUFFICIENT_STOCK",
                "detail": "not enough stock",
                "productIds": ["p-1"]
            },
            "statusHistory": [{"status": "ORDER_STATUS_PROCESSING", "atMs": "1764072000123"}],
            "createdAtMs": "1764072000123"
        }),
        "defaults (shippingFeeCents = 0, empty ids) are left out"
    );
    let back: Order = serde_json::from_value(value).unwrap();
    assert_eq!(back, order);
}

#[test]
fn json_input_accepts_numbers_for_int64_and_snake_case_names() {
    let request: PlaceOrderRequest =
        serde_json::from_str(r#"{"cart": {"items": {"p-1": 2, "p-2": "5"}}}"#).unwrap();
    let items = request.cart.unwrap().items;
    assert_eq!(items.get("p-1"), Some(&2));
    assert_eq!(items.get("p-2"), Some(&5));

    let event: StockReserved =
        serde_json::from_str(r#"{"order_id": "o-1", "totalCents": 10}"#).unwrap();
    assert_eq!(event.order_id, "o-1");
    assert_eq!(event.total_cents, 10);
}

#[test]
fn json_oneof_and_keyword_fields() {
    let login: LoginPasswordRequest =
        serde_json::from_str(r#"{"email": "ada@example.com", "password": "pw"}"#).unwrap();
    assert_eq!(
        login.login,
        Some(login_password_request::Login::Email(
            "ada@example.com".into()
        ))
    );

    let jwk = Jwk {
        kty: "EC".into(),
        r#use: "sig".into(),
        alg: "ES256".into(),
        crv: "P-256".into(),
        ..Jwk::default()
    };
    let value = serde_json::to_value(&jwk).unwrap();
    assert_eq!(
        value,
        json!({"kty": "EC", "use": "sig", "alg": "ES256", "crv": "P-256"})
    );
}

#[test]
fn unknown_json_fields_are_rejected() {
    // At the top level, for example an attempt to set the customer.
    let top = serde_json::from_str::<PlaceOrderRequest>(
        r#"{"cart": {"items": {"p-1": 1}}, "customerId": "someone-else"}"#,
    );
    assert!(top.is_err(), "unknown top-level field accepted: {top:?}");

    // In a nested message.
    let nested = serde_json::from_str::<PlaceOrderRequest>(
        r#"{"cart": {"items": {"p-1": 1}, "discountCents": 100}}"#,
    );
    assert!(nested.is_err(), "unknown nested field accepted: {nested:?}");

    // The same documents without the extra field are fine.
    let cart: Cart = serde_json::from_str(r#"{"items": {"p-1": 1}}"#).unwrap();
    assert_eq!(cart.items.len(), 1);
}

#[test]
fn unknown_enum_names_are_rejected() {
    let result = serde_json::from_str::<Order>(r#"{"status": "ORDER_STATUS_LOST"}"#);
    assert!(result.is_err(), "unknown enum name accepted: {result:?}");
}

#[test]
fn descriptor_set_keeps_the_http_rule_of_place_order() {
    let rule = common::rule("stocklet.order.v1.OrderService", "PlaceOrder");

    // The original Stocklet's shape: the body is the map itself.
    assert_eq!(rule.pattern, Some(Pattern::Post("/v1/order/place".into())));
    assert_eq!(rule.body, "items");
    assert_eq!(
        common::verb_and_path(&rule),
        ("POST", "/v1/order/place".to_owned())
    );
    // And wrapped in a Cart, on the orders collection.
    let [wrapped] = rule.additional_bindings.as_slice() else {
        panic!("one additional binding: {:?}", rule.additional_bindings);
    };
    assert_eq!(wrapped.body, "cart");
    assert_eq!(
        common::verb_and_path(wrapped),
        ("POST", "/v1/order/orders".to_owned())
    );
}

#[test]
fn descriptor_set_decodes_as_a_file_descriptor_set_with_comments() {
    let set = prost_types::FileDescriptorSet::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
    let names: Vec<&str> = set.file.iter().map(|file| file.name()).collect();

    for expected in [
        "google/protobuf/descriptor.proto",
        "google/api/http.proto",
        "google/api/annotations.proto",
        "stocklet/order/v1/order.proto",
        "stocklet/events/v1/envelope.proto",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let order = set
        .file
        .iter()
        .find(|file| file.name() == "stocklet/order/v1/order.proto")
        .unwrap();
    assert!(
        order.source_code_info.is_some(),
        "source info (comments) is kept for reflection"
    );
}
