//! The [`Order`] aggregate: the state machine of the place-order saga.
//!
//! ```text
//! (none) --Place--> PROCESSING --PriceQuoted--> PENDING --PaymentCaptured--> APPROVED --ShipmentDispatched--> COMPLETED
//!                       |                          |                            |
//!                       +--PriceQuoteFailed--+     +--StockReservationFailed--+  +--Cancel, ShipmentReleased--> CANCELLED
//!                                            |        ShipmentAllocationFailed |
//!                                            v        PaymentFailed            v
//!                                         REJECTED <---------------------------+
//! ```
//!
//! The saga is a choreography, so the order hears about other services'
//! outcomes as [`SagaInput`]s, and those arrive at least once and not
//! necessarily in order. `decide` therefore classifies every input against
//! the step it belongs to:
//! - the order is at that step: the transition happens (one event);
//! - the order has not reached it yet: [`OrderError::TooEarly`], which a
//!   reactor retries later;
//! - the order is past it and recorded this very outcome: no events (a
//!   duplicate never applies twice);
//! - the order is past it with another outcome: [`OrderError::Contradicts`],
//!   a saga inconsistency for an operator (and, later, compensation).
//!
//! REJECTED, COMPLETED and CANCELLED are final: nothing leaves them.
//!
//! # Cancelling a running saga
//!
//! Cancel records `OrderCancellationRequested` and the order keeps its
//! status until another service's answer settles it:
//! - A PROCESSING or PENDING order has a step in flight, which will answer
//!   whatever we do. That answer settles the order as CANCELLED instead of
//!   moving it on, and the `OrderCancelled` it records names exactly what is
//!   left to undo: after `PaymentCaptured`, the payment, the shipment and
//!   the consumed stock; after a price quote or any failure, nothing (no
//!   step started, or the failure path undid its own work). Such an order
//!   is never approved, so its shipment never becomes dispatchable.
//! - An APPROVED order's shipment may be dispatched at any moment, and
//!   dispatch cannot be undone, so shipping decides (it owns the point of
//!   no return): it releases a shipment that has not left
//!   (`ShipmentReleased`), and the order is then CANCELLED with its payment
//!   and consumed stock undone; or the shipment has left
//!   (`ShipmentDispatched`), and the order is COMPLETED, the cancellation
//!   refused.
//!
//! Late duplicates of the settling step change nothing.

use stocklet_proto::stocklet::events::v1 as pb;

use stocklet_values::{Cents, CustomerId, OrderId, ProductId, Quantity};

use super::values::{CancellationReason, Cart};

es_core::domain_events! {
    /// Everything an order records, as the `stocklet.events.v1` messages.
    pub enum OrderEvent {
        Placed(pb::OrderPlaced),
        Priced(pb::OrderPriced),
        Rejected(pb::OrderRejected),
        Approved(pb::OrderApproved),
        Completed(pb::OrderCompleted),
        Cancelled(pb::OrderCancelled),
        CancellationRequested(pb::OrderCancellationRequested),
    }
}

impl OrderEvent {
    /// The status the order enters with this event; `None` when the status
    /// stays as it is.
    pub fn status_entered(&self) -> Option<OrderStatus> {
        match self {
            Self::Placed(_) => Some(OrderStatus::Processing),
            Self::Priced(_) => Some(OrderStatus::Pending),
            Self::Rejected(_) => Some(OrderStatus::Rejected),
            Self::Approved(_) => Some(OrderStatus::Approved),
            Self::Completed(_) => Some(OrderStatus::Completed),
            Self::Cancelled(_) => Some(OrderStatus::Cancelled),
            Self::CancellationRequested(_) => None,
        }
    }

    /// When it happened, Unix milliseconds.
    pub fn occurred_at_ms(&self) -> i64 {
        match self {
            Self::Placed(e) => e.occurred_at_ms,
            Self::Priced(e) => e.occurred_at_ms,
            Self::Rejected(e) => e.occurred_at_ms,
            Self::Approved(e) => e.occurred_at_ms,
            Self::Completed(e) => e.occurred_at_ms,
            Self::Cancelled(e) => e.occurred_at_ms,
            Self::CancellationRequested(e) => e.occurred_at_ms,
        }
    }

