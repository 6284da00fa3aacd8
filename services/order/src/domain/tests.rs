//! The order's state machine, step by step (given/when/then) and under
//! random saga traffic (proptest): duplicates, reordering and cancellations
//! at any point never make an order reach more than one final state, apply
//! a step twice, or leave stock, a shipment or a payment behind.

use std::collections::VecDeque;

use es_core::Aggregate;
use es_core::testing::{given, given_no_events};
use proptest::prelude::*;
use stocklet_proto::stocklet::events::v1 as pb;

use super::*;

const ORDER: &str = "0192f0c1-0000-7000-8000-00000000aaaa";
const CUSTOMER: &str = "alice";
const P1: &str = "0192f0c1-0000-7000-8000-000000000001";
const P2: &str = "0192f0c1-0000-7000-8000-000000000002";
const FEE: i64 = 499;

fn pid(raw: &str) -> ProductId {
    ProductId::parse(raw).unwrap()
}

fn place_command() -> OrderCommand {
    OrderCommand::Place {
        order_id: OrderId::parse(ORDER).unwrap(),
        customer_id: CustomerId::parse(CUSTOMER).unwrap(),
        cart: Cart::parse([(P2, 3), (P1, 2)]).unwrap(),
        at_ms: 1_000,
    }
}

fn placed() -> OrderEvent {
    OrderEvent::Placed(pb::OrderPlaced {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        lines: vec![
            pb::OrderLine {
                product_id: P1.into(),
                quantity: 2,
            },
            pb::OrderLine {
                product_id: P2.into(),
                quantity: 3,
            },
        ],
        occurred_at_ms: 1_000,
    })
}

fn quoted_line(product: &str, quantity: i64, price: i64) -> QuotedLine {
    QuotedLine {
        product_id: pid(product),
        quantity: Quantity::parse(quantity).unwrap(),
        unit_price: Cents::parse(price).unwrap(),
    }
}

/// P1: 2 x 1000, P2: 3 x 250 = 2750 items, 3249 total.
fn price_quoted() -> SagaInput {
    SagaInput::PriceQuoted {
        lines: vec![quoted_line(P2, 3, 250), quoted_line(P1, 2, 1_000)],
        items_price: Cents::parse(2_750).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    }
}

fn priced() -> OrderEvent {
    OrderEvent::Priced(pb::OrderPriced {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        lines: vec![
            pb::PricedOrderLine {
                product_id: P1.into(),
                quantity: 2,
                unit_price_cents: 1_000,
            },
            pb::PricedOrderLine {
                product_id: P2.into(),
                quantity: 3,
                unit_price_cents: 250,
            },
        ],
        items_price_cents: 2_750,
        shipping_fee_cents: FEE,
        total_cents: 3_249,
        occurred_at_ms: 2_000,
    })
}

fn captured(transaction: &str) -> SagaInput {
    SagaInput::PaymentCaptured {
        transaction_id: transaction.into(),
        amount: Cents::parse(3_249).unwrap(),
        shipment_id: "ship-1".into(),
        reservation_id: "res-1".into(),
    }
}

fn approved() -> OrderEvent {
    OrderEvent::Approved(pb::OrderApproved {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        transaction_id: "tx-1".into(),
        shipment_id: "ship-1".into(),
        reservation_id: "res-1".into(),
        total_cents: 3_249,
        occurred_at_ms: 3_000,
    })
}

fn dispatched() -> SagaInput {
    SagaInput::ShipmentDispatched {
        shipment_id: "ship-1".into(),
    }
}

fn react(input: SagaInput, at_ms: i64) -> OrderCommand {
    OrderCommand::React { input, at_ms }
}

fn cancel(reason: &str, at_ms: i64) -> OrderCommand {
    OrderCommand::Cancel {
        reason: CancellationReason::parse(reason).unwrap(),
        at_ms,
    }
}

fn rejected(
    reason: pb::OrderRejectionReason,
    detail: &str,
    products: &[&str],
    reservation: &str,
    shipment: &str,
    at_ms: i64,
) -> OrderEvent {
    OrderEvent::Rejected(pb::OrderRejected {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        reason: reason.into(),
        detail: detail.into(),
        product_ids: products.iter().map(|p| (*p).to_owned()).collect(),
        reservation_id: reservation.into(),
        shipment_id: shipment.into(),
        occurred_at_ms: at_ms,
    })
}

// ---- placing ----

