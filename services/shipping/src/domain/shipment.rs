//! The `Shipment` aggregate: one order's shipment, from allocation to
//! dispatch or release.
//!
//! Why it is keyed by the order id: allocation is a reaction to the saga,
//! and a redelivered `StockReserved` must land on the same aggregate to be
//! recognised, so the key must come from the order, not from a fresh
//! shipment id. The shipment id is made once, at allocation, and kept in
//! the events; the read model maps it back to the order.
//!
//! A shipment carries at most [`Capacity`] units. An order above that gets
//! `ShipmentAllocationFailed`, which is recorded too, so a redelivery
//! decides the same outcome. Every saga transition is idempotent.
//!
//! # The point of no return
//!
//! Dispatch cannot be undone, so this aggregate decides every race with it.
//! A shipment may leave only once its order is approved (`ShipmentPaid`,
//! from `OrderApproved`): an order cancelled before approval never becomes
//! dispatchable. A cancellation of an approved order is a request that
//! reaches the shipment (`OrderCancellationRequested`): before dispatch it
//! releases the shipment (`ShipmentReleased`), and the order, hearing
//! that, is cancelled and compensated; after dispatch it is refused
//! (`ShipmentCancellationRefused`) and the order completes. Whichever of
//! dispatch and cancellation reaches the shipment first wins, and the other
//! is refused.

use stocklet_proto::stocklet::events::v1 as pb;

use stocklet_values::{Cents, CustomerId, OrderId, ProductId, Quantity};

/// Default units a shipment can carry (`STOCKLET_SHIPMENT_CAPACITY`).
pub const DEFAULT_CAPACITY: i64 = 50;

/// The most units one shipment carries: more than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Capacity(i64);

/// Why a number is not a [`Capacity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a shipment capacity must be more than zero")]
pub struct InvalidCapacity;

impl Capacity {
    /// Parses a capacity.
    pub fn parse(units: i64) -> Result<Self, InvalidCapacity> {
        if units > 0 {
            Ok(Self(units))
        } else {
            Err(InvalidCapacity)
        }
    }

    /// Units a shipment can carry.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl Default for Capacity {
    fn default() -> Self {
        Self(DEFAULT_CAPACITY)
    }
}

impl std::str::FromStr for Capacity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let units: i64 = s.trim().parse().map_err(|e| format!("{e}"))?;
        Self::parse(units).map_err(|e| e.to_string())
    }
}

es_core::domain_events! {
    /// Everything that happens to an order's shipment.
    pub enum ShipmentEvent {
        Allocated(pb::ShipmentAllocated),
        AllocationFailed(pb::ShipmentAllocationFailed),
        Released(pb::ShipmentReleased),
        Paid(pb::ShipmentPaid),
        CancellationRefused(pb::ShipmentCancellationRefused),
        Dispatched(pb::ShipmentDispatched),
    }
}

/// One product line of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestLine {
    /// The product's id.
    pub product_id: ProductId,
    /// Units to ship.
    pub quantity: Quantity,
}

