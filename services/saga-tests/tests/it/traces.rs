//! One order, one trace: the place-order saga's spans in all five services
//! share the trace id of the caller's span, and each handled event's span is
//! the child of the span that wrote the event.
//!
//! The services run in this process, so one in-memory exporter sees every
//! span; services are told apart by the spans' attributes (the consumer of
//! a handled event, the aggregate type of a command).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::EventStore;
use es_core::envelope::parse_traceparent;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::OrderStatus;
use stocklet_service_kit::streams;
use stocklet_service_kit::telemetry;
use tracing::Instrument;

use crate::app::{Saga, as_user};

/// Keeps every exported span in memory.
#[derive(Clone, Debug, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[tokio::test]
async fn one_order_is_one_trace_across_all_five_services() {
    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    assert!(
        telemetry::install(&provider),
        "another subscriber was installed first: run this test in its own process (cargo nextest)"
    );

    let saga = Saga::spawn().await;
    let widget = saga.product(1_000, 10).await;
    let customer = saga.customer(10_000).await;

    // The caller (the gateway, in production) opens the trace and sends its
    // context in the gRPC metadata.
    let root = tracing::info_span!("test place order");
    let mut request = as_user(
        &customer.identity,
        order::PlaceOrderRequest {
            items: [(widget.clone(), 2)].into(),
            cart: None,
        },
    );
    root.in_scope(|| telemetry::inject_trace(request.metadata_mut()));
    let traceparent = request
        .metadata()
        .get("traceparent")
        .expect("the caller's span context is in the metadata")
        .to_str()
        .unwrap()
        .to_owned();
    let caller = parse_traceparent(&traceparent, None).unwrap();
    let trace_id = caller.trace_id();
    let placed = saga
        .orders
        .clone()
        .place_order(request)
        .instrument(root.clone())
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    drop(root);
    saga.await_status(&customer, &placed.id, OrderStatus::Approved)
        .await;
    saga.await_reactors_idle().await;
    // Let the last handlers' spans close.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let spans = spans.0.lock().unwrap().clone();
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace_id)
        .collect();
    let by_id: HashMap<_, _> = in_trace
        .iter()
        .map(|s| (s.span_context.span_id(), *s))
        .collect();

    // The first hop: the order service's request span is the caller's
    // child, and the order command runs inside it.
    let request_span = in_trace
        .iter()
        .find(|s| attribute(s, "rpc").is_some_and(|rpc| rpc.ends_with("/PlaceOrder")))
        .expect("a span for the PlaceOrder call, in the caller's trace");
    assert_eq!(request_span.parent_span_id, caller.span_id());
    assert!(
        in_trace.iter().any(|s| {
            attribute(s, "aggregate_type").as_deref() == Some("order")
                && s.parent_span_id == request_span.span_context.span_id()
        }),
        "the order command is a child of the request span"
    );

    // Every service of the saga took part in this one trace.
    let handled_by = |consumers: &[&str]| {
        in_trace.iter().any(|s| {
            attribute(s, "kind").as_deref() == Some("react")
                && attribute(s, "consumer").is_some_and(|c| consumers.contains(&c.as_str()))
        })
    };
    let names = |list: &[(streams::Stream, &'static str)]| -> Vec<&'static str> {
        list.iter().map(|(_, name)| *name).collect()
    };
    assert!(handled_by(&[stocklet_product::ORDER_CONSUMER]), "product");
    assert!(
        handled_by(&names(&stocklet_warehouse::SAGA_CONSUMERS)),
        "warehouse"
    );
    assert!(
        handled_by(&names(&stocklet_shipping::SAGA_CONSUMERS)),
        "shipping"
    );
    assert!(
        handled_by(&names(&stocklet_payment::SAGA_CONSUMERS)),
        "payment"
    );
    assert!(handled_by(&names(&stocklet_order::SAGA_CONSUMERS)), "order");
    for aggregate in ["order", "quote", "shipment", "balance"] {
        assert!(
            in_trace
                .iter()
                .any(|s| attribute(s, "aggregate_type").as_deref() == Some(aggregate)),
            "a {aggregate} command in the trace"
        );
    }

    // Parent links: each saga event names, in its traceparent header, a span
    // of this trace (the one that wrote it), and every span that handled the
    // event is that span's child.
    let saga_aggregates = [
        (streams::ORDER, "order", placed.id.as_str()),
        (streams::PRODUCT, "quote", placed.id.as_str()),
        (streams::WAREHOUSE, "reservation", placed.id.as_str()),
        (streams::SHIPPING, "shipment", placed.id.as_str()),
        (streams::PAYMENT, "balance", customer.id.as_str()),
    ];
    let mut checked = HashSet::new();
    for (definition, aggregate_type, id) in saga_aggregates {
        let stream = definition.stream_ref();
        let subject = stream.subject(aggregate_type, id);
        let events = saga.store.load(&stream, &subject, 0).await.unwrap();
        let mut in_this_trace = 0;
        for event in events {
            let Some(writer) = event
                .meta
                .traceparent
                .as_deref()
                .and_then(|parent| parse_traceparent(parent, None))
            else {
                continue;
            };
            if writer.trace_id() != trace_id {
                continue;
            }
            in_this_trace += 1;
            assert!(
                by_id.contains_key(&writer.span_id()),
                "the span that wrote {} ({}) was exported",
                event.raw.event_type,
                event.meta.event_id
            );
            for handler in in_trace.iter().filter(|s| {
                attribute(s, "event_id").as_deref() == Some(event.meta.event_id.as_str())
            }) {
                assert_eq!(
                    handler.parent_span_id,
                    writer.span_id(),
                    "{} handled by {:?}: its parent is the writer",
                    event.raw.event_type,
                    attribute(handler, "consumer")
                );
                checked.insert(handler.span_context.span_id());
            }
        }
        assert!(
            in_this_trace > 0,
            "{aggregate_type} events carry the order's trace"
        );
    }
    assert!(
        checked.len() >= 8,
        "the saga's handled events were checked ({} spans)",
        checked.len()
    );

    // No orphans: every span of the trace but the caller's hangs off another.
    for span in in_trace
        .iter()
        .filter(|s| s.span_context.span_id() != caller.span_id())
    {
        assert!(
            span.parent_span_id == caller.span_id() || by_id.contains_key(&span.parent_span_id),
            "span {} has a parent outside the trace",
            span.name
        );
    }
    saga.stop().await;
    drop(provider);
}
