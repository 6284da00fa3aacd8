//! From the aggregate and the read model to the API's `Order` message.

use stocklet_proto::stocklet::order::v1 as pb;

use crate::domain::{Order, OrderStatus, RejectionReason};
use crate::projections::OrderView;

/// The API's status enum.
pub fn status_to_pb(status: Option<OrderStatus>) -> pb::OrderStatus {
    match status {
        None => pb::OrderStatus::Unspecified,
        Some(OrderStatus::Processing) => pb::OrderStatus::Processing,
        Some(OrderStatus::Pending) => pb::OrderStatus::Pending,
        Some(OrderStatus::Approved) => pb::OrderStatus::Approved,
        Some(OrderStatus::Rejected) => pb::OrderStatus::Rejected,
        Some(OrderStatus::Completed) => pb::OrderStatus::Completed,
        Some(OrderStatus::Cancelled) => pb::OrderStatus::Cancelled,
    }
}

fn reason_to_pb(reason: Option<RejectionReason>) -> pb::RejectionReason {
    match reason {
        None => pb::RejectionReason::Unspecified,
        Some(RejectionReason::ProductUnavailable) => pb::RejectionReason::ProductUnavailable,
        Some(RejectionReason::InsufficientStock) => pb::RejectionReason::InsufficientStock,
        Some(RejectionReason::ShippingUnavailable) => pb::RejectionReason::ShippingUnavailable,
        Some(RejectionReason::InsufficientBalance) => pb::RejectionReason::InsufficientBalance,
        Some(RejectionReason::PaymentDeclined) => pb::RejectionReason::PaymentDeclined,
        Some(RejectionReason::TotalTooLarge) => pb::RejectionReason::TotalTooLarge,
    }
}

/// An order as its aggregate holds it (the answer to a command).
pub fn order_to_pb(order: &Order) -> pb::Order {
    let history = order.history();
    pb::Order {
        id: order.id().to_owned(),
        customer_id: order.customer_id().to_owned(),
        status: status_to_pb(order.status()).into(),
        items: order
            .lines()
            .iter()
            .map(|line| pb::OrderItem {
                product_id: line.product_id.to_string(),
                quantity: line.quantity.get(),
                unit_price_cents: line.unit_price.get(),
            })
            .collect(),
        items_price_cents: order.items_price_cents(),
        shipping_fee_cents: order.shipping_fee_cents(),
        total_cents: order.total_cents(),
        reservation_id: order.reservation_id().to_owned(),
        shipment_id: order.shipment_id().to_owned(),
        transaction_id: order.transaction_id().to_owned(),
        rejection: order.rejection().map(|rejection| pb::Rejection {
            reason: reason_to_pb(rejection.reason).into(),
            detail: rejection.detail.clone(),
            product_ids: rejection.product_ids.clone(),
        }),
        cancellation_reason: order.cancellation_reason().to_owned(),
        cancellation_requested: order.cancellation_requested(),
        status_history: history
            .iter()
            .map(|change| pb::StatusChange {
                status: status_to_pb(Some(change.status)).into(),
                at_ms: change.at_ms,
            })
            .collect(),
        created_at_ms: history.first().map_or(0, |c| c.at_ms),
        updated_at_ms: history.last().map_or(0, |c| c.at_ms),
    }
}

/// An order as the read model shows it (the answer to a query).
pub fn view_to_pb(view: OrderView) -> pb::Order {
    let status = view.status();
    let OrderView { order, items } = view;
    pb::Order {
        id: order.id,
        customer_id: order.customer_id,
        status: status_to_pb(status).into(),
        items: items
            .into_iter()
            .map(|item| pb::OrderItem {
                product_id: item.product_id,
                quantity: item.quantity,
                unit_price_cents: item.unit_price_cents,
            })
            .collect(),
        items_price_cents: order.items_price_cents,
        shipping_fee_cents: order.shipping_fee_cents,
        total_cents: order.total_cents,
        reservation_id: order.reservation_id,
        shipment_id: order.shipment_id,
        transaction_id: order.transaction_id,
        rejection: order.rejection_reason.map(|reason| pb::Rejection {
            reason: reason_to_pb(RejectionReason::parse(&reason)).into(),
            detail: order.rejection_detail,
            product_ids: order.rejection_product_ids,
        }),
        cancellation_reason: order.cancellation_reason,
        cancellation_requested: order.cancellation_requested,
        status_history: order
            .history_statuses
            .iter()
            .zip(order.history_at_ms)
            .map(|(status, at_ms)| pb::StatusChange {
                status: status_to_pb(OrderStatus::parse(status)).into(),
                at_ms,
            })
            .collect(),
        created_at_ms: order.created_at_ms,
        updated_at_ms: order.updated_at_ms,
    }
}