    /// The order it belongs to.
    pub fn order_id(&self) -> &str {
        match self {
            Self::Placed(e) => &e.order_id,
            Self::Priced(e) => &e.order_id,
            Self::Rejected(e) => &e.order_id,
            Self::Approved(e) => &e.order_id,
            Self::Completed(e) => &e.order_id,
            Self::Cancelled(e) => &e.order_id,
            Self::CancellationRequested(e) => &e.order_id,
        }
    }
}

/// The state of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Placed; waiting for the price quote.
    Processing,
    /// Priced; waiting for stock, shipping and payment.
    Pending,
    /// Paid; waiting for dispatch.
    Approved,
    /// A saga step failed. Final.
    Rejected,
    /// Dispatched. Final.
    Completed,
    /// Cancelled before dispatch. Final.
    Cancelled,
}

impl OrderStatus {
    /// Whether nothing can follow.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Rejected | Self::Completed | Self::Cancelled)
    }

    /// How far along the saga: final states are past every step.
    fn rank(self) -> u8 {
        match self {
            Self::Processing => 0,
            Self::Pending => 1,
            Self::Approved => 2,
            Self::Rejected | Self::Completed | Self::Cancelled => 3,
        }
    }

    /// The upper-case name, as in the API enum without its prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "PROCESSING",
            Self::Pending => "PENDING",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Parses [`OrderStatus::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Processing,
            Self::Pending,
            Self::Approved,
            Self::Rejected,
            Self::Completed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == raw)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectionReason {
    /// Some products do not exist or were deleted.
    ProductUnavailable,
    /// Some products have too little stock.
    InsufficientStock,
    /// No shipment could be allocated.
    ShippingUnavailable,
    /// The balance is less than the total.
    InsufficientBalance,
    /// The payment failed for another reason.
    PaymentDeclined,
    /// The total exceeds the largest amount one order may have.
    TotalTooLarge,
}

impl RejectionReason {
    /// The event enum value.
    pub fn to_proto(self) -> pb::OrderRejectionReason {
        match self {
            Self::ProductUnavailable => pb::OrderRejectionReason::ProductUnavailable,
            Self::InsufficientStock => pb::OrderRejectionReason::InsufficientStock,
            Self::ShippingUnavailable => pb::OrderRejectionReason::ShippingUnavailable,
            Self::InsufficientBalance => pb::OrderRejectionReason::InsufficientBalance,
            Self::PaymentDeclined => pb::OrderRejectionReason::PaymentDeclined,
            Self::TotalTooLarge => pb::OrderRejectionReason::TotalTooLarge,
        }
    }

    /// The upper-case name, as in the API enum without its prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProductUnavailable => "PRODUCT_UNAVAILABLE",
            Self::InsufficientStock => "INSUFFICIENT_STOCK",
            Self::ShippingUnavailable => "SHIPPING_UNAVAILABLE",
            Self::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Self::PaymentDeclined => "PAYMENT_DECLINED",
            Self::TotalTooLarge => "TOTAL_TOO_LARGE",
        }
    }

    /// Parses [`RejectionReason::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::ProductUnavailable,
            Self::InsufficientStock,
            Self::ShippingUnavailable,
            Self::InsufficientBalance,
            Self::PaymentDeclined,
            Self::TotalTooLarge,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == raw)
    }

    /// Reads the event enum value; `None` for unspecified or unknown.
    pub fn from_proto(raw: i32) -> Option<Self> {
        match pb::OrderRejectionReason::try_from(raw).ok()? {
            pb::OrderRejectionReason::Unspecified => None,
            pb::OrderRejectionReason::ProductUnavailable => Some(Self::ProductUnavailable),
            pb::OrderRejectionReason::InsufficientStock => Some(Self::InsufficientStock),
            pb::OrderRejectionReason::ShippingUnavailable => Some(Self::ShippingUnavailable),
            pb::OrderRejectionReason::InsufficientBalance => Some(Self::InsufficientBalance),
            pb::OrderRejectionReason::PaymentDeclined => Some(Self::PaymentDeclined),
            pb::OrderRejectionReason::TotalTooLarge => Some(Self::TotalTooLarge),
        }
    }
}

/// Why a payment failed, as the order sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentFailure {
    /// The balance is less than the total.
    InsufficientBalance,
    /// Any other reason, e.g. a closed balance.
    Declined,
}