#[test]
fn placing_records_the_sorted_cart_as_processing() {
    let order = given_no_events::<Order>()
        .when(place_command())
        .then_expect_events([placed()]);
    assert_eq!(order.status(), Some(OrderStatus::Processing));
    assert_eq!(order.customer_id(), CUSTOMER);
    assert_eq!(order.total_cents(), 0);
    assert_eq!(
        order.history(),
        [StatusChange {
            status: OrderStatus::Processing,
            at_ms: 1_000
        }]
    );
}

#[test]
fn an_order_is_placed_once() {
    given::<Order>([placed()])
        .when(place_command())
        .then_expect_error(|e| *e == OrderError::AlreadyPlaced);
}

#[test]
fn nothing_but_placing_applies_to_a_missing_order() {
    given_no_events::<Order>()
        .when(react(price_quoted(), 2_000))
        .then_expect_error(|e| *e == OrderError::NotPlaced);
    given_no_events::<Order>()
        .when(cancel("", 2_000))
        .then_expect_error(|e| *e == OrderError::NotPlaced);
}

// ---- pricing ----

#[test]
fn a_quote_prices_the_order_with_the_shipping_fee() {
    let order = given::<Order>([placed()])
        .when(react(price_quoted(), 2_000))
        .then_expect_events([priced()]);
    assert_eq!(order.status(), Some(OrderStatus::Pending));
    assert_eq!(
        (
            order.items_price_cents(),
            order.shipping_fee_cents(),
            order.total_cents()
        ),
        (2_750, FEE, 3_249)
    );
    assert_eq!(order.lines()[0].unit_price.get(), 1_000);
}

#[test]
fn a_quote_for_other_lines_is_refused() {
    let wrong_quantity = SagaInput::PriceQuoted {
        lines: vec![quoted_line(P1, 1, 1_000), quoted_line(P2, 3, 250)],
        items_price: Cents::parse(1_750).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    };
    given::<Order>([placed()])
        .when(react(wrong_quantity, 2_000))
        .then_expect_error(|e| *e == OrderError::QuoteMismatch);
    let missing_line = SagaInput::PriceQuoted {
        lines: vec![quoted_line(P1, 2, 1_000)],
        items_price: Cents::parse(2_000).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    };
    given::<Order>([placed()])
        .when(react(missing_line, 2_000))
        .then_expect_error(|e| *e == OrderError::QuoteMismatch);
}

#[test]
fn a_quote_whose_sum_is_wrong_is_refused() {
    let wrong_sum = SagaInput::PriceQuoted {
        lines: vec![quoted_line(P1, 2, 1_000), quoted_line(P2, 3, 250)],
        items_price: Cents::parse(1).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    };
    given::<Order>([placed()])
        .when(react(wrong_sum, 2_000))
        .then_expect_error(|e| {
            *e == OrderError::ItemsPriceMismatch {
                quoted: 1,
                computed: 2_750,
            }
        });
}

#[test]
fn a_total_beyond_the_largest_amount_is_refused() {
    let huge = SagaInput::PriceQuoted {
        lines: vec![
            quoted_line(P1, 2, Cents::MAX),
            quoted_line(P2, 3, Cents::MAX),
        ],
        items_price: Cents::parse(Cents::MAX).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    };
    let too_large = || {
        rejected(
            pb::OrderRejectionReason::TotalTooLarge,
            "the order's total exceeds 100000000000 cents, the most one order may cost",
            &[],
            "",
            "",
            2_000,
        )
    };
    let order = given::<Order>([placed()])
        .when(react(huge, 2_000))
        .then_expect_events([too_large()]);
    assert_eq!(order.status(), Some(OrderStatus::Rejected));
    // The shipping fee on top of the largest items price is too much too.
    let fee_on_top = SagaInput::PriceQuoted {
        lines: vec![quoted_line(P1, 2, Cents::MAX / 2), quoted_line(P2, 3, 0)],
        items_price: Cents::parse(Cents::MAX).unwrap(),
        shipping_fee: Cents::parse(FEE).unwrap(),
    };
    given::<Order>([placed()])
        .when(react(fee_on_top, 2_000))
        .then_expect_events([too_large()]);
    // And so is a quote the product service could not price for its size.
    given::<Order>([placed()])
        .when(react(
            SagaInput::PriceQuoteFailed {
                product_ids: Vec::new(),
                total_too_large: true,
            },
            2_000,
        ))
        .then_expect_events([too_large()]);
}

