//! Checks the conventions of proto/README.md over the whole descriptor set,
//! so a new field or method that breaks them fails here rather than in
//! review: money and time types, enums, pagination, routes and events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

const SERVICES: [&str; 7] = [
    "auth",
    "user",
    "product",
    "warehouse",
    "order",
    "payment",
    "shipping",
];

fn stocklet_files() -> Vec<FileDescriptorProto> {
    let set = FileDescriptorSet::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .filter(|file| file.package().starts_with("stocklet."))
        .collect()
}

/// Every message, nested ones included, with its full name.
fn messages(files: &[FileDescriptorProto]) -> Vec<(String, DescriptorProto)> {
    fn walk(prefix: &str, message: &DescriptorProto, out: &mut Vec<(String, DescriptorProto)>) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            walk(&name, nested, out);
        }
        out.push((name, message.clone()));
    }
    let mut out = Vec::new();
    for file in files {
        for message in &file.message_type {
            walk(&format!(".{}", file.package()), message, &mut out);
        }
    }
    out
}

fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[test]
fn money_time_and_quantities_are_int64_and_nothing_is_floating_point() {
    let files = stocklet_files();
    let mut checked = 0;
    for (message, descriptor) in messages(&files) {
        for field in &descriptor.field {
            let what = format!("{message}.{}", field.name());
            assert!(
                !matches!(field.r#type(), Type::Float | Type::Double),
                "{what} is floating point"
            );
            assert!(
                !field.type_name().starts_with(".google.protobuf."),
                "{what} uses a well-known type; use int64 `_ms` or `_cents` instead"
            );
            let name = field.name();
            let int64_by_name = name.ends_with("_cents")
                || name.ends_with("_ms")
                || name.ends_with("_s")
                || name.ends_with("_units")
                || ["quantity", "on_hand", "reserved", "available"].contains(&name);
            if int64_by_name {
                assert_eq!(field.r#type(), Type::Int64, "{what} must be int64");
                checked += 1;
            }
            if name.contains("price") || name.contains("amount") || name.contains("total") {
                assert!(
                    name.ends_with("_cents"),
                    "{what} is money: name it `_cents`"
                );
            }
            if name.ends_with("_at") || name.contains("time") || name.contains("expires") {
                assert!(
                    name.ends_with("_ms") || name.ends_with("_s"),
                    "{what} is a time: end its name with its unit, `_ms` or `_s`"
                );
            }
        }
        // map<string, int64> of quantities.
        if descriptor.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
            let value = descriptor
                .field
                .iter()
                .find(|f| f.name() == "value")
                .unwrap();
            assert_eq!(
                value.r#type(),
                Type::Int64,
                "{message} values must be int64"
            );
        }
    }
    assert!(
        checked > 100,
        "only {checked} money/time/quantity fields found"
    );
}

#[test]
fn enums_start_unspecified_and_prefix_every_value() {
    let files = stocklet_files();
    let mut count = 0;
    for file in &files {
        for enumeration in &file.enum_type {
            let prefix = format!("{}_", screaming_snake(enumeration.name()));
            let first = &enumeration.value[0];
            assert_eq!(first.name(), format!("{prefix}UNSPECIFIED"));
            assert_eq!(first.number(), 0);
            for value in &enumeration.value {
                assert!(
                    value.name().starts_with(&prefix),
                    "{} lacks the prefix {prefix}",
                    value.name()
                );
            }
            count += 1;
        }
        for message in &file.message_type {
            assert!(
                message.enum_type.is_empty(),
                "keep enums top-level: {}",
                message.name()
            );
        }
    }
    assert!(count >= 10, "only {count} enums found");
}

#[test]
fn every_method_has_its_own_request_and_response_and_lists_are_paginated() {
    let files = stocklet_files();
    let by_name: BTreeMap<String, DescriptorProto> = messages(&files).into_iter().collect();
    // Bounded lists that are not paginated, each for a documented reason.
    let bounded = [
        "ViewOrderTimeline",    // the events of one saga
        "ViewShipmentManifest", // the lines of one shipment
        "GetJwks",              // the signing keys
        "ReplayDeadLetters",    // the letters just replayed, at most a page
    ];
    let mut paginated = BTreeSet::new();
    for file in &files {
        for service in &file.service {
            for method in &service.method {
                let name = method.name();
                let package = file.package();
                assert_eq!(method.input_type(), format!(".{package}.{name}Request"));
                assert_eq!(method.output_type(), format!(".{package}.{name}Response"));
                let input = &by_name[method.input_type()];
                let output = &by_name[method.output_type()];
                let lists = output
                    .field
                    .iter()
                    .any(|f| f.label() == Label::Repeated && f.r#type() == Type::Message);
                if !lists || bounded.contains(&name) {
                    assert!(output.field.iter().all(|f| f.name() != "next_page_token"));
                    continue;
                }
                let field = |m: &DescriptorProto, n: &str| {
                    m.field
                        .iter()
                        .find(|f| f.name() == n)
                        .map(|f| f.r#type())
                        .unwrap_or_else(|| panic!("{name}: {} has no {n}", m.name()))
                };
                assert_eq!(field(input, "page_size"), Type::Int32, "{name}");
                assert_eq!(field(input, "page_token"), Type::String, "{name}");
                assert_eq!(field(output, "next_page_token"), Type::String, "{name}");
                paginated.insert(name.to_owned());
            }
        }
    }
    let expected: BTreeSet<String> = [
        "ListUsers",
        "ViewProducts",
        "ViewOrders",
        "ListStuckSagas",
        "ListDeadLetters",
        "ViewTransactions",
        "ViewShipments",
    ]
    .map(String::from)
    .into();
    assert_eq!(paginated, expected);
}

#[test]
fn every_route_is_as_documented() {
    // service, method, verb, path, body
    let table: &[(&str, &str, &str, &str, &str)] = &[
        ("auth", "GetServiceInfo", "GET", "/v1/auth/service", ""),
        ("auth", "GetJwks", "GET", "/v1/auth/jwks", ""),
        ("auth", "LoginPassword", "POST", "/v1/auth/login", "*"),
        ("auth", "SetPassword", "POST", "/v1/auth/password", "*"),
        ("user", "GetServiceInfo", "GET", "/v1/user/service", ""),
        ("user", "ViewUser", "GET", "/v1/user/users/{id}", ""),
        ("user", "ListUsers", "GET", "/v1/user/users", ""),
        ("user", "RegisterUser", "POST", "/v1/user/register", "*"),
        (
            "user",
            "UpdateUserEmail",
            "PUT",
            "/v1/user/users/{id}/email",
            "*",
        ),
        ("user", "DeleteUser", "DELETE", "/v1/user/users/{id}", ""),
        (
            "product",
            "GetServiceInfo",
            "GET",
            "/v1/product/service",
            "",
        ),
        ("product", "ViewProduct", "GET", "/v1/product/{id}", ""),
        ("product", "ViewProducts", "GET", "/v1/product/list", ""),
        ("product", "CreateProduct", "POST", "/v1/product", "*"),
        (
            "product",
            "UpdateProductPrice",
            "PUT",
            "/v1/product/{id}/price",
            "*",
        ),
        (
            "product",
            "UpdateProductDetails",
            "PATCH",
            "/v1/product/{id}",
            "*",
        ),
        ("product", "DeleteProduct", "DELETE", "/v1/product/{id}", ""),
        (
            "warehouse",
            "GetServiceInfo",
            "GET",
            "/v1/warehouse/service",
            "",
        ),
        (
            "warehouse",
            "ViewProductStock",
            "GET",
            "/v1/warehouse/product/{product_id}",
            "",
        ),
        (
            "warehouse",
            "ViewReservation",
            "GET",
            "/v1/warehouse/reservation/{reservation_id}",
            "",
        ),
        (
            "warehouse",
            "AddStock",
            "POST",
            "/v1/warehouse/product/{product_id}/add",
            "*",
        ),
        (
            "warehouse",
            "RemoveStock",
            "POST",
            "/v1/warehouse/product/{product_id}/remove",
            "*",
        ),
        ("order", "GetServiceInfo", "GET", "/v1/order/service", ""),
        (
            "order",
            "ViewOrder",
            "GET",
            "/v1/order/orders/{order_id}",
            "",
        ),
        ("order", "ViewOrders", "GET", "/v1/order/list", ""),
        ("order", "PlaceOrder", "POST", "/v1/order/place", "items"),
        ("order", "PlaceOrder", "POST", "/v1/order/orders", "cart"),
        (
            "order",
            "CancelOrder",
            "POST",
            "/v1/order/orders/{order_id}/cancel",
            "*",
        ),
        (
            "order",
            "ViewOrderTimeline",
            "GET",
            "/v1/order/orders/{order_id}/timeline",
            "",
        ),
        (
            "order",
            "ListStuckSagas",
            "GET",
            "/v1/order/sagas/stuck",
            "",
        ),
        (
            "order",
            "ListDeadLetters",
            "GET",
            "/v1/order/deadletters",
            "",
        ),
        (
            "order",
            "ViewDeadLetter",
            "GET",
            "/v1/order/deadletter/{sequence}",
            "",
        ),
        (
            "order",
            "ReplayDeadLetters",
            "POST",
            "/v1/order/deadletters/replay",
            "*",
        ),
        (
            "order",
            "DiscardDeadLetters",
            "POST",
            "/v1/order/deadletters/discard",
            "*",
        ),
        (
            "payment",
            "GetServiceInfo",
            "GET",
            "/v1/payment/service",
            "",
        ),
        (
            "payment",
            "ViewBalance",
            "GET",
            "/v1/payment/balance/{customer_id}",
            "",
        ),
        (
            "payment",
            "CreditBalance",
            "POST",
            "/v1/payment/balance/{customer_id}/credit",
            "*",
        ),
        (
            "payment",
            "ViewTransaction",
            "GET",
            "/v1/payment/transaction/{transaction_id}",
            "",
        ),
        (
            "payment",
            "ViewTransactions",
            "GET",
            "/v1/payment/transactions",
            "",
        ),
        (
            "shipping",
            "GetServiceInfo",
            "GET",
            "/v1/shipping/service",
            "",
        ),
        (
            "shipping",
            "ViewShipment",
            "GET",
            "/v1/shipping/shipment/{shipment_id}",
            "",
        ),
        (
            "shipping",
            "ViewShipmentManifest",
            "GET",
            "/v1/shipping/shipment/{shipment_id}/manifest",
            "",
        ),
        (
            "shipping",
            "ViewShipments",
            "GET",
            "/v1/shipping/shipments",
            "",
        ),
        (
            "shipping",
            "DispatchShipment",
            "POST",
            "/v1/shipping/shipment/{shipment_id}/dispatch",
            "*",
        ),
    ];

    let mut actual = BTreeSet::new();
    for route in common::routes() {
        let Some(short) = route
            .service
            .strip_prefix("stocklet.")
            .and_then(|rest| rest.split('.').next())
        else {
            continue;
        };
        let rule = route
            .rule
            .unwrap_or_else(|| panic!("{}/{} has no HTTP rule", route.service, route.method));
        assert!(rule.response_body.is_empty());
        for nested in &rule.additional_bindings {
            assert!(nested.additional_bindings.is_empty(), "nested bindings");
        }
        for binding in std::iter::once(&rule).chain(&rule.additional_bindings) {
            let (verb, path) = common::verb_and_path(binding);
            assert!(binding.response_body.is_empty());
            actual.insert((
                short.to_owned(),
                route.method.clone(),
                verb.to_owned(),
                path,
                binding.body.clone(),
            ));
        }
    }
    let expected: BTreeSet<_> = table
        .iter()
        .map(|&(s, m, v, p, b)| {
            (
                s.to_owned(),
                m.to_owned(),
                v.to_owned(),
                p.to_owned(),
                b.to_owned(),
            )
        })
        .collect();
    assert_eq!(actual, expected);

    // One service per package, named after it, each with GetServiceInfo.
    for service in SERVICES {
        let rule = common::rule(
            &format!("stocklet.{service}.v1.{}Service", capitalise(service)),
            "GetServiceInfo",
        );
        assert_eq!(
            common::verb_and_path(&rule),
            ("GET", format!("/v1/{service}/service"))
        );
    }

    // No two methods share a verb and a path.
    let routes: BTreeSet<_> = actual.iter().map(|(_, _, v, p, _)| (v, p)).collect();
    assert_eq!(routes.len(), actual.len());
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[test]
fn events_are_catalogued_per_context_and_carry_their_time() {
    let expected: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "auth",
            vec![
                "InitialPasswordHashed",
                "CredentialsCreated",
                "PasswordChanged",
                "CredentialsEmailChanged",
                "CredentialsRemoved",
            ],
        ),
        (
            "user",
            vec![
                "UserRegistered",
                "UserEmailUpdated",
                "UserDeleted",
                "EmailClaimed",
                "EmailReleased",
            ],
        ),
        (
            "product",
            vec![
                "ProductCreated",
                "ProductPriceUpdated",
                "ProductDetailsUpdated",
                "ProductDeleted",
                "PriceQuoted",
                "PriceQuoteFailed",
            ],
        ),
        (
            "warehouse",
            vec![
                "StockCreated",
                "StockAdded",
                "StockRemoved",
                "StockReserved",
                "StockHeld",
                "StockReservationFailed",
                "StockReleased",
                "StockConsumed",
                "StockReturned",
                "ReservationReleased",
                "ReservationConsumed",
                "ReservationReturned",
            ],
        ),
        (
            "order",
            vec![
                "OrderLine",
                "PricedOrderLine",
                "OrderPlaced",
                "OrderPriced",
                "OrderRejected",
                "OrderApproved",
                "OrderCompleted",
                "OrderCancellationRequested",
                "OrderCancelled",
            ],
        ),
        (
            "shipping",
            vec![
                "ShipmentAllocated",
                "ShipmentAllocationFailed",
                "ShipmentReleased",
                "ShipmentPaid",
                "ShipmentCancellationRefused",
                "ShipmentDispatched",
            ],
        ),
        (
            "payment",
            vec![
                "BalanceOpened",
                "BalanceCredited",
                "BalanceDebited",
                "BalanceClosed",
                "PaymentCaptured",
                "PaymentFailed",
                "TransactionReversed",
                "OrderPaymentCaptured",
                "OrderPaymentFailed",
                "OrderPaymentReversed",
            ],
        ),
        ("envelope", vec!["EventBatch", "EventRecord"]),
    ]);
    let not_events = ["OrderLine", "PricedOrderLine", "EventBatch", "EventRecord"];

    let files: Vec<FileDescriptorProto> = stocklet_files()
        .into_iter()
        .filter(|file| file.package() == "stocklet.events.v1")
        .collect();
    let mut actual = BTreeMap::new();
    for file in &files {
        let context = file
            .name()
            .strip_prefix("stocklet/events/v1/")
            .and_then(|name| name.strip_suffix(".proto"))
            .unwrap();
        let names: Vec<&str> = file.message_type.iter().map(|m| m.name()).collect();
        actual.insert(context, names);

        for message in &file.message_type {
            if not_events.contains(&message.name()) {
                continue;
            }
            let time = message
                .field
                .iter()
                .find(|f| f.name() == "occurred_at_ms")
                .unwrap_or_else(|| panic!("{} has no occurred_at_ms", message.name()));
            assert_eq!(time.number(), 15, "{}", message.name());
            assert!(
                message.field.iter().all(|f| f.number() <= 15),
                "{}: occurred_at_ms = 15 stays the last field",
                message.name()
            );
        }
    }
    assert_eq!(actual, expected);
}

#[test]
fn saga_events_carry_the_order_and_what_the_next_step_needs() {
    let files = stocklet_files();
    let by_name: BTreeMap<String, DescriptorProto> = messages(&files).into_iter().collect();
    let needs: &[(&str, &[&str])] = &[
        ("OrderPlaced", &["order_id", "customer_id", "lines"]),
        (
            "PriceQuoted",
            &["order_id", "customer_id", "lines", "items_price_cents"],
        ),
        ("PriceQuoteFailed", &["order_id", "unavailable_product_ids"]),
        (
            "OrderPriced",
            &["order_id", "customer_id", "lines", "total_cents"],
        ),
        (
            "StockReserved",
            &[
                "order_id",
                "customer_id",
                "reservation_id",
                "lines",
                "total_cents",
            ],
        ),
        ("StockReservationFailed", &["order_id", "short_product_ids"]),
        (
            "ShipmentAllocated",
            &[
                "order_id",
                "customer_id",
                "shipment_id",
                "reservation_id",
                "total_cents",
            ],
        ),
        (
            "ShipmentAllocationFailed",
            &[
                "order_id",
                "reservation_id",
                "requested_units",
                "capacity_units",
            ],
        ),
        (
            "PaymentCaptured",
            &[
                "order_id",
                "transaction_id",
                "shipment_id",
                "reservation_id",
                "amount_cents",
            ],
        ),
        (
            "PaymentFailed",
            &["order_id", "shipment_id", "reservation_id", "reason"],
        ),
        (
            "OrderRejected",
            &["order_id", "reason", "detail", "product_ids"],
        ),
        (
            "OrderApproved",
            &["order_id", "transaction_id", "shipment_id"],
        ),
        (
            "OrderCancelled",
            &[
                "order_id",
                "customer_id",
                "transaction_id",
                "shipment_id",
                "reservation_id",
                "lines",
                "total_cents",
            ],
        ),
        ("ShipmentDispatched", &["order_id", "shipment_id"]),
        ("ShipmentReleased", &["order_id", "shipment_id"]),
        (
            "ShipmentPaid",
            &["order_id", "shipment_id", "transaction_id"],
        ),
        ("OrderCancellationRequested", &["order_id", "reason"]),
    ];
    for (event, fields) in needs {
        let message = &by_name[&format!(".stocklet.events.v1.{event}")];
        for field in *fields {
            assert!(
                message.field.iter().any(|f| f.name() == *field),
                "{event} lacks {field}"
            );
        }
    }
}