/// A quoted order line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotedLine {
    /// The product.
    pub product_id: ProductId,
    /// Units ordered.
    pub quantity: Quantity,
    /// The quoted unit price.
    pub unit_price: Cents,
}

/// An outcome of another service's saga step, addressed to this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaInput {
    /// The product service priced every line (PriceQuoted). The shipping
    /// fee is the order service's own setting.
    PriceQuoted {
        /// The priced lines.
        lines: Vec<QuotedLine>,
        /// The quote's sum of quantity times unit price.
        items_price: Cents,
        /// The flat shipping fee to add.
        shipping_fee: Cents,
    },
    /// The order could not be priced (PriceQuoteFailed).
    PriceQuoteFailed {
        /// The unavailable products.
        product_ids: Vec<ProductId>,
        /// Whether the items price exceeds what one order may cost.
        total_too_large: bool,
    },
    /// Some products are short of stock (StockReservationFailed).
    StockReservationFailed {
        /// The products short of stock.
        product_ids: Vec<ProductId>,
    },
    /// No shipment could be allocated (ShipmentAllocationFailed).
    ShipmentAllocationFailed {
        /// The reservation being released.
        reservation_id: String,
        /// Why, human-readable.
        detail: String,
    },
    /// The total could not be debited (PaymentFailed).
    PaymentFailed {
        /// Why.
        reason: PaymentFailure,
        /// Human-readable explanation.
        detail: String,
        /// The reservation being released.
        reservation_id: String,
        /// The shipment being released.
        shipment_id: String,
    },
    /// The total was debited (PaymentCaptured).
    PaymentCaptured {
        /// The payment's transaction.
        transaction_id: String,
        /// What was debited.
        amount: Cents,
        /// The allocated shipment.
        shipment_id: String,
        /// The reservation, now consumed.
        reservation_id: String,
    },
    /// The shipment left (ShipmentDispatched).
    ShipmentDispatched {
        /// The dispatched shipment.
        shipment_id: String,
    },
    /// The shipment was given up (ShipmentReleased): for an approved order
    /// whose customer asked to cancel, shipping's consent to the
    /// cancellation.
    ShipmentReleased {
        /// The released shipment.
        shipment_id: String,
    },
}

impl SagaInput {
    /// The step's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PriceQuoted { .. } => "PriceQuoted",
            Self::PriceQuoteFailed { .. } => "PriceQuoteFailed",
            Self::StockReservationFailed { .. } => "StockReservationFailed",
            Self::ShipmentAllocationFailed { .. } => "ShipmentAllocationFailed",
            Self::PaymentFailed { .. } => "PaymentFailed",
            Self::PaymentCaptured { .. } => "PaymentCaptured",
            Self::ShipmentDispatched { .. } => "ShipmentDispatched",
            Self::ShipmentReleased { .. } => "ShipmentReleased",
        }
    }

    /// The status an order must be in for this input to apply.
    fn expects(&self) -> OrderStatus {
        match self {
            Self::PriceQuoted { .. } | Self::PriceQuoteFailed { .. } => OrderStatus::Processing,
            Self::StockReservationFailed { .. }
            | Self::ShipmentAllocationFailed { .. }
            | Self::PaymentFailed { .. }
            | Self::PaymentCaptured { .. } => OrderStatus::Pending,
            Self::ShipmentDispatched { .. } | Self::ShipmentReleased { .. } => {
                OrderStatus::Approved
            }
        }
    }
}

/// What can be asked of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// A customer places a new order (PlaceOrder).
    Place {
        /// The new order's id.
        order_id: OrderId,
        /// The caller.
        customer_id: CustomerId,
        /// What they order.
        cart: Cart,
        /// Now, Unix milliseconds.
        at_ms: i64,
    },
    /// Another service's saga step reports its outcome.
    React {
        /// The outcome.
        input: SagaInput,
        /// When it is recorded, Unix milliseconds.
        at_ms: i64,
    },
    /// The customer or an admin cancels an order not yet dispatched
    /// (CancelOrder).
    Cancel {
        /// Why, as given.
        reason: CancellationReason,
        /// Now, Unix milliseconds.
        at_ms: i64,
    },
}