#[test]
fn unavailable_products_reject_the_order() {
    let order = given::<Order>([placed()])
        .when(react(
            SagaInput::PriceQuoteFailed {
                product_ids: vec![pid(P2), pid(P2)],
                total_too_large: false,
            },
            2_000,
        ))
        .then_expect_events([rejected(
            pb::OrderRejectionReason::ProductUnavailable,
            "some products do not exist or were deleted",
            &[P2],
            "",
            "",
            2_000,
        )]);
    assert_eq!(order.status(), Some(OrderStatus::Rejected));
    assert_eq!(
        order.rejection().and_then(|r| r.reason),
        Some(RejectionReason::ProductUnavailable)
    );
}

// ---- the pending steps ----

#[test]
fn each_failed_step_rejects_a_pending_order_with_its_reason() {
    let cases = [
        (
            SagaInput::StockReservationFailed {
                product_ids: vec![pid(P1)],
            },
            rejected(
                pb::OrderRejectionReason::InsufficientStock,
                "some products have too little stock",
                &[P1],
                "",
                "",
                3_000,
            ),
        ),
        (
            SagaInput::ShipmentAllocationFailed {
                reservation_id: "res-1".into(),
                detail: "too many units".into(),
            },
            rejected(
                pb::OrderRejectionReason::ShippingUnavailable,
                "too many units",
                &[],
                "res-1",
                "",
                3_000,
            ),
        ),
        (
            SagaInput::PaymentFailed {
                reason: PaymentFailure::InsufficientBalance,
                detail: String::new(),
                reservation_id: "res-1".into(),
                shipment_id: "ship-1".into(),
            },
            rejected(
                pb::OrderRejectionReason::InsufficientBalance,
                "the balance is less than the order's total",
                &[],
                "res-1",
                "ship-1",
                3_000,
            ),
        ),
        (
            SagaInput::PaymentFailed {
                reason: PaymentFailure::Declined,
                detail: "balance closed".into(),
                reservation_id: "res-1".into(),
                shipment_id: "ship-1".into(),
            },
            rejected(
                pb::OrderRejectionReason::PaymentDeclined,
                "balance closed",
                &[],
                "res-1",
                "ship-1",
                3_000,
            ),
        ),
    ];
    for (input, expected) in cases {
        let order = given::<Order>([placed(), priced()])
            .when(react(input, 3_000))
            .then_expect_events([expected]);
        assert_eq!(order.status(), Some(OrderStatus::Rejected));
        assert_eq!(order.total_cents(), 3_249, "the priced total is kept");
    }
}

#[test]
fn a_captured_payment_approves_the_order() {
    let order = given::<Order>([placed(), priced()])
        .when(react(captured("tx-1"), 3_000))
        .then_expect_events([approved()]);
    assert_eq!(order.status(), Some(OrderStatus::Approved));
    assert_eq!(
        (
            order.transaction_id(),
            order.shipment_id(),
            order.reservation_id()
        ),
        ("tx-1", "ship-1", "res-1")
    );
}

#[test]
fn a_capture_of_another_amount_is_refused() {
    let short = SagaInput::PaymentCaptured {
        transaction_id: "tx-1".into(),
        amount: Cents::parse(3_000).unwrap(),
        shipment_id: "ship-1".into(),
        reservation_id: "res-1".into(),
    };
    given::<Order>([placed(), priced()])
        .when(react(short, 3_000))
        .then_expect_error(|e| {
            *e == OrderError::AmountMismatch {
                total: 3_249,
                captured: 3_000,
            }
        });
}

#[test]
fn dispatch_completes_an_approved_order_with_its_history() {
    let order = given::<Order>([placed(), priced(), approved()])
        .when(react(dispatched(), 4_000))
        .then_expect_events([OrderEvent::Completed(pb::OrderCompleted {
            order_id: ORDER.into(),
            customer_id: CUSTOMER.into(),
            shipment_id: "ship-1".into(),
            occurred_at_ms: 4_000,
        })]);
    let history: Vec<(OrderStatus, i64)> = order
        .history()
        .iter()
        .map(|c| (c.status, c.at_ms))
        .collect();
    assert_eq!(
        history,
        [
            (OrderStatus::Processing, 1_000),
            (OrderStatus::Pending, 2_000),
            (OrderStatus::Approved, 3_000),
            (OrderStatus::Completed, 4_000),
        ]
    );
}

#[test]
fn dispatch_of_another_shipment_is_refused() {
    given::<Order>([placed(), priced(), approved()])
        .when(react(
            SagaInput::ShipmentDispatched {
                shipment_id: "ship-9".into(),
            },
            4_000,
        ))
        .then_expect_error(|e| matches!(e, OrderError::ShipmentMismatch { .. }));
}

