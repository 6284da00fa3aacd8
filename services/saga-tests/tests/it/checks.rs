//! The end-of-run checks the invariant test and the fault test share: what
//! must hold of the streams and read models once every order has settled,
//! whatever happened on the way.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::OrderStatus;
use stocklet_proto::stocklet::shipping::v1::ShipmentStatus;
use stocklet_service_kit::streams;

use crate::app::{Customer, SETTLE_AFTER_RESTART, Saga, drop_read_models};

impl Saga {
    /// No order was charged twice, only approved or cancelled orders were
    /// charged, and only cancelled ones refunded, once each: straight from
    /// the payment stream. `finals` holds every order as it ended.
    pub async fn assert_charged_and_refunded_once(
        &self,
        customers: &[Customer],
        finals: &HashMap<String, order::Order>,
    ) {
        for customer in customers {
            let history = self
                .history(streams::PAYMENT, "balance", &customer.id)
                .await;
            let per_order = |event: &str| {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for (event_type, correlation) in &history {
                    if event_type == event {
                        *counts
                            .entry(correlation.clone().unwrap_or_default())
                            .or_default() += 1;
                    }
                }
                counts
            };
            for (order_id, captures) in per_order("stocklet.events.v1.PaymentCaptured") {
                assert_eq!(captures, 1, "order {order_id} was charged {captures} times");
                let status = finals[&order_id].status();
                assert!(
                    matches!(status, OrderStatus::Approved | OrderStatus::Cancelled),
                    "order {order_id} was charged but is {status:?}"
                );
            }
            for (order_id, refunds) in per_order("stocklet.events.v1.TransactionReversed") {
                assert_eq!(refunds, 1, "order {order_id} was refunded {refunds} times");
                assert_eq!(finals[&order_id].status(), OrderStatus::Cancelled);
            }
        }
    }

    /// No shipment stays allocated for an order that did not go through.
    pub async fn assert_shipments_follow_their_orders(
        &self,
        finals: &HashMap<String, order::Order>,
    ) {
        for settled in finals.values() {
            if settled.shipment_id.is_empty() {
                continue;
            }
            let expected = if settled.status() == OrderStatus::Approved {
                ShipmentStatus::Allocated
            } else {
                ShipmentStatus::Released
            };
            self.await_shipment(&settled.shipment_id, expected).await;
        }
    }

    /// Every read model equals a fresh rebuild from the streams: the
    /// services are stopped, every read model dropped, and the services
    /// started again. Returns them running.
    pub async fn assert_read_models_rebuild(self) -> Saga {
        let before = self.read_models().await;
        let (nats, db) = self.shut_down().await;
        drop_read_models(&db).await;
        let saga = Saga::spawn_on(nats, db).await;
        let deadline = Instant::now() + SETTLE_AFTER_RESTART;
        loop {
            let rebuilt = saga.read_models().await;
            if rebuilt == before {
                return saga;
            }
            if Instant::now() >= deadline {
                for (table, rows) in &before {
                    let again = rebuilt.get(table).cloned().unwrap_or_default();
                    let lost: Vec<&String> =
                        rows.iter().filter(|r| !again.contains(r)).take(3).collect();
                    let extra: Vec<&String> =
                        again.iter().filter(|r| !rows.contains(r)).take(3).collect();
                    assert!(
                        lost.is_empty() && extra.is_empty(),
                        "{table} differs after a rebuild: lost {lost:#?}, extra {extra:#?}"
                    );
                }
                panic!("the rebuilt read models never matched");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