/// Why an order refuses a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// Place on an order id that exists.
    #[error("the order already exists")]
    AlreadyPlaced,
    /// Any command but Place on an order that does not exist.
    #[error("the order does not exist")]
    NotPlaced,
    /// A saga input for a later step than the order has reached; retry later.
    #[error("{input} arrived while the order is {status}; it is not due yet")]
    TooEarly {
        /// The order's status.
        status: OrderStatus,
        /// The input's name.
        input: &'static str,
    },
    /// A saga input for a step the order passed with another outcome.
    #[error("{input} contradicts the order, which is already {status}")]
    Contradicts {
        /// The order's status.
        status: OrderStatus,
        /// The input's name.
        input: &'static str,
    },
    /// The quote does not price exactly the order's lines.
    #[error("the price quote does not match the order's lines")]
    QuoteMismatch,
    /// The quote's items price is not the sum of its lines.
    #[error("the quoted items price {quoted} is not the lines' sum {computed}")]
    ItemsPriceMismatch {
        /// What the quote said.
        quoted: i64,
        /// What the lines add up to.
        computed: i64,
    },
    /// The total exceeds the largest amount we handle.
    #[error("the order's total is too large")]
    TotalTooLarge,
    /// The captured amount is not the order's total.
    #[error("captured {captured} cents, but the order's total is {total}")]
    AmountMismatch {
        /// The order's total.
        total: i64,
        /// What payment captured.
        captured: i64,
    },
    /// A dispatch names another shipment than the order's.
    #[error("shipment {dispatched} is not the order's shipment")]
    ShipmentMismatch {
        /// The dispatched shipment.
        dispatched: String,
    },
    /// Cancel on a final order.
    #[error("a {status} order cannot be cancelled")]
    Final {
        /// The order's status.
        status: OrderStatus,
    },
}

impl OrderError {
    /// Whether the same command may succeed later without anyone acting:
    /// a saga input that overtook an earlier step.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::TooEarly { .. })
    }
}

/// One product line of an order; the unit price is zero until priced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    /// The product's id.
    pub product_id: ProductId,
    /// Units ordered.
    pub quantity: Quantity,
    /// Quoted unit price; zero until priced.
    pub unit_price: Cents,
}

impl OrderLine {
    fn recorded(product_id: &str, quantity: i64, unit_price_cents: i64) -> Self {
        Self {
            product_id: ProductId::from_recorded(product_id),
            quantity: Quantity::from_recorded(quantity),
            unit_price: Cents::from_recorded(unit_price_cents),
        }
    }
}

/// Why an order was rejected, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The reason; `None` if the stored value is unknown to this version.
    pub reason: Option<RejectionReason>,
    /// Human-readable explanation.
    pub detail: String,
    /// Products at fault.
    pub product_ids: Vec<String>,
}

/// One status the order entered, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusChange {
    /// The status entered.
    pub status: OrderStatus,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// An order: the fold of its events. The default value is an order that
/// has not been placed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Order {
    status: Option<OrderStatus>,
    id: Option<OrderId>,
    customer_id: Option<CustomerId>,
    lines: Vec<OrderLine>,
    priced: bool,
    items_price: Cents,
    shipping_fee: Cents,
    total: Cents,
    reservation_id: String,
    shipment_id: String,
    transaction_id: String,
    rejection: Option<Rejection>,
    cancellation_reason: String,
    cancellation_requested: bool,
    cancelled_in_flight: bool,
    history: Vec<StatusChange>,
}