// ---- idempotency and order of arrival ----

#[test]
fn repeated_inputs_change_nothing() {
    given::<Order>([placed(), priced()])
        .when(react(price_quoted(), 9_000))
        .then_expect_events([]);
    given::<Order>([placed(), priced(), approved()])
        .when(react(captured("tx-1"), 9_000))
        .then_expect_events([]);
    let rejection = rejected(
        pb::OrderRejectionReason::InsufficientStock,
        "",
        &[P1],
        "",
        "",
        3_000,
    );
    given::<Order>([placed(), priced(), rejection])
        .when(react(
            SagaInput::StockReservationFailed {
                product_ids: vec![pid(P1)],
            },
            9_000,
        ))
        .then_expect_events([]);
}

#[test]
fn inputs_that_overtook_an_earlier_step_are_retried_later() {
    let error = given::<Order>([placed()])
        .when(react(captured("tx-1"), 3_000))
        .result()
        .unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(
        error,
        OrderError::TooEarly {
            status: OrderStatus::Processing,
            input: "PaymentCaptured"
        }
    );
    given::<Order>([placed(), priced()])
        .when(react(dispatched(), 3_000))
        .then_expect_error(OrderError::is_retryable);
}

#[test]
fn inputs_that_contradict_the_outcome_are_refused() {
    given::<Order>([placed(), priced(), approved()])
        .when(react(captured("tx-2"), 9_000))
        .then_expect_error(|e| matches!(e, OrderError::Contradicts { .. }));
    let no_product = rejected(
        pb::OrderRejectionReason::ProductUnavailable,
        "",
        &[P1],
        "",
        "",
        2_000,
    );
    given::<Order>([placed(), no_product])
        .when(react(price_quoted(), 9_000))
        .then_expect_error(|e| {
            *e == OrderError::Contradicts {
                status: OrderStatus::Rejected,
                input: "PriceQuoted",
            }
        });
}

// ---- cancelling ----

#[test]
fn an_approved_order_is_cancelled_once_shipping_releases_its_shipment() {
    // The request only: shipping owns the point of no return.
    let requested = OrderEvent::CancellationRequested(pb::OrderCancellationRequested {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        reason: "changed my mind".into(),
        occurred_at_ms: 5_000,
    });
    let order = given::<Order>([placed(), priced(), approved()])
        .when(cancel("changed my mind", 5_000))
        .then_expect_events([requested.clone()]);
    assert_eq!(order.status(), Some(OrderStatus::Approved));
    assert!(order.cancellation_requested());
    given::<Order>([placed(), priced(), approved(), requested.clone()])
        .when(cancel("again", 5_500))
        .then_expect_events([]);

    // The shipment had not left: shipping released it, and the order is
    // cancelled with what compensation needs.
    let released = || SagaInput::ShipmentReleased {
        shipment_id: "ship-1".into(),
    };
    let cancelled = OrderEvent::Cancelled(pb::OrderCancelled {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        reason: "changed my mind".into(),
        lines: match priced() {
            OrderEvent::Priced(e) => e.lines,
            _ => unreachable!(),
        },
        total_cents: 3_249,
        transaction_id: "tx-1".into(),
        shipment_id: "ship-1".into(),
        reservation_id: "res-1".into(),
        occurred_at_ms: 6_000,
    });
    let order = given::<Order>([placed(), priced(), approved(), requested.clone()])
        .when(react(released(), 6_000))
        .then_expect_events([cancelled.clone()]);
    assert_eq!(order.status(), Some(OrderStatus::Cancelled));
    assert_eq!(order.cancellation_reason(), "changed my mind");
    given::<Order>([placed(), priced(), approved(), requested.clone(), cancelled])
        .when(react(released(), 6_500))
        .then_expect_events([]);

    // The shipment had left: the order completes, the cancellation refused.
    let order = given::<Order>([placed(), priced(), approved(), requested])
        .when(react(
            SagaInput::ShipmentDispatched {
                shipment_id: "ship-1".into(),
            },
            6_000,
        ))
        .then_expect_events([OrderEvent::Completed(pb::OrderCompleted {
            order_id: ORDER.into(),
            customer_id: CUSTOMER.into(),
            shipment_id: "ship-1".into(),
            occurred_at_ms: 6_000,
        })]);
    assert_eq!(order.status(), Some(OrderStatus::Completed));
    assert!(!order.cancellation_requested());

    // A release nobody asked for contradicts an approved order.
    given::<Order>([placed(), priced(), approved()])
        .when(react(released(), 6_000))
        .then_expect_error(|e| matches!(e, OrderError::Contradicts { .. }));
}

