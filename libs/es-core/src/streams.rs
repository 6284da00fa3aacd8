//! Stream definitions and idempotent provisioning.
//!
//! The stream configs live as JetStream-format JSON in `nats/streams/`, the
//! one place an operator reads them (and could apply them with the `nats`
//! CLI). They are compiled into the binaries, and each service provisions its
//! own streams at start-up, which replaces the original's init container.
//! Provisioning is create-or-update, so it is safe to run on every start and
//! from several instances at once.

use async_nats::jetstream::{self, stream};

use crate::store::StreamRef;

/// The stream definitions shipped in `nats/streams/`, by bounded context.
pub mod definitions {
    /// `AUTH`: credentials.
    pub const AUTH: &str = include_str!("../../../nats/streams/auth.json");
    /// `USER`: users and email claims.
    pub const USER: &str = include_str!("../../../nats/streams/user.json");
    /// `PRODUCT`: the catalogue and price quotes.
    pub const PRODUCT: &str = include_str!("../../../nats/streams/product.json");
    /// `WAREHOUSE`: stock and reservations.
    pub const WAREHOUSE: &str = include_str!("../../../nats/streams/warehouse.json");
    /// `ORDER`: orders.
    pub const ORDER: &str = include_str!("../../../nats/streams/order.json");
    /// `PAYMENT`: balances and transactions.
    pub const PAYMENT: &str = include_str!("../../../nats/streams/payment.json");
    /// `SHIPPING`: shipments.
    pub const SHIPPING: &str = include_str!("../../../nats/streams/shipping.json");
    /// `DEADLETTER`: events consumers gave up on.
    pub const DEADLETTER: &str = include_str!("../../../nats/streams/deadletter.json");
}

/// Why a stream could not be provisioned.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The JSON definition does not parse.
    #[error("invalid stream definition: {0}")]
    Definition(String),
    /// The server refused or could not be reached.
    #[error("provisioning stream {stream}: {reason}")]
    Server {
        /// The stream's name.
        stream: String,
        /// What went wrong.
        reason: String,
    },
}

/// A stream's configuration, as read from its JSON definition.
#[derive(Clone, Debug)]
pub struct StreamDefinition {
    config: stream::Config,
}

impl StreamDefinition {
    /// Parses a JetStream-format JSON definition.
    pub fn from_json(json: &str) -> Result<Self, ProvisionError> {
        let config: stream::Config =
            serde_json::from_str(json).map_err(|e| ProvisionError::Definition(e.to_string()))?;
        if config.subjects.len() != 1 || !config.subjects[0].ends_with(".>") {
            return Err(ProvisionError::Definition(format!(
                "stream {} must capture exactly one `<prefix>.>` subject",
                config.name
            )));
        }
        Ok(Self { config })
    }

    /// The same stream with `replicas` copies (3 on a cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.config.num_replicas = replicas.max(1);
        self
    }

    /// The same stream with another duplicate window (tests shorten it).
    pub fn with_duplicate_window(mut self, window: std::time::Duration) -> Self {
        self.config.duplicate_window = window;
        self
    }

    /// The stream's name and subject prefix.
    pub fn stream_ref(&self) -> StreamRef {
        let prefix = self.config.subjects[0].trim_end_matches(".>");
        StreamRef::new(self.config.name.clone(), prefix)
    }

    /// The full JetStream configuration.
    pub fn config(&self) -> &stream::Config {
        &self.config
    }

    /// Creates the stream, or updates it to this definition.
    pub async fn ensure(&self, context: &jetstream::Context) -> Result<StreamRef, ProvisionError> {
        context
            .create_or_update_stream(self.config.clone())
            .await
            .map_err(|e| ProvisionError::Server {
                stream: self.config.name.clone(),
                reason: e.to_string(),
            })?;
        Ok(self.stream_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_definition_is_immutable_history() {
        for json in [
            definitions::AUTH,
            definitions::USER,
            definitions::PRODUCT,
            definitions::WAREHOUSE,
            definitions::ORDER,
            definitions::PAYMENT,
            definitions::SHIPPING,
        ] {
            let definition = StreamDefinition::from_json(json).unwrap();
            let config = definition.config();
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
        let dead = StreamDefinition::from_json(definitions::DEADLETTER).unwrap();
        assert_eq!(dead.stream_ref().subject_prefix, "deadletter");
    }
}