/// What can be asked of a shipment. `at_ms` is the time the caller stamps on
/// the events, and the new shipment id comes from the caller, so deciding
/// stays pure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShipmentCommand {
    /// Allocates a shipment for an order whose stock is reserved.
    Allocate {
        /// The new shipment's id, used only if it is allocated.
        shipment_id: String,
        /// The order's id (the aggregate's key).
        order_id: OrderId,
        /// The customer (user id).
        customer_id: CustomerId,
        /// The order's stock reservation.
        reservation_id: String,
        /// What to ship.
        lines: Vec<ManifestLine>,
        /// The order's total, carried to payment.
        total: Cents,
        /// Units a shipment can carry.
        capacity: Capacity,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Gives an allocated shipment up (payment failed, order cancelled).
    Release {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Records that the order was approved (paid): the shipment may leave.
    MarkPaid {
        /// The payment's transaction.
        transaction_id: String,
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// The order's customer asked to cancel: release the shipment if it has
    /// not left, refuse if it has.
    Cancel {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
    /// Hands an allocated shipment to the carrier.
    Dispatch {
        /// Event time, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why a shipment command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    /// No shipment was allocated for this order.
    #[error("no shipment was allocated for this order")]
    NotFound,
    /// An allocation without lines.
    #[error("a shipment needs at least one line")]
    EmptyManifest,
    /// The shipment was released.
    #[error("the shipment was released")]
    Released,
    /// The shipment was dispatched already.
    #[error("the shipment was dispatched already")]
    AlreadyDispatched,
    /// The order is not approved (paid) yet, so the shipment may not leave.
    #[error("the order is not paid yet")]
    NotPaid,
}

/// Where a shipment is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShipmentStatus {
    /// Nothing happened yet.
    #[default]
    None,
    /// Capacity is held for the order.
    Allocated,
    /// No shipment could be allocated. Final.
    AllocationFailed,
    /// Given up. Final.
    Released,
    /// Handed to the carrier. Final.
    Dispatched,
}

/// An order's shipment: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shipment {
    status: ShipmentStatus,
    paid: bool,
    cancellation_refused: bool,
    shipment_id: String,
    order_id: Option<OrderId>,
    customer_id: Option<CustomerId>,
}

impl Shipment {
    /// Where the shipment is.
    pub fn status(&self) -> ShipmentStatus {
        self.status
    }

    /// Whether its order is approved, so that it may be dispatched.
    pub fn paid(&self) -> bool {
        self.paid
    }

    /// The shipment's id, once allocated.
    pub fn shipment_id(&self) -> &str {
        &self.shipment_id
    }

    /// The order shipped, once allocation was decided.
    pub fn order_id(&self) -> Option<&OrderId> {
        self.order_id.as_ref()
    }

    /// The customer shipped to, once allocation was decided.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }

    /// The order's id as the events spell it: empty before allocation.
    fn order_id_str(&self) -> &str {
        self.order_id.as_ref().map_or("", OrderId::as_str)
    }

    /// The customer's id as the events spell it: empty before allocation.
    fn customer_id_str(&self) -> &str {
        self.customer_id.as_ref().map_or("", CustomerId::as_str)
    }
}

impl es_core::Aggregate for Shipment {
    const TYPE: &'static str = "shipment";
    type Command = ShipmentCommand;
    type Event = ShipmentEvent;
    type Error = ShipmentError;

    fn decide(&self, command: &ShipmentCommand) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        use ShipmentStatus as S;
        match command {
            ShipmentCommand::Allocate {
                shipment_id,
                order_id,
                customer_id,
                reservation_id,
                lines,
                total,
                capacity,
                at_ms,
            } => {
                if self.status != S::None {
                    return Ok(Vec::new());
                }
                if lines.is_empty() {
                    return Err(ShipmentError::EmptyManifest);
                }
                let requested_units = lines
                    .iter()
                    .map(|line| line.quantity.get())
                    .fold(0i64, i64::saturating_add);
                if requested_units > capacity.get() {
                    return Ok(vec![
                        pb::ShipmentAllocationFailed {
                            order_id: order_id.to_string(),
                            customer_id: customer_id.to_string(),
                            reservation_id: reservation_id.clone(),
                            reason: format!(
                                "the order has {requested_units} units; a shipment carries at most {}",
                                capacity.get()
                            ),
                            requested_units,
                            capacity_units: capacity.get(),
                            occurred_at_ms: *at_ms,
                        }
                        .into(),
                    ]);
                }
                Ok(vec![
                    pb::ShipmentAllocated {
                        shipment_id: shipment_id.clone(),
                        order_id: order_id.to_string(),
                        customer_id: customer_id.to_string(),
                        reservation_id: reservation_id.clone(),
                        lines: lines
                            .iter()
                            .map(|line| pb::OrderLine {
                                product_id: line.product_id.to_string(),
                                quantity: line.quantity.get(),
                            })
                            .collect(),
                        total_cents: total.get(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ])
            }
            ShipmentCommand::Release { at_ms } => match self.status {
                S::None => Err(ShipmentError::NotFound),
                S::AllocationFailed | S::Released => Ok(Vec::new()),
                S::Dispatched => Err(ShipmentError::AlreadyDispatched),
                S::Allocated => Ok(vec![
                    pb::ShipmentReleased {
                        shipment_id: self.shipment_id.clone(),
                        order_id: self.order_id_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
            ShipmentCommand::MarkPaid {
                transaction_id,
                at_ms,
            } => match self.status {
                // Approval follows allocation; this consumer has not seen
                // the allocation yet.
                S::None => Err(ShipmentError::NotFound),
                S::Allocated if !self.paid => Ok(vec![
                    pb::ShipmentPaid {
                        shipment_id: self.shipment_id.clone(),
                        order_id: self.order_id_str().to_owned(),
                        transaction_id: transaction_id.clone(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
                S::Allocated | S::AllocationFailed | S::Released | S::Dispatched => Ok(Vec::new()),
            },
            ShipmentCommand::Cancel { at_ms } => match self.status {
                // Nothing allocated yet: the order settles its cancellation
                // at its next step, and an unapproved order never leaves.
                S::None | S::AllocationFailed | S::Released => Ok(Vec::new()),
                S::Allocated => Ok(vec![
                    pb::ShipmentReleased {
                        shipment_id: self.shipment_id.clone(),
                        order_id: self.order_id_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
                S::Dispatched if self.cancellation_refused => Ok(Vec::new()),
                S::Dispatched => Ok(vec![
                    pb::ShipmentCancellationRefused {
                        shipment_id: self.shipment_id.clone(),
                        order_id: self.order_id_str().to_owned(),
                        reason: "the shipment was dispatched already".to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
            ShipmentCommand::Dispatch { at_ms } => match self.status {
                S::None | S::AllocationFailed => Err(ShipmentError::NotFound),
                S::Released => Err(ShipmentError::Released),
                S::Dispatched => Err(ShipmentError::AlreadyDispatched),
                S::Allocated if !self.paid => Err(ShipmentError::NotPaid),
                S::Allocated => Ok(vec![
                    pb::ShipmentDispatched {
                        shipment_id: self.shipment_id.clone(),
                        order_id: self.order_id_str().to_owned(),
                        customer_id: self.customer_id_str().to_owned(),
                        occurred_at_ms: *at_ms,
                    }
                    .into(),
                ]),
            },
        }
    }

    fn apply(&mut self, event: &ShipmentEvent) {
        match event {
            ShipmentEvent::Allocated(e) => {
                self.status = ShipmentStatus::Allocated;
                self.shipment_id = e.shipment_id.clone();
                self.order_id = Some(OrderId::from_recorded(&e.order_id));
                self.customer_id = Some(CustomerId::from_recorded(&e.customer_id));
            }
            ShipmentEvent::AllocationFailed(e) => {
                self.status = ShipmentStatus::AllocationFailed;
                self.order_id = Some(OrderId::from_recorded(&e.order_id));
                self.customer_id = Some(CustomerId::from_recorded(&e.customer_id));
            }
            ShipmentEvent::Released(_) => self.status = ShipmentStatus::Released,
            ShipmentEvent::Paid(_) => self.paid = true,
            ShipmentEvent::CancellationRefused(_) => self.cancellation_refused = true,
            ShipmentEvent::Dispatched(_) => self.status = ShipmentStatus::Dispatched,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use es_core::testing::{given, given_no_events};
    use proptest::prelude::*;

    use super::*;

    const AT: i64 = 1_700_000_000_000;

    fn lines(quantities: &[i64]) -> Vec<ManifestLine> {
        quantities
            .iter()
            .enumerate()
            .map(|(i, q)| ManifestLine {
                product_id: ProductId::from_recorded(&format!("p{i}")),
                quantity: Quantity::parse(*q).unwrap(),
            })
            .collect()
    }

    fn allocate(quantities: &[i64], capacity: i64) -> ShipmentCommand {
        ShipmentCommand::Allocate {
            shipment_id: "s1".into(),
            order_id: OrderId::from_recorded("o1"),
            customer_id: CustomerId::parse("c1").unwrap(),
            reservation_id: "r1".into(),
            lines: lines(quantities),
            total: Cents::parse(1234).unwrap(),
            capacity: Capacity::parse(capacity).unwrap(),
            at_ms: AT,
        }
    }

    fn allocated(quantities: &[i64]) -> ShipmentEvent {
        pb::ShipmentAllocated {
            shipment_id: "s1".into(),
            order_id: "o1".into(),
            customer_id: "c1".into(),
            reservation_id: "r1".into(),
            lines: quantities
                .iter()
                .enumerate()
                .map(|(i, q)| pb::OrderLine {
                    product_id: format!("p{i}"),
                    quantity: *q,
                })
                .collect(),
            total_cents: 1234,
            occurred_at_ms: AT,
        }
        .into()
    }

    fn released() -> ShipmentEvent {
        pb::ShipmentReleased {
            shipment_id: "s1".into(),
            order_id: "o1".into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn dispatched() -> ShipmentEvent {
        pb::ShipmentDispatched {
            shipment_id: "s1".into(),
            order_id: "o1".into(),
            customer_id: "c1".into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn paid() -> ShipmentEvent {
        pb::ShipmentPaid {
            shipment_id: "s1".into(),
            order_id: "o1".into(),
            transaction_id: "tx1".into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn refused() -> ShipmentEvent {
        pb::ShipmentCancellationRefused {
            shipment_id: "s1".into(),
            order_id: "o1".into(),
            reason: "the shipment was dispatched already".into(),
            occurred_at_ms: AT,
        }
        .into()
    }

    fn mark_paid() -> ShipmentCommand {
        ShipmentCommand::MarkPaid {
            transaction_id: "tx1".into(),
            at_ms: AT,
        }
    }

    const RELEASE: ShipmentCommand = ShipmentCommand::Release { at_ms: AT };
    const CANCEL: ShipmentCommand = ShipmentCommand::Cancel { at_ms: AT };
    const DISPATCH: ShipmentCommand = ShipmentCommand::Dispatch { at_ms: AT };

    #[test]
    fn allocating_within_capacity_allocates_once() {
        let shipment = given_no_events::<Shipment>()
            .when(allocate(&[20, 30], 50))
            .then_expect_events([allocated(&[20, 30])]);
        assert_eq!(shipment.status(), ShipmentStatus::Allocated);
        assert_eq!(shipment.shipment_id(), "s1");
        given::<Shipment>([allocated(&[20, 30])])
            .when(allocate(&[20, 30], 50))
            .then_expect_events([]);
    }

    #[test]
    fn allocating_over_capacity_fails_and_stays_failed() {
        let failed: ShipmentEvent = pb::ShipmentAllocationFailed {
            order_id: "o1".into(),
            customer_id: "c1".into(),
            reservation_id: "r1".into(),
            reason: "the order has 51 units; a shipment carries at most 50".into(),
            requested_units: 51,
            capacity_units: 50,
            occurred_at_ms: AT,
        }
        .into();
        let shipment = given_no_events::<Shipment>()
            .when(allocate(&[50, 1], 50))
            .then_expect_events([failed.clone()]);
        assert_eq!(shipment.status(), ShipmentStatus::AllocationFailed);
        given::<Shipment>([failed.clone()])
            .when(allocate(&[1], 50))
            .then_expect_events([]);
        given::<Shipment>([failed])
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::NotFound);
    }

    #[test]
    fn an_empty_manifest_is_refused() {
        given_no_events::<Shipment>()
            .when(allocate(&[], 50))
            .then_expect_error(|e| *e == ShipmentError::EmptyManifest);
    }

    #[test]
    fn releasing_gives_an_allocated_shipment_up_once() {
        let shipment = given::<Shipment>([allocated(&[1])])
            .when(RELEASE)
            .then_expect_events([released()]);
        assert_eq!(shipment.status(), ShipmentStatus::Released);
        given::<Shipment>([allocated(&[1]), released()])
            .when(RELEASE)
            .then_expect_events([]);
        given::<Shipment>([allocated(&[1]), dispatched()])
            .when(RELEASE)
            .then_expect_error(|e| *e == ShipmentError::AlreadyDispatched);
        given_no_events::<Shipment>()
            .when(RELEASE)
            .then_expect_error(|e| *e == ShipmentError::NotFound);
    }

    #[test]
    fn dispatching_needs_an_allocated_shipment_of_a_paid_order() {
        let shipment = given::<Shipment>([allocated(&[1]), paid()])
            .when(DISPATCH)
            .then_expect_events([dispatched()]);
        assert_eq!(shipment.status(), ShipmentStatus::Dispatched);
        given::<Shipment>([allocated(&[1])])
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::NotPaid);
        given::<Shipment>([allocated(&[1]), paid(), dispatched()])
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::AlreadyDispatched);
        given::<Shipment>([allocated(&[1]), paid(), released()])
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::Released);
        given_no_events::<Shipment>()
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::NotFound);
    }

    #[test]
    fn an_approved_order_makes_its_shipment_dispatchable_once() {
        let shipment = given::<Shipment>([allocated(&[1])])
            .when(mark_paid())
            .then_expect_events([paid()]);
        assert!(shipment.paid());
        given::<Shipment>([allocated(&[1]), paid()])
            .when(mark_paid())
            .then_expect_events([]);
        given::<Shipment>([allocated(&[1]), released()])
            .when(mark_paid())
            .then_expect_events([]);
        // Approval heard before the allocation: not yet.
        given_no_events::<Shipment>()
            .when(mark_paid())
            .then_expect_error(|e| *e == ShipmentError::NotFound);
    }

    #[test]
    fn a_cancellation_releases_a_shipment_that_has_not_left_and_is_refused_after() {
        for before in [vec![allocated(&[1])], vec![allocated(&[1]), paid()]] {
            given::<Shipment>(before)
                .when(CANCEL)
                .then_expect_events([released()]);
        }
        let shipment = given::<Shipment>([allocated(&[1]), paid(), dispatched()])
            .when(CANCEL)
            .then_expect_events([refused()]);
        assert_eq!(shipment.status(), ShipmentStatus::Dispatched);
        given::<Shipment>([allocated(&[1]), paid(), dispatched(), refused()])
            .when(CANCEL)
            .then_expect_events([]);
        // Nothing to release yet, or any more: the order settles by itself.
        given_no_events::<Shipment>()
            .when(CANCEL)
            .then_expect_events([]);
        given::<Shipment>([allocated(&[1]), released()])
            .when(CANCEL)
            .then_expect_events([]);
        // Whichever comes first wins: a released shipment never leaves.
        given::<Shipment>([allocated(&[1]), paid(), released()])
            .when(DISPATCH)
            .then_expect_error(|e| *e == ShipmentError::Released);
    }

    #[test]
    fn events_round_trip_through_protobuf() {
        use es_core::DomainEvent;
        for event in [
            allocated(&[1, 2]),
            released(),
            paid(),
            refused(),
            dispatched(),
        ] {
            assert_eq!(ShipmentEvent::decode(&event.to_raw()).unwrap(), event);
        }
    }

    #[test]
    fn capacity_parses_from_configuration() {
        assert_eq!("50".parse::<Capacity>(), Ok(Capacity::default()));
        assert!("0".parse::<Capacity>().is_err());
        assert!("-5".parse::<Capacity>().is_err());
        assert!("lots".parse::<Capacity>().is_err());
    }

    proptest! {
        /// Allocation succeeds exactly when the units fit the capacity.
        #[test]
        fn allocation_fails_exactly_above_capacity(
            quantities in proptest::collection::vec(1i64..40, 1..6),
            capacity in 1i64..120,
        ) {
            let events = given_no_events::<Shipment>()
                .when(allocate(&quantities, capacity))
                .result()
                .unwrap();
            let fits = quantities.iter().sum::<i64>() <= capacity;
            prop_assert_eq!(events.len(), 1);
            prop_assert_eq!(matches!(events[0], ShipmentEvent::Allocated(_)), fits);
        }
    }
}