fn cancellation_requested(reason: &str) -> OrderEvent {
    OrderEvent::CancellationRequested(pb::OrderCancellationRequested {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        reason: reason.into(),
        occurred_at_ms: 2_500,
    })
}

/// The settled cancellation of an order that never paid: nothing to undo.
fn cancelled_unpaid(reason: &str, at_ms: i64) -> OrderEvent {
    OrderEvent::Cancelled(pb::OrderCancelled {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        reason: reason.into(),
        occurred_at_ms: at_ms,
        ..Default::default()
    })
}

#[test]
fn cancelling_a_running_saga_is_recorded_and_keeps_the_status() {
    for history in [vec![placed()], vec![placed(), priced()]] {
        let before = given::<Order>(history.clone()).state().status();
        let order = given::<Order>(history.clone())
            .when(cancel("too slow", 2_500))
            .then_expect_events([cancellation_requested("too slow")]);
        assert_eq!(order.status(), before);
        assert!(order.cancellation_requested());
        // Asking again changes nothing.
        given::<Order>(
            history
                .into_iter()
                .chain([cancellation_requested("too slow")]),
        )
        .when(cancel("again", 2_600))
        .then_expect_events([]);
    }
}

#[test]
fn a_requested_cancellation_is_settled_by_the_quote_with_nothing_to_undo() {
    let order = given::<Order>([placed(), cancellation_requested("r")])
        .when(react(price_quoted(), 3_000))
        .then_expect_events([cancelled_unpaid("r", 3_000)]);
    assert_eq!(order.status(), Some(OrderStatus::Cancelled));
    assert!(!order.cancellation_requested());
}

#[test]
fn a_requested_cancellation_is_settled_by_a_failure_with_nothing_to_undo() {
    let failures = [
        SagaInput::StockReservationFailed {
            product_ids: vec![pid(P1)],
        },
        SagaInput::ShipmentAllocationFailed {
            reservation_id: "res-1".into(),
            detail: String::new(),
        },
        SagaInput::PaymentFailed {
            reason: PaymentFailure::InsufficientBalance,
            detail: String::new(),
            reservation_id: "res-1".into(),
            shipment_id: "ship-1".into(),
        },
    ];
    for failure in failures {
        given::<Order>([placed(), priced(), cancellation_requested("r")])
            .when(react(failure, 3_000))
            .then_expect_events([cancelled_unpaid("r", 3_000)]);
    }
}

#[test]
fn a_requested_cancellation_settled_by_the_payment_undoes_everything() {
    let order = given::<Order>([placed(), priced(), cancellation_requested("r")])
        .when(react(captured("tx-1"), 3_000))
        .then_expect_events([OrderEvent::Cancelled(pb::OrderCancelled {
            order_id: ORDER.into(),
            customer_id: CUSTOMER.into(),
            reason: "r".into(),
            lines: match priced() {
                OrderEvent::Priced(e) => e.lines,
                _ => unreachable!(),
            },
            total_cents: 3_249,
            transaction_id: "tx-1".into(),
            shipment_id: "ship-1".into(),
            reservation_id: "res-1".into(),
            occurred_at_ms: 3_000,
        })]);
    assert_eq!(order.transaction_id(), "tx-1");
    // A late duplicate of the payment changes nothing.
    let settled = given::<Order>([placed(), priced(), cancellation_requested("r")])
        .when(react(captured("tx-1"), 3_000))
        .result()
        .unwrap();
    given::<Order>(
        [placed(), priced(), cancellation_requested("r")]
            .into_iter()
            .chain(settled),
    )
    .when(react(captured("tx-1"), 3_100))
    .then_expect_events([]);
}

#[test]
fn a_wrong_payment_amount_is_refused_even_when_cancelling() {
    given::<Order>([placed(), priced(), cancellation_requested("r")])
        .when(react(
            SagaInput::PaymentCaptured {
                transaction_id: "tx-1".into(),
                amount: Cents::parse(1).unwrap(),
                shipment_id: "ship-1".into(),
                reservation_id: "res-1".into(),
            },
            3_000,
        ))
        .then_expect_error(|e| matches!(e, OrderError::AmountMismatch { .. }));
}

