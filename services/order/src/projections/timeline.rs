//! The saga timeline: every event of every order's saga, whichever service
//! wrote it, found through its correlation id (the order id).
//!
//! The saga is a choreography, so no service holds its whole story; this
//! read model gathers it for ViewOrderTimeline (what a UI draws) and for
//! ListStuckSagas (how far each running saga got, and when it last moved).
//! There is one [`Timeline`] projection per source stream (`ORDER`,
//! `PRODUCT`, `WAREHOUSE`, `SHIPPING`, `PAYMENT`), each with its own durable
//! consumer and checkpoint, all writing `saga_events`. Events without a
//! correlation id (an admin adding stock, a price change) belong to no saga
//! and are skipped. Resetting one deletes only its own service's rows, so
//! each can be rebuilt on its own.
//!
//! Summaries are rendered from the event's protobuf descriptor, so a new
//! event type needs no code here.

use es_core::projection::{Projection, ProjectionError};
use es_core::{RawEvent, Recorded};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, Value};
use sqlx::{PgConnection, PgPool};

use crate::domain::OrderStatus;

/// Longest summary kept, in characters.
const MAX_SUMMARY: usize = 240;

/// Fields left out of summaries: the timeline already shows them.
const OMITTED_FIELDS: [&str; 3] = ["order_id", "customer_id", "occurred_at_ms"];

/// Projects one stream's saga events into `saga_events`.
#[derive(Clone, Debug)]
pub struct Timeline {
    name: String,
    service: String,
    descriptors: DescriptorPool,
}

impl Timeline {
    /// The timeline projection of `stream` (e.g. `WAREHOUSE`), whose events
    /// are shown as coming from the service of the same name.
    pub fn of_stream(stream: &str, descriptors: DescriptorPool) -> Self {
        let service = stream.to_ascii_lowercase();
        Self {
            name: format!("order-timeline-{service}"),
            service,
            descriptors,
        }
    }
}

impl Projection for Timeline {
    type Event = RawEvent;