impl Order {
    /// The status; `None` before the order is placed.
    pub fn status(&self) -> Option<OrderStatus> {
        self.status
    }
    /// The order's id; empty before the order is placed.
    pub fn id(&self) -> &str {
        self.id.as_ref().map_or("", OrderId::as_str)
    }
    /// The customer who placed it; empty before the order is placed.
    pub fn customer_id(&self) -> &str {
        self.customer_id.as_ref().map_or("", CustomerId::as_str)
    }
    /// The lines, sorted by product id.
    pub fn lines(&self) -> &[OrderLine] {
        &self.lines
    }
    /// Whether the order has been priced.
    pub fn is_priced(&self) -> bool {
        self.priced
    }
    /// Sum of quantity times unit price; zero until priced.
    pub fn items_price(&self) -> Cents {
        self.items_price
    }
    /// Sum of quantity times unit price, in cents; zero until priced.
    pub fn items_price_cents(&self) -> i64 {
        self.items_price.get()
    }
    /// The shipping fee; zero until priced.
    pub fn shipping_fee(&self) -> Cents {
        self.shipping_fee
    }
    /// The shipping fee, in cents; zero until priced.
    pub fn shipping_fee_cents(&self) -> i64 {
        self.shipping_fee.get()
    }
    /// Items price plus shipping fee; zero until priced.
    pub fn total(&self) -> Cents {
        self.total
    }
    /// Items price plus shipping fee, in cents; zero until priced.
    pub fn total_cents(&self) -> i64 {
        self.total.get()
    }
    /// The stock reservation, once known.
    pub fn reservation_id(&self) -> &str {
        &self.reservation_id
    }
    /// The shipment, once known.
    pub fn shipment_id(&self) -> &str {
        &self.shipment_id
    }
    /// The payment transaction, once paid.
    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }
    /// Why it was rejected, if it was.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }
    /// Why it was cancelled, if it was.
    pub fn cancellation_reason(&self) -> &str {
        &self.cancellation_reason
    }
    /// Whether a cancellation waits for the saga's step in flight.
    pub fn cancellation_requested(&self) -> bool {
        self.cancellation_requested
    }
    /// Every status entered, oldest first.
    pub fn history(&self) -> &[StatusChange] {
        &self.history
    }

    fn priced_lines(&self) -> Vec<pb::PricedOrderLine> {
        self.lines
            .iter()
            .map(|line| pb::PricedOrderLine {
                product_id: line.product_id.to_string(),
                quantity: line.quantity.get(),
                unit_price_cents: line.unit_price.get(),
            })
            .collect()
    }

    fn rejected(
        &self,
        reason: RejectionReason,
        detail: String,
        product_ids: &[ProductId],
        reservation_id: &str,
        shipment_id: &str,
        at_ms: i64,
    ) -> OrderEvent {
        let mut product_ids: Vec<String> = product_ids.iter().map(|id| id.to_string()).collect();
        product_ids.sort();
        product_ids.dedup();
        OrderEvent::Rejected(pb::OrderRejected {
            order_id: self.id().to_owned(),
            customer_id: self.customer_id().to_owned(),
            reason: reason.to_proto().into(),
            detail,
            product_ids,
            reservation_id: reservation_id.to_owned(),
            shipment_id: shipment_id.to_owned(),
            occurred_at_ms: at_ms,
        })
    }

    /// The rejection of an order whose total cannot be charged: more than
    /// the largest amount one order may have.
    fn too_large(&self, at_ms: i64) -> OrderEvent {
        self.rejected(
            RejectionReason::TotalTooLarge,
            format!(
                "the order's total exceeds {}, the most one order may cost",
                Cents::from_recorded(Cents::MAX)
            ),
            &[],
            "",
            "",
            at_ms,
        )
    }

    /// Whether the order, past the input's step, recorded the same outcome.
    fn already_recorded(&self, input: &SagaInput) -> bool {
        let rejected_for = |reasons: &[RejectionReason]| {
            self.rejection
                .as_ref()
                .and_then(|r| r.reason)
                .is_some_and(|reason| reasons.contains(&reason))
        };
        match input {
            SagaInput::PriceQuoted { .. } => {
                self.priced || rejected_for(&[RejectionReason::TotalTooLarge])
            }
            SagaInput::PriceQuoteFailed { .. } => rejected_for(&[
                RejectionReason::ProductUnavailable,
                RejectionReason::TotalTooLarge,
            ]),
            SagaInput::StockReservationFailed { .. } => {
                rejected_for(&[RejectionReason::InsufficientStock])
            }
            SagaInput::ShipmentAllocationFailed { .. } => {
                rejected_for(&[RejectionReason::ShippingUnavailable])
            }
            SagaInput::PaymentFailed { .. } => rejected_for(&[
                RejectionReason::InsufficientBalance,
                RejectionReason::PaymentDeclined,
            ]),
            SagaInput::PaymentCaptured { transaction_id, .. } => {
                !self.transaction_id.is_empty() && self.transaction_id == *transaction_id
            }
            SagaInput::ShipmentDispatched { .. } => self.status == Some(OrderStatus::Completed),
            // Released for a cancellation (recorded), or by a failure path.
            SagaInput::ShipmentReleased { .. } => matches!(
                self.status,
                Some(OrderStatus::Cancelled | OrderStatus::Rejected)
            ),
        }
    }

    /// The transition an input causes when the order is at its step.
    fn transition(&self, input: &SagaInput, at_ms: i64) -> Result<OrderEvent, OrderError> {
        Ok(match input {
            SagaInput::PriceQuoted {
                lines,
                items_price,
                shipping_fee,
            } => match self.price(lines, *items_price, *shipping_fee, at_ms) {
                Err(OrderError::TotalTooLarge) => self.too_large(at_ms),
                priced => priced?,
            },
            SagaInput::PriceQuoteFailed {
                total_too_large: true,
                ..
            } => self.too_large(at_ms),
            SagaInput::PriceQuoteFailed { product_ids, .. } => self.rejected(
                RejectionReason::ProductUnavailable,
                "some products do not exist or were deleted".to_owned(),
                product_ids,
                "",
                "",
                at_ms,
            ),
            SagaInput::StockReservationFailed { product_ids } => self.rejected(
                RejectionReason::InsufficientStock,
                "some products have too little stock".to_owned(),
                product_ids,
                "",
                "",
                at_ms,
            ),
            SagaInput::ShipmentAllocationFailed {
                reservation_id,
                detail,
            } => self.rejected(
                RejectionReason::ShippingUnavailable,
                or_default(detail, "no shipment could be allocated"),
                &[],
                reservation_id,
                "",
                at_ms,
            ),
            SagaInput::PaymentFailed {
                reason,
                detail,
                reservation_id,
                shipment_id,
            } => {
                let (reason, default) = match reason {
                    PaymentFailure::InsufficientBalance => (
                        RejectionReason::InsufficientBalance,
                        "the balance is less than the order's total",
                    ),
                    PaymentFailure::Declined => {
                        (RejectionReason::PaymentDeclined, "the payment was declined")
                    }
                };
                self.rejected(
                    reason,
                    or_default(detail, default),
                    &[],
                    reservation_id,
                    shipment_id,
                    at_ms,
                )
            }
            SagaInput::PaymentCaptured {
                transaction_id,
                amount,
                shipment_id,
                reservation_id,
            } => {
                if *amount != self.total {
                    return Err(OrderError::AmountMismatch {
                        total: self.total.get(),
                        captured: amount.get(),
                    });
                }
                OrderEvent::Approved(pb::OrderApproved {
                    order_id: self.id().to_owned(),
                    customer_id: self.customer_id().to_owned(),
                    transaction_id: transaction_id.clone(),
                    shipment_id: shipment_id.clone(),
                    reservation_id: reservation_id.clone(),
                    total_cents: self.total.get(),
                    occurred_at_ms: at_ms,
                })
            }
            SagaInput::ShipmentDispatched { shipment_id } => {
                if *shipment_id != self.shipment_id {
                    return Err(OrderError::ShipmentMismatch {
                        dispatched: shipment_id.clone(),
                    });
                }
                OrderEvent::Completed(pb::OrderCompleted {
                    order_id: self.id().to_owned(),
                    customer_id: self.customer_id().to_owned(),
                    shipment_id: shipment_id.clone(),
                    occurred_at_ms: at_ms,
                })
            }
            SagaInput::ShipmentReleased { shipment_id } => {
                if !self.cancellation_requested || *shipment_id != self.shipment_id {
                    return Err(OrderError::Contradicts {
                        status: OrderStatus::Approved,
                        input: input.name(),
                    });
                }
                // Shipping consented: the shipment will not leave, so undo
                // the payment and the consumed stock (the shipment is
                // released already; releasing it again changes nothing).
                self.cancelled(
                    &self.transaction_id,
                    &self.shipment_id,
                    &self.reservation_id,
                    at_ms,
                )
            }
        })
    }

    fn price(
        &self,
        lines: &[QuotedLine],
        items_price: Cents,
        shipping_fee: Cents,
        at_ms: i64,
    ) -> Result<OrderEvent, OrderError> {
        let mut quoted: Vec<&QuotedLine> = lines.iter().collect();
        quoted.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        let matches = quoted.len() == self.lines.len()
            && quoted
                .iter()
                .zip(&self.lines)
                .all(|(q, line)| q.product_id == line.product_id && q.quantity == line.quantity);
        if !matches {
            return Err(OrderError::QuoteMismatch);
        }
        let within_bound = |amount: &Cents| amount.get() <= Cents::MAX;
        let computed = quoted.iter().try_fold(Cents::ZERO, |sum, line| {
            line.unit_price
                .times(line.quantity)
                .and_then(|amount| sum.checked_add(amount))
        });
        let computed = computed
            .filter(within_bound)
            .ok_or(OrderError::TotalTooLarge)?;
        if computed != items_price {
            return Err(OrderError::ItemsPriceMismatch {
                quoted: items_price.get(),
                computed: computed.get(),
            });
        }
        let total = computed
            .checked_add(shipping_fee)
            .filter(within_bound)
            .ok_or(OrderError::TotalTooLarge)?;
        Ok(OrderEvent::Priced(pb::OrderPriced {
            order_id: self.id().to_owned(),
            customer_id: self.customer_id().to_owned(),
            lines: quoted
                .iter()
                .map(|line| pb::PricedOrderLine {
                    product_id: line.product_id.to_string(),
                    quantity: line.quantity.get(),
                    unit_price_cents: line.unit_price.get(),
                })
                .collect(),
            items_price_cents: computed.get(),
            shipping_fee_cents: shipping_fee.get(),
            total_cents: total.get(),
            occurred_at_ms: at_ms,
        }))
    }

    fn react(
        &self,
        status: OrderStatus,
        input: &SagaInput,
        at_ms: i64,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        let expected = input.expects();
        if status == expected {
            let next = self.transition(input, at_ms)?;
            // An approved order's cancellation is shipping's to decide: the
            // shipment's release cancels it, its dispatch completes it.
            if !self.cancellation_requested || status == OrderStatus::Approved {
                return Ok(vec![next]);
            }
            // The step in flight answered: settle the requested cancellation,
            // undoing only what a captured payment leaves behind.
            let settled = match &next {
                OrderEvent::Approved(e) => {
                    self.cancelled(&e.transaction_id, &e.shipment_id, &e.reservation_id, at_ms)
                }
                _ => self.cancelled("", "", "", at_ms),
            };
            return Ok(vec![settled]);
        }
        if status.rank() < expected.rank() {
            return Err(OrderError::TooEarly {
                status,
                input: input.name(),
            });
        }
        if self.already_recorded(input) {
            return Ok(Vec::new());
        }
        // A late duplicate of the step that settled a cancellation.
        if self.cancelled_in_flight && expected != OrderStatus::Approved {
            return Ok(Vec::new());
        }
        Err(OrderError::Contradicts {
            status,
            input: input.name(),
        })
    }

    fn cancel(
        &self,
        status: OrderStatus,
        reason: &CancellationReason,
        at_ms: i64,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        match status {
            OrderStatus::Processing | OrderStatus::Pending | OrderStatus::Approved
                if self.cancellation_requested =>
            {
                Ok(Vec::new())
            }
            OrderStatus::Processing | OrderStatus::Pending | OrderStatus::Approved => {
                Ok(vec![OrderEvent::CancellationRequested(
                    pb::OrderCancellationRequested {
                        order_id: self.id().to_owned(),
                        customer_id: self.customer_id().to_owned(),
                        reason: reason.as_str().to_owned(),
                        occurred_at_ms: at_ms,
                    },
                )])
            }
            OrderStatus::Rejected | OrderStatus::Completed | OrderStatus::Cancelled => {
                Err(OrderError::Final { status })
            }
        }
    }

    /// The requested cancellation, settled: undoes the payment, shipment and
    /// consumed stock named (empty ids: nothing of that kind to undo).
    fn cancelled(
        &self,
        transaction_id: &str,
        shipment_id: &str,
        reservation_id: &str,
        at_ms: i64,
    ) -> OrderEvent {
        OrderEvent::Cancelled(self.cancellation(transaction_id, shipment_id, reservation_id, at_ms))
    }

    fn cancellation(
        &self,
        transaction_id: &str,
        shipment_id: &str,
        reservation_id: &str,
        at_ms: i64,
    ) -> pb::OrderCancelled {
        let paid = !transaction_id.is_empty();
        pb::OrderCancelled {
            order_id: self.id().to_owned(),
            customer_id: self.customer_id().to_owned(),
            reason: self.cancellation_reason.clone(),
            lines: if paid {
                self.priced_lines()
            } else {
                Vec::new()
            },
            total_cents: if paid { self.total.get() } else { 0 },
            transaction_id: transaction_id.to_owned(),
            shipment_id: shipment_id.to_owned(),
            reservation_id: reservation_id.to_owned(),
            occurred_at_ms: at_ms,
        }
    }

    fn enter(&mut self, status: OrderStatus, at_ms: i64) {
        self.status = Some(status);
        self.history.push(StatusChange { status, at_ms });
    }
}