#[test]
fn late_answers_after_a_quote_settled_cancellation_change_nothing() {
    let history = [
        placed(),
        cancellation_requested("r"),
        cancelled_unpaid("r", 3_000),
    ];
    given::<Order>(history.clone())
        .when(react(price_quoted(), 3_100))
        .then_expect_events([]);
    given::<Order>(history)
        .when(react(dispatched(), 3_100))
        .then_expect_error(|e| matches!(e, OrderError::Contradicts { .. }));
}

#[test]
fn final_orders_cannot_be_cancelled() {
    let completed = OrderEvent::Completed(pb::OrderCompleted {
        order_id: ORDER.into(),
        customer_id: CUSTOMER.into(),
        shipment_id: "ship-1".into(),
        occurred_at_ms: 4_000,
    });
    given::<Order>([placed(), priced(), approved(), completed])
        .when(cancel("", 5_000))
        .then_expect_error(|e| {
            *e == OrderError::Final {
                status: OrderStatus::Completed,
            }
        });
    // Cancelled once shipping released the shipment.
    let mut history = vec![placed(), priced(), approved()];
    history.extend(
        given::<Order>(history.clone())
            .when(cancel("", 5_000))
            .result()
            .unwrap(),
    );
    let released = SagaInput::ShipmentReleased {
        shipment_id: "ship-1".into(),
    };
    history.extend(
        given::<Order>(history.clone())
            .when(react(released, 5_500))
            .result()
            .unwrap(),
    );
    let cancelled = given::<Order>(history.clone()).when(cancel("", 6_000));
    assert_eq!(
        cancelled.result().map(|_| ()),
        Err(OrderError::Final {
            status: OrderStatus::Cancelled,
        })
    );
    given::<Order>(history)
        .when(react(dispatched(), 6_000))
        .then_expect_error(|e| matches!(e, OrderError::Contradicts { .. }));
}

#[test]
fn statuses_round_trip_through_their_names() {
    for status in [
        OrderStatus::Processing,
        OrderStatus::Pending,
        OrderStatus::Approved,
        OrderStatus::Rejected,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
    ] {
        assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(OrderStatus::parse("processing"), None);
}

#[test]
fn events_round_trip_through_the_store_format() {
    use es_core::DomainEvent;
    let cancelled = given::<Order>([placed(), priced(), approved()])
        .when(cancel("why", 5_000))
        .result()
        .unwrap();
    for event in [placed(), priced(), approved()]
        .into_iter()
        .chain(cancelled)
    {
        let raw = event.to_raw();
        assert!(raw.event_type.starts_with("stocklet.events.v1.Order"));
        assert_eq!(OrderEvent::decode(&raw).unwrap(), event);
    }
}

// ---- random saga traffic ----

/// What the other services still hold for the order after the saga ran
/// and the order's compensations were carried out: [stock reserved or
/// consumed, shipment allocated, payment captured], each 0 or 1.
///
/// The services downstream act only once the order is priced. Their
/// failure paths undo their own work (a failed allocation releases the
/// stock, a failed payment the stock and the shipment), so only a saga
/// that reached the payment holds anything; an `OrderCancelled` undoes
/// what it names. Undoing what was never taken fails the test.
fn left_open(scenario: Scenario, events: &[OrderEvent]) -> Result<[i32; 3], TestCaseError> {
    let priced = events.iter().any(|e| matches!(e, OrderEvent::Priced(_)));
    let paid = matches!(scenario, Scenario::Completed | Scenario::Cancelled);
    let taken = i32::from(priced && paid);
    let mut open = [taken; 3];
    for event in events {
        if let OrderEvent::Cancelled(e) = event {
            let undone = [&e.reservation_id, &e.shipment_id, &e.transaction_id];
            for (open, id) in open.iter_mut().zip(undone) {
                *open -= i32::from(!id.is_empty());
            }
            prop_assert!(e.transaction_id.is_empty() == (e.total_cents == 0));
        }
    }
    prop_assert!(
        open.iter().all(|n| *n >= 0),
        "undid more than taken: {events:?}"
    );
    Ok(open)
}

/// What an order in its final state keeps: everything once paid for and
/// not cancelled, nothing otherwise.
fn kept_by(events: &[OrderEvent]) -> [i32; 3] {
    let kept = match events.iter().rev().find_map(OrderEvent::status_entered) {
        Some(OrderStatus::Approved | OrderStatus::Completed) => 1,
        _ => 0,
    };
    [kept; 3]
}

/// What a command sent into the simulation is.
#[derive(Clone, Debug)]
enum Delivery {
    Input(SagaInput),
    Cancel,
}

/// How one saga ends, and the inputs that lead there.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    Completed,
    Cancelled,
    NoProduct,
    NoStock,
    NoShipment,
    NoBalance,
}