    fn name(&self) -> &str {
        &self.name
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Recorded<RawEvent>],
    ) -> Result<(), ProjectionError> {
        let mut rows = Rows::default();
        for stored in events {
            let Some(order_id) = stored.meta.correlation_id.as_deref() else {
                continue;
            };
            if order_id.is_empty() {
                continue;
            }
            rows.event_ids.push(stored.meta.event_id.clone());
            rows.order_ids.push(order_id.to_owned());
            rows.event_types.push(stored.event.event_type.clone());
            rows.occurred_at_ms.push(stored.meta.timestamp_ms);
            rows.summaries.push(summarize(
                &self.descriptors,
                &stored.event.event_type,
                &stored.event.payload,
            ));
        }
        if rows.event_ids.is_empty() {
            return Ok(());
        }
        // One statement per batch; a redelivered event is already there.
        sqlx::query(
            "INSERT INTO saga_events (event_id, order_id, service, event_type, occurred_at_ms, summary)
             SELECT e.event_id, e.order_id, $3, e.event_type, e.occurred_at_ms, e.summary
             FROM UNNEST($1::text[], $2::text[], $4::text[], $5::bigint[], $6::text[])
                  AS e(event_id, order_id, event_type, occurred_at_ms, summary)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&rows.event_ids)
        .bind(&rows.order_ids)
        .bind(&self.service)
        .bind(&rows.event_types)
        .bind(&rows.occurred_at_ms)
        .bind(&rows.summaries)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM saga_events WHERE service = $1")
            .bind(&self.service)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// The columns of one batch, for one `UNNEST` insert.
#[derive(Default)]
struct Rows {
    event_ids: Vec<String>,
    order_ids: Vec<String>,
    event_types: Vec<String>,
    occurred_at_ms: Vec<i64>,
    summaries: Vec<String>,
}

/// A one-line rendering of an event's payload: its set fields as
/// `name=value`, nested messages in braces, lists in brackets, enums by
/// name, cut at [`MAX_SUMMARY`] characters. Unknown types and undecodable
/// payloads are said to be so rather than failing the projection.
pub fn summarize(descriptors: &DescriptorPool, event_type: &str, payload: &[u8]) -> String {
    let Some(descriptor) = descriptors.get_message_by_name(event_type) else {
        return "(unknown event type)".to_owned();
    };
    let Ok(message) = DynamicMessage::decode(descriptor, payload) else {
        return "(undecodable payload)".to_owned();
    };
    let mut summary = fields(&message, &OMITTED_FIELDS);
    if summary.chars().count() > MAX_SUMMARY {
        summary = summary.chars().take(MAX_SUMMARY - 1).collect();
        summary.push('…');
    }
    summary
}

fn fields(message: &DynamicMessage, omitted: &[&str]) -> String {
    message
        .fields()
        .filter(|(field, _)| !omitted.contains(&field.name()))
        .map(|(field, value)| format!("{}={}", field.name(), show(&field.kind(), value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(kind: &Kind, value: &Value) -> String {
    match value {
        Value::Bool(v) => v.to_string(),
        Value::I32(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::F32(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        Value::String(v) => v.clone(),
        Value::Bytes(v) => format!("<{} bytes>", v.len()),
        Value::EnumNumber(number) => kind
            .as_enum()
            .and_then(|e| e.get_value(*number))
            .map_or_else(|| number.to_string(), |v| v.name().to_owned()),
        Value::Message(nested) => {
            format!("{{{}}}", fields(nested, &[]))
        }
        Value::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|item| show(kind, item))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Map(entries) => format!("{{{} entries}}", entries.len()),
    }
}

/// One entry of an order's timeline.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineRow {
    /// The event's id.
    pub event_id: String,
    /// The service that wrote it.
    pub service: String,
    /// Its full protobuf name.
    pub event_type: String,
    /// When it was committed, Unix milliseconds.
    pub occurred_at_ms: i64,
    /// [`summarize`]d payload.
    pub summary: String,
}

/// Every recorded event of one order's saga, oldest first.
pub async fn timeline(pool: &PgPool, order_id: &str) -> Result<Vec<TimelineRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT event_id, service, event_type, occurred_at_ms, summary FROM saga_events
         WHERE order_id = $1 ORDER BY occurred_at_ms, event_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// A running saga that has not moved since `last_progress_at_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckRow {
    /// The order.
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// PROCESSING or PENDING.
    pub status: Option<OrderStatus>,
    /// The step it waits on.
    pub waiting_on: SagaStep,
    /// The service expected to take that step.
    pub waiting_on_service: &'static str,
    /// The type of the saga's latest event.
    pub last_event_type: String,
    /// When the saga last moved, Unix milliseconds.
    pub last_progress_at_ms: i64,
}

impl StuckRow {
    /// The keyset cursor: longest stalled first, then by order id.
    pub fn sort_key(&self) -> String {
        format!("{:020}:{}", self.last_progress_at_ms, self.order_id)
    }

    /// Reads a [`sort_key`](Self::sort_key) back.
    pub fn parse_sort_key(key: &str) -> Option<(i64, String)> {
        let (at, id) = key.split_once(':')?;
        Some((at.parse().ok()?, id.to_owned()))
    }
}

/// A step of the place-order saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaStep {
    /// The product service's price quote.
    PriceQuote,
    /// The warehouse's stock reservation.
    StockReservation,
    /// Shipping's shipment allocation.
    ShipmentAllocation,
    /// Payment's debit.
    Payment,
}

/// Which step a running saga waits on, and which service should take it,
/// from the event types it has recorded so far. An outcome the order has
/// not recorded yet (it is still PENDING) waits on the order service.
pub fn waiting_on<'a>(event_types: impl IntoIterator<Item = &'a str>) -> (SagaStep, &'static str) {
    let seen: Vec<&str> = event_types
        .into_iter()
        .filter_map(|t| t.strip_prefix("stocklet.events.v1."))
        .collect();
    let has = |name: &str| seen.contains(&name);
    if has("PaymentCaptured") || has("PaymentFailed") {
        (SagaStep::Payment, "order")
    } else if has("ShipmentAllocationFailed") {
        (SagaStep::ShipmentAllocation, "order")
    } else if has("ShipmentAllocated") {
        (SagaStep::Payment, "payment")
    } else if has("StockReservationFailed") {
        (SagaStep::StockReservation, "order")
    } else if has("StockReserved") {
        (SagaStep::ShipmentAllocation, "shipping")
    } else if has("OrderPriced") {
        (SagaStep::StockReservation, "warehouse")
    } else if has("PriceQuoted") || has("PriceQuoteFailed") {
        (SagaStep::PriceQuote, "order")
    } else {
        (SagaStep::PriceQuote, "product")
    }
}

/// Up to `limit` running sagas whose latest event is older than
/// `cutoff_ms`, longest stalled first, after the cursor `after`.
pub async fn stuck(
    pool: &PgPool,
    cutoff_ms: i64,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<StuckRow>, sqlx::Error> {
    let (after_ms, after_id) = after.map_or((None, None), |(ms, id)| (Some(ms), Some(id)));
    let rows: Vec<(String, String, String, i64, Vec<String>, String)> = sqlx::query_as(
        "SELECT o.id, o.customer_id, o.status, s.last_at, s.types, s.last_type
         FROM orders o
         CROSS JOIN LATERAL (
             SELECT COALESCE(MAX(e.occurred_at_ms), o.updated_at_ms) AS last_at,
                    COALESCE(ARRAY_AGG(e.event_type) FILTER (WHERE e.event_type IS NOT NULL), '{}') AS types,
                    COALESCE((ARRAY_AGG(e.event_type ORDER BY e.occurred_at_ms DESC, e.event_id DESC))[1], '') AS last_type
             FROM saga_events e WHERE e.order_id = o.id
         ) s
         WHERE o.status IN ('PROCESSING', 'PENDING')
           AND s.last_at < $1
           AND ($2::bigint IS NULL OR (s.last_at, o.id) > ($2, $3))
         ORDER BY s.last_at, o.id
         LIMIT $4",
    )
    .bind(cutoff_ms)
    .bind(after_ms)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(order_id, customer_id, status, last_at, types, last_type)| {
                let (waiting_on, waiting_on_service) = waiting_on(types.iter().map(String::as_str));
                StuckRow {
                    order_id,
                    customer_id,
                    status: OrderStatus::parse(&status),
                    waiting_on,
                    waiting_on_service,
                    last_event_type: last_type,
                    last_progress_at_ms: last_at,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use stocklet_proto::stocklet::events::v1 as pb;

    use super::*;

    fn descriptors() -> DescriptorPool {
        DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap()
    }

    #[test]
    fn a_summary_shows_the_set_fields_nested_and_by_enum_name() {
        let event = pb::OrderRejected {
            order_id: "o-1".into(),
            customer_id: "alice".into(),
            reason: pb::OrderRejectionReason::InsufficientStock.into(),
            detail: "short".into(),
            product_ids: vec!["p-1".into(), "p-2".into()],
            ..Default::default()
        };
        let summary = summarize(
            &descriptors(),
            "stocklet.events.v1.OrderRejected",
            &event.encode_to_vec(),
        );
        assert!(
            summary.contains("ORDER_REJECTION_REASON_INSUFFICIENT_STOCK")
                || summary.contains("INSUFFICIENT_STOCK"),
            "{summary}"
        );
        assert!(summary.contains("detail=short"), "{summary}");
        assert!(summary.contains("product_ids=[p-1, p-2]"), "{summary}");
        assert!(
            !summary.contains("o-1") && !summary.contains("alice"),
            "{summary}"
        );

        let priced = pb::OrderPriced {
            lines: vec![pb::PricedOrderLine {
                product_id: "p-1".into(),
                quantity: 2,
                unit_price_cents: 1_000,
            }],
            total_cents: 2_499,
            ..Default::default()
        };
        let summary = summarize(
            &descriptors(),
            "stocklet.events.v1.OrderPriced",
            &priced.encode_to_vec(),
        );
        assert!(
            summary.contains("lines=[{product_id=p-1 quantity=2 unit_price_cents=1000}]"),
            "{summary}"
        );
        assert!(summary.contains("total_cents=2499"), "{summary}");
    }

    #[test]
    fn a_summary_is_bounded_and_never_fails() {
        let long = pb::OrderRejected {
            detail: "x".repeat(1_000),
            ..Default::default()
        };
        let summary = summarize(
            &descriptors(),
            "stocklet.events.v1.OrderRejected",
            &long.encode_to_vec(),
        );
        assert_eq!(summary.chars().count(), MAX_SUMMARY);
        assert!(summary.ends_with('…'));
        assert_eq!(
            summarize(&descriptors(), "stocklet.events.v1.Nope", b""),
            "(unknown event type)"
        );
        assert_eq!(
            summarize(
                &descriptors(),
                "stocklet.events.v1.OrderRejected",
                &[0xff; 3]
            ),
            "(undecodable payload)"
        );
    }

    #[test]
    fn the_step_waited_on_follows_the_furthest_event() {
        let types = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .map(|n| format!("stocklet.events.v1.{n}"))
                .collect()
        };
        let cases = [
            (types(&["OrderPlaced"]), (SagaStep::PriceQuote, "product")),
            (
                types(&["OrderPlaced", "PriceQuoted"]),
                (SagaStep::PriceQuote, "order"),
            ),
            (
                types(&["OrderPlaced", "PriceQuoted", "OrderPriced"]),
                (SagaStep::StockReservation, "warehouse"),
            ),
            (
                types(&["OrderPriced", "StockReserved"]),
                (SagaStep::ShipmentAllocation, "shipping"),
            ),
            (
                types(&["StockReserved", "ShipmentAllocated"]),
                (SagaStep::Payment, "payment"),
            ),
            (
                types(&["ShipmentAllocated", "PaymentCaptured"]),
                (SagaStep::Payment, "order"),
            ),
            (
                types(&["OrderPriced", "StockReservationFailed"]),
                (SagaStep::StockReservation, "order"),
            ),
        ];
        for (seen, expected) in cases {
            assert_eq!(
                waiting_on(seen.iter().map(String::as_str)),
                expected,
                "{seen:?}"
            );
        }
    }

    #[test]
    fn the_cursor_round_trips() {
        let row = StuckRow {
            order_id: "0192-a".into(),
            customer_id: "c".into(),
            status: Some(OrderStatus::Pending),
            waiting_on: SagaStep::Payment,
            waiting_on_service: "payment",
            last_event_type: String::new(),
            last_progress_at_ms: 1_700_000_000_000,
        };
        assert_eq!(
            StuckRow::parse_sort_key(&row.sort_key()),
            Some((1_700_000_000_000, "0192-a".to_owned()))
        );
        assert_eq!(StuckRow::parse_sort_key("nope"), None);
    }
}