fn or_default(detail: &str, default: &str) -> String {
    if detail.trim().is_empty() {
        default.to_owned()
    } else {
        detail.to_owned()
    }
}

fn set_if_given(field: &mut String, value: &str) {
    if !value.is_empty() {
        value.clone_into(field);
    }
}

impl es_core::Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let status = match (self.status, command) {
            (
                None,
                OrderCommand::Place {
                    order_id,
                    customer_id,
                    cart,
                    at_ms,
                },
            ) => {
                return Ok(vec![OrderEvent::Placed(pb::OrderPlaced {
                    order_id: order_id.to_string(),
                    customer_id: customer_id.to_string(),
                    lines: cart
                        .lines()
                        .iter()
                        .map(|line| pb::OrderLine {
                            product_id: line.product_id.to_string(),
                            quantity: line.quantity.get(),
                        })
                        .collect(),
                    occurred_at_ms: *at_ms,
                })]);
            }
            (Some(_), OrderCommand::Place { .. }) => return Err(OrderError::AlreadyPlaced),
            (None, _) => return Err(OrderError::NotPlaced),
            (Some(status), _) => status,
        };
        match command {
            OrderCommand::Place { .. } => Err(OrderError::AlreadyPlaced),
            OrderCommand::React { input, at_ms } => self.react(status, input, *at_ms),
            OrderCommand::Cancel { reason, at_ms } => self.cancel(status, reason, *at_ms),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed(e) => {
                self.id = Some(OrderId::from_recorded(&e.order_id));
                self.customer_id = Some(CustomerId::from_recorded(&e.customer_id));
                self.lines = e
                    .lines
                    .iter()
                    .map(|line| OrderLine::recorded(&line.product_id, line.quantity, 0))
                    .collect();
            }
            OrderEvent::Priced(e) => {
                self.priced = true;
                self.lines = e
                    .lines
                    .iter()
                    .map(|line| {
                        OrderLine::recorded(&line.product_id, line.quantity, line.unit_price_cents)
                    })
                    .collect();
                self.items_price = Cents::from_recorded(e.items_price_cents);
                self.shipping_fee = Cents::from_recorded(e.shipping_fee_cents);
                self.total = Cents::from_recorded(e.total_cents);
            }
            OrderEvent::Rejected(e) => {
                self.rejection = Some(Rejection {
                    reason: RejectionReason::from_proto(e.reason),
                    detail: e.detail.clone(),
                    product_ids: e.product_ids.clone(),
                });
                set_if_given(&mut self.reservation_id, &e.reservation_id);
                set_if_given(&mut self.shipment_id, &e.shipment_id);
            }
            OrderEvent::Approved(e) => {
                set_if_given(&mut self.transaction_id, &e.transaction_id);
                set_if_given(&mut self.shipment_id, &e.shipment_id);
                set_if_given(&mut self.reservation_id, &e.reservation_id);
            }
            // A cancellation requested meanwhile was refused: the shipment
            // had left.
            OrderEvent::Completed(_) => self.cancellation_requested = false,
            OrderEvent::Cancelled(e) => {
                self.cancellation_reason.clone_from(&e.reason);
                self.cancelled_in_flight = self.status != Some(OrderStatus::Approved);
                self.cancellation_requested = false;
                set_if_given(&mut self.transaction_id, &e.transaction_id);
                set_if_given(&mut self.shipment_id, &e.shipment_id);
                set_if_given(&mut self.reservation_id, &e.reservation_id);
            }
            OrderEvent::CancellationRequested(e) => {
                self.cancellation_requested = true;
                self.cancellation_reason.clone_from(&e.reason);
            }
        }
        if let Some(status) = event.status_entered() {
            self.enter(status, event.occurred_at_ms());
        }
    }
}