impl Scenario {
    fn deliveries(self) -> (Vec<Delivery>, OrderStatus) {
        use Delivery::{Cancel, Input};
        let quote = Input(price_quoted());
        match self {
            Self::Completed => (
                vec![quote, Input(captured("tx-1")), Input(dispatched())],
                OrderStatus::Completed,
            ),
            Self::Cancelled => (
                vec![quote, Input(captured("tx-1")), Cancel],
                OrderStatus::Cancelled,
            ),
            Self::NoProduct => (
                vec![Input(SagaInput::PriceQuoteFailed {
                    product_ids: vec![pid(P1)],
                    total_too_large: false,
                })],
                OrderStatus::Rejected,
            ),
            Self::NoStock => (
                vec![
                    quote,
                    Input(SagaInput::StockReservationFailed {
                        product_ids: vec![pid(P2)],
                    }),
                ],
                OrderStatus::Rejected,
            ),
            Self::NoShipment => (
                vec![
                    quote,
                    Input(SagaInput::ShipmentAllocationFailed {
                        reservation_id: "res-1".into(),
                        detail: String::new(),
                    }),
                ],
                OrderStatus::Rejected,
            ),
            Self::NoBalance => (
                vec![
                    quote,
                    Input(SagaInput::PaymentFailed {
                        reason: PaymentFailure::InsufficientBalance,
                        detail: String::new(),
                        reservation_id: "res-1".into(),
                        shipment_id: "ship-1".into(),
                    }),
                ],
                OrderStatus::Rejected,
            ),
        }
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    prop_oneof![
        Just(Scenario::Completed),
        Just(Scenario::Cancelled),
        Just(Scenario::NoProduct),
        Just(Scenario::NoStock),
        Just(Scenario::NoShipment),
        Just(Scenario::NoBalance),
    ]
}

/// Every input any saga could send this order, including ones that
/// contradict each other.
fn any_delivery() -> impl Strategy<Value = Delivery> {
    let all: Vec<Delivery> = [
        Scenario::Completed,
        Scenario::Cancelled,
        Scenario::NoProduct,
        Scenario::NoStock,
        Scenario::NoShipment,
        Scenario::NoBalance,
    ]
    .into_iter()
    .flat_map(|s| s.deliveries().0)
    .chain([Delivery::Input(captured("tx-2"))])
    .collect();
    proptest::sample::select(all)
}

fn is_final_event(event: &OrderEvent) -> bool {
    event.status_entered().is_some_and(OrderStatus::is_final)
}

/// Whether `to` may follow `from` in an order's life.
fn legal(from: Option<OrderStatus>, to: OrderStatus) -> bool {
    use OrderStatus::*;
    matches!(
        (from, to),
        (None, Processing)
            | (Some(Processing), Pending | Rejected | Cancelled)
            | (Some(Pending), Approved | Rejected | Cancelled)
            | (Some(Approved), Completed | Cancelled)
    )
}

/// Delivers commands the way a reactor does: an input that is too early
/// goes to the back of the queue (at most `retries` times); anything else
/// refused is dropped (dead-lettered). Returns every recorded event.
fn deliver(deliveries: Vec<Delivery>, retries: usize) -> Vec<OrderEvent> {
    let mut order = Order::default();
    let mut events = Vec::new();
    for event in order.decide(&place_command()).unwrap() {
        order.apply(&event);
        events.push(event);
    }
    let mut queue: VecDeque<(Delivery, usize)> = deliveries.into_iter().map(|d| (d, 0)).collect();
    let mut clock = 2_000;
    // Shipping, played here: it releases the shipment when asked to cancel,
    // unless the saga dispatches it (then dispatch won the race).
    let dispatches = queue
        .iter()
        .any(|(d, _)| matches!(d, Delivery::Input(SagaInput::ShipmentDispatched { .. })));
    while let Some((delivery, attempts)) = queue.pop_front() {
        clock += 1;
        let command = match &delivery {
            Delivery::Input(input) => react(input.clone(), clock),
            Delivery::Cancel => cancel("", clock),
        };
        match order.decide(&command) {
            Ok(decided) => {
                for event in decided {
                    let asks_shipping = matches!(event, OrderEvent::CancellationRequested(_))
                        && matches!(
                            order.status(),
                            Some(OrderStatus::Pending | OrderStatus::Approved)
                        );
                    order.apply(&event);
                    events.push(event);
                    if asks_shipping && !dispatches {
                        let released = SagaInput::ShipmentReleased {
                            shipment_id: "ship-1".into(),
                        };
                        queue.push_back((Delivery::Input(released), 0));
                    }
                }
            }
            Err(error) if error.is_retryable() && attempts < retries => {
                queue.push_back((delivery, attempts + 1));
            }
            Err(_) => {}
        }
    }
    events
}

fn assert_legal_life(events: &[OrderEvent]) -> Result<(), TestCaseError> {
    let mut status = None;
    for next in events.iter().filter_map(OrderEvent::status_entered) {
        prop_assert!(legal(status, next), "{status:?} -> {next:?} in {events:?}");
        status = Some(next);
    }
    let finals = events.iter().filter(|e| is_final_event(e)).count();
    prop_assert!(finals <= 1, "{finals} final events in {events:?}");
    if let Some(last) = events.iter().position(is_final_event) {
        prop_assert_eq!(last, events.len() - 1, "events after the final one");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One saga's inputs, each delivered one to three times, in any order:
    /// the order ends in exactly the scenario's final state, once.
    #[test]
    fn duplicated_and_reordered_saga_ends_in_exactly_one_final_state(
        (scenario, deliveries) in scenario().prop_flat_map(|scenario| {
            let (inputs, _) = scenario.deliveries();
            let copies = proptest::collection::vec(1..=3usize, inputs.len());
            (Just(scenario), copies.prop_map(move |copies| {
                inputs
                    .iter()
                    .zip(copies)
                    .flat_map(|(input, n)| std::iter::repeat_n(input.clone(), n))
                    .collect::<Vec<_>>()
            }).prop_shuffle())
        })
    ) {
        let (_, expected) = scenario.deliveries();
        let events = deliver(deliveries, 100);
        assert_legal_life(&events)?;
        let finals: Vec<OrderStatus> = events
            .iter()
            .filter(|e| is_final_event(e))
            .filter_map(OrderEvent::status_entered)
            .collect();
        prop_assert_eq!(finals, vec![expected], "{:?}", events);
        let steps = scenario.deliveries().0.len();
        // Placed plus at most one event per distinct input (a cancellation
        // that settles the saga early makes the later inputs moot), and the
        // cancellation's settling: nothing applied twice.
        if matches!(scenario, Scenario::Cancelled) {
            prop_assert!(events.len() <= steps + 2, "{:?}", events);
        } else {
            prop_assert_eq!(events.len(), steps + 1, "{:?}", events);
        }
        prop_assert_eq!(left_open(scenario, &events)?, kept_by(&events), "{:?}", events);
    }

    /// A cancellation arriving at any point of any saga (twice, even),
    /// among duplicated and reordered inputs: one final state, and the
    /// compensations balance what the saga took.
    #[test]
    fn a_cancellation_at_any_point_leaves_nothing_open(
        (scenario, deliveries) in scenario().prop_flat_map(|scenario| {
            let (mut inputs, _) = scenario.deliveries();
            inputs.retain(|d| !matches!(d, Delivery::Cancel));
            let copies = proptest::collection::vec(1..=2usize, inputs.len());
            (Just(scenario), copies.prop_map(move |copies| {
                inputs
                    .iter()
                    .zip(copies)
                    .flat_map(|(input, n)| std::iter::repeat_n(input.clone(), n))
                    .chain([Delivery::Cancel, Delivery::Cancel])
                    .collect::<Vec<_>>()
            }).prop_shuffle())
        })
    ) {
        let events = deliver(deliveries, 100);
        assert_legal_life(&events)?;
        let finals = events.iter().filter(|e| is_final_event(e)).count();
        prop_assert_eq!(finals, 1, "{:?}", events);
        prop_assert_eq!(left_open(scenario, &events)?, kept_by(&events), "{:?}", events);
    }

    /// Any mix of inputs, even contradictory ones: at most one final
    /// state, only legal transitions, and nothing after the end.
    #[test]
    fn arbitrary_saga_traffic_never_reaches_two_final_states(
        deliveries in proptest::collection::vec(any_delivery(), 0..30)
    ) {
        let events = deliver(deliveries, 5);
        assert_legal_life(&events)?;
    }
}
