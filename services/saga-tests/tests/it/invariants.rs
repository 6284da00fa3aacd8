//! The invariant test: many orders from many customers over scarce stock
//! and tight balances, some cancelled while their saga runs and some once
//! approved, with a restart of every service mid-run, a full redelivery of
//! the warehouse's and payment's source streams, and one more service
//! restarted. Afterwards every order has settled; stock and money are
//! conserved; nothing was charged or refunded twice; no shipment stays
//! allocated for an order that did not go through; and every read model
//! equals a fresh rebuild from the streams.

use std::collections::HashMap;

use futures::future::join_all;
use stocklet_proto::stocklet::order::v1 as order;
use stocklet_proto::stocklet::order::v1::OrderStatus;
use tonic::Code;

use crate::app::{Customer, SETTLE_AFTER_RESTART, SHIPPING_FEE, Saga, Service};

const PRODUCTS: usize = 10;
const CUSTOMERS: usize = 20;
const ORDERS: usize = 200;
const UNITS: i64 = 15;
const PRICE: i64 = 300;
const CREDIT: i64 = 5_000;

/// A tiny deterministic generator, so a failure replays identically.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap() % n
    }
}

/// One order to place: its customer and its lines.
struct Plan {
    customer: usize,
    lines: Vec<(usize, i64)>,
}

fn plans() -> Vec<Plan> {
    let mut rng = Lcg(7);
    (0..ORDERS)
        .map(|_| {
            let customer = rng.below(CUSTOMERS);
            let mut lines: Vec<(usize, i64)> = Vec::new();
            for _ in 0..=rng.below(3) {
                let product = rng.below(PRODUCTS);
                if lines.iter().all(|(p, _)| *p != product) {
                    lines.push((product, i64::try_from(rng.below(3) + 1).unwrap()));
                }
            }
            Plan { customer, lines }
        })
        .collect()
}

/// What the test did to an order besides placing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meddling {
    None,
    /// Cancelled right after placing, while its saga runs.
    CancelInFlight,
    /// Cancelled once approved.
    CancelApproved,
}

fn meddling(index: usize) -> Meddling {
    match index % 10 {
        3 => Meddling::CancelInFlight,
        7 => Meddling::CancelApproved,
        _ => Meddling::None,
    }
}

async fn place_all(
    saga: &Saga,
    customers: &[Customer],
    products: &[String],
    plans: &[(usize, &Plan)],
) -> Vec<order::Order> {
    join_all(plans.iter().map(|(index, plan)| {
        let lines: Vec<(&str, i64)> = plan
            .lines
            .iter()
            .map(|(p, q)| (products[*p].as_str(), *q))
            .collect();
        let customer = &customers[plan.customer];
        async move {
            let placed = saga.place(customer, &lines).await;
            if meddling(*index) == Meddling::CancelInFlight {
                saga.try_cancel(customer, &placed.id).await;
            }
            placed
        }
    }))
    .await
}

impl Saga {
    /// Asks to cancel; a saga that settled as REJECTED first refuses.
    async fn try_cancel(&self, customer: &Customer, order_id: &str) {
        if let Err(status) = self.cancel(customer, order_id, "changed my mind").await {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        }
    }
}

#[tokio::test]
async fn stock_and_money_are_conserved_through_restarts_redeliveries_and_cancellations() {
    let saga = Saga::spawn().await;
    let mut products = Vec::new();
    for _ in 0..PRODUCTS {
        products.push(saga.product(PRICE, UNITS).await);
    }
    let mut customers = Vec::new();
    for _ in 0..CUSTOMERS {
        customers.push(saga.customer(CREDIT).await);
    }
    let plans = plans();
    let indexed: Vec<(usize, &Plan)> = plans.iter().enumerate().collect();
    let (first, second) = indexed.split_at(ORDERS / 2);

    let mut placed = place_all(&saga, &customers, &products, first).await;
    // Stop everything mid-run; forget the warehouse's and payment's progress
    // so that they receive every saga event again.
    let (nats, db) = saga.shut_down().await;
    let jetstream = nats.jetstream().await;
    let forgotten = stocklet_warehouse::SAGA_CONSUMERS
        .into_iter()
        .chain(stocklet_payment::SAGA_CONSUMERS);
    for (stream, consumer) in forgotten {
        jetstream
            .get_stream(stream.name)
            .await
            .unwrap()
            .delete_consumer(consumer)
            .await
            .unwrap();
    }
    let mut saga = Saga::spawn_on(nats, db).await;
    // Restart one more service while the second half's sagas run.
    placed.extend(place_all(&saga, &customers, &products, second).await);
    saga.stop_service(Service::Shipping).await;
    saga.start_service(Service::Shipping).await;

    let mut sold: HashMap<usize, i64> = HashMap::new();
    let mut spent = vec![0i64; CUSTOMERS];
    let mut finals: HashMap<String, order::Order> = HashMap::new();
    let (mut approved, mut rejected, mut cancelled) = (0, 0, 0);
    for (index, (plan, order)) in plans.iter().zip(&placed).enumerate() {
        let customer = &customers[plan.customer];
        let mut settled = saga
            .await_settled_within(customer, &order.id, SETTLE_AFTER_RESTART)
            .await;
        if meddling(index) == Meddling::CancelApproved && settled.status() == OrderStatus::Approved
        {
            saga.try_cancel(customer, &order.id).await;
            settled = saga
                .await_status(customer, &order.id, OrderStatus::Cancelled)
                .await;
        }
        match settled.status() {
            OrderStatus::Approved => {
                approved += 1;
                for (product, quantity) in &plan.lines {
                    *sold.entry(*product).or_default() += quantity;
                }
                let items: i64 = plan.lines.iter().map(|(_, q)| q * PRICE).sum();
                assert_eq!(settled.total_cents, items + SHIPPING_FEE);
                spent[plan.customer] += settled.total_cents;
            }
            OrderStatus::Rejected => rejected += 1,
            OrderStatus::Cancelled => {
                assert_ne!(meddling(index), Meddling::None, "{settled:?}");
                cancelled += 1;
            }
            other => panic!("order {} ended {other:?}", order.id),
        }
        finals.insert(settled.id.clone(), settled);
    }
    saga.await_reactors_idle().await;

    // Stock: what is on hand is what was added minus what was sold; nothing
    // stays reserved, nothing is negative.
    for (index, product) in products.iter().enumerate() {
        let sold = sold.get(&index).copied().unwrap_or(0);
        assert!(sold <= UNITS, "product {index} oversold: {sold}");
        saga.await_stock(product, (UNITS - sold, 0)).await;
    }
    // Money: every balance is its credit minus its approved orders, and
    // none is negative.
    for (customer, spent) in customers.iter().zip(&spent) {
        assert!(*spent <= CREDIT);
        saga.await_balance(customer, CREDIT - spent).await;
    }
    saga.assert_charged_and_refunded_once(&customers, &finals)
        .await;
    saga.assert_shipments_follow_their_orders(&finals).await;
    // Scarcity really bit, cancellations happened both ways, and the system
    // still sold what it could.
    assert!(
        approved > 0 && rejected > 0 && cancelled > 0,
        "{approved} approved, {rejected} rejected, {cancelled} cancelled"
    );
    saga.assert_no_dead_letters().await;

    // Every read model equals a fresh rebuild from the streams.
    assert!(
        saga.read_models()
            .await
            .values()
            .any(|rows| rows.len() >= ORDERS)
    );
    let saga = saga.assert_read_models_rebuild().await;
    saga.stop().await;
}
