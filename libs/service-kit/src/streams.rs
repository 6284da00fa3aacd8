//! Stocklet's streams: one per bounded context, plus the dead-letter stream.
//!
//! The configs live as JetStream-format JSON in `nats/streams/`, the one
//! place an operator reads them (and could apply them with the `nats` CLI).
//! They are compiled in here, not in es-core, which ships no definitions of
//! its own: the application passes its streams in. A service names the
//! streams it owns and consumes by these constants, so a misspelt stream is
//! a compile error, not a start-up failure.

use es_core::streams::{ProvisionError, StreamDefinition};

/// One of Stocklet's streams: its name and its shipped JSON definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The JetStream stream name, e.g. `ORDER`.
    pub name: &'static str,
    json: &'static str,
}

impl Stream {
    /// The parsed and checked definition.
    pub fn definition(&self) -> Result<StreamDefinition, ProvisionError> {
        StreamDefinition::from_json(self.json)
    }

    /// The stream's name and subject prefix.
    ///
    /// # Panics
    /// Never for the shipped streams: a test parses every one of them.
    #[allow(clippy::expect_used)] // compiled-in constants, checked by a test
    pub fn stream_ref(&self) -> es_core::StreamRef {
        self.definition()
            .expect("shipped stream definitions parse")
            .stream_ref()
    }
}

/// `AUTH`: credentials.
pub const AUTH: Stream = Stream {
    name: "AUTH",
    json: include_str!("../../../nats/streams/auth.json"),
};
/// `USER`: users and email claims.
pub const USER: Stream = Stream {
    name: "USER",
    json: include_str!("../../../nats/streams/user.json"),
};
/// `PRODUCT`: the catalogue and price quotes.
pub const PRODUCT: Stream = Stream {
    name: "PRODUCT",
    json: include_str!("../../../nats/streams/product.json"),
};
/// `WAREHOUSE`: stock and reservations.
pub const WAREHOUSE: Stream = Stream {
    name: "WAREHOUSE",
    json: include_str!("../../../nats/streams/warehouse.json"),
};
/// `ORDER`: orders.
pub const ORDER: Stream = Stream {
    name: "ORDER",
    json: include_str!("../../../nats/streams/order.json"),
};
/// `PAYMENT`: balances and transactions.
pub const PAYMENT: Stream = Stream {
    name: "PAYMENT",
    json: include_str!("../../../nats/streams/payment.json"),
};
/// `SHIPPING`: shipments.
pub const SHIPPING: Stream = Stream {
    name: "SHIPPING",
    json: include_str!("../../../nats/streams/shipping.json"),
};
/// `DEADLETTER`: events consumers gave up on.
pub const DEADLETTER: Stream = Stream {
    name: "DEADLETTER",
    json: include_str!("../../../nats/streams/deadletter.json"),
};

/// The streams of the bounded contexts (every stream but the dead letters).
pub const EVENT_STREAMS: [Stream; 7] = [AUTH, USER, PRODUCT, WAREHOUSE, ORDER, PAYMENT, SHIPPING];

/// The streams outside subscribers may read: every event stream but AUTH,
/// which holds credentials and password hashes (docs/events.md, "Which
/// streams are public").
pub const PUBLIC_STREAMS: [Stream; 6] = [USER, PRODUCT, WAREHOUSE, ORDER, PAYMENT, SHIPPING];

#[cfg(test)]
mod tests {
    use async_nats::jetstream::stream;

    use super::*;

    #[test]
    fn every_shipped_definition_is_immutable_history() {
        for shipped in EVENT_STREAMS {
            let definition = shipped.definition().unwrap();
            let config = definition.config();
            assert_eq!(config.name, shipped.name);
            assert!(config.deny_delete && config.deny_purge, "{}", config.name);
            assert!(
                config.allow_direct && config.allow_atomic_publish,
                "{}",
                config.name
            );
            assert_eq!(config.storage, stream::StorageType::File, "{}", config.name);
            assert_eq!(config.max_messages, -1, "{}", config.name);
            assert_eq!(config.max_bytes, -1, "{}", config.name);
            assert_eq!(config.max_messages_per_subject, -1, "{}", config.name);
            assert!(config.max_age.is_zero(), "{}", config.name);
            assert!(!config.duplicate_window.is_zero(), "{}", config.name);
            let stream = definition.stream_ref();
            assert_eq!(stream.name, stream.subject_prefix.to_uppercase());
        }
        let dead = DEADLETTER.definition().unwrap();
        assert_eq!(dead.name(), DEADLETTER.name);
        assert_eq!(
            dead.stream_ref().subject_prefix,
            crate::lifecycle::conventions().dead_letter_prefix()
        );
    }
}
