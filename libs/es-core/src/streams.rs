//! Stream definitions and idempotent provisioning.
//!
//! An event-sourced stream is not any JetStream stream: history must never
//! be dropped (no limits, no deletes, no purges), loads read it by direct
//! get (`allow_direct`), and the dedupe window must be on. A
//! [`StreamDefinition`] holds a stream's configuration and checks those
//! rules once, when it is made, so a stream that would fail at its first
//! load is refused at start-up instead.
//!
//! Make one in code with [`StreamDefinition::new`] (the rules above as
//! defaults), or from JetStream-format JSON with
//! [`StreamDefinition::from_json`], so that operators can read (and apply
//! with the `nats` CLI) the same file the application provisions from. The
//! application owns its definitions and passes them in; this crate ships
//! none. Provisioning is create-or-update, so it is safe to run on every
//! start and from several instances at once.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::store::StreamRef;

/// Why a stream could not be provisioned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// The definition does not parse or breaks a rule of event-sourced
    /// streams.
    #[error("invalid stream definition: {0}")]
    Definition(String),
    /// The stream does not exist, or not as defined, and the caller only
    /// looks streams up (it may not create or update them).
    #[error("stream {stream} is not provisioned: {reason}")]
    NotProvisioned {
        /// The stream's name.
        stream: String,
        /// What is missing or different.
        reason: String,
    },
    /// The server refused or could not be reached.
    #[error("provisioning stream {stream}: {reason}")]
    Server {
        /// The stream's name.
        stream: String,
        /// What went wrong.
        reason: String,
    },
}

/// The duplicate window [`StreamDefinition::new`] gives a stream.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A stream's configuration, checked against the rules of event-sourced
/// streams (see the module docs).
#[derive(Clone, Debug)]
pub struct StreamDefinition {
    config: stream::Config,
}

impl StreamDefinition {
    /// An event-sourced stream named `name` that captures
    /// `<subject_prefix>.>`: file storage, no limits, deletes and purges
    /// denied, direct get and atomic batches allowed, a two-minute
    /// duplicate window, one replica.
    ///
    /// ```
    /// use es_core::streams::StreamDefinition;
    ///
    /// let bank = StreamDefinition::new("BANK", "bank").with_replicas(3);
    /// assert_eq!(bank.stream_ref().subject("account", "42"), "bank.account.42");
    /// assert_eq!(bank.config().num_replicas, 3);
    /// ```
    pub fn new(name: impl Into<String>, subject_prefix: &str) -> Self {
        let name = name.into();
        Self {
            config: stream::Config {
                description: Some(format!(
                    "Event history: one subject per aggregate, {subject_prefix}.<aggregate>.<id>"
                )),
                subjects: vec![format!("{subject_prefix}.>")],
                name,
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                num_replicas: 1,
                discard: stream::DiscardPolicy::Old,
                max_messages: -1,
                max_bytes: -1,
                max_age: Duration::ZERO,
                max_messages_per_subject: -1,
                max_message_size: -1,
                duplicate_window: DEFAULT_DUPLICATE_WINDOW,
                deny_delete: true,
                deny_purge: true,
                allow_direct: true,
                allow_atomic_publish: true,
                ..Default::default()
            },
        }
    }

    /// Parses a JetStream-format JSON definition and checks it.
    pub fn from_json(json: &str) -> Result<Self, ProvisionError> {
        let config: stream::Config =
            serde_json::from_str(json).map_err(|e| ProvisionError::Definition(e.to_string()))?;
        Self::from_config(config)
    }

    /// Takes a JetStream configuration and checks it.
    ///
    /// A stream must capture exactly one `<prefix>.>` subject and allow
    /// direct get (loads use it). It is not required to deny deletes or to
    /// allow atomic batches (a dead-letter stream does neither), but
    /// [`EventStore::append_atomic`](crate::EventStore::append_atomic) fails
    /// on a stream without `allow_atomic`.
    pub fn from_config(config: stream::Config) -> Result<Self, ProvisionError> {
        if config.subjects.len() != 1 || !config.subjects[0].ends_with(".>") {
            return Err(ProvisionError::Definition(format!(
                "stream {} must capture exactly one `<prefix>.>` subject",
                config.name
            )));
        }
        if !config.allow_direct {
            return Err(ProvisionError::Definition(format!(
                "stream {} must set allow_direct: aggregates are loaded by direct get",
                config.name
            )));
        }
        Ok(Self { config })
    }

    /// The same stream with `replicas` copies (3 on a cluster).
    #[must_use]
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.config.num_replicas = replicas.max(1);
        self
    }

    /// The same stream with another duplicate window (tests shorten it).
    #[must_use]
    pub fn with_duplicate_window(mut self, window: Duration) -> Self {
        self.config.duplicate_window = window;
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.config.name
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

    /// The configuration, for definitions this crate derives (the
    /// dead-letter stream); the rules checked in `from_config` still hold.
    pub(crate) fn config_mut(&mut self) -> &mut stream::Config {
        &mut self.config
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

    /// Looks the stream up without changing it: for a process that may use
    /// a stream but not create or update it (on a server with per-user
    /// permissions, only a provisioning user may). The stream must exist and
    /// agree with this definition on what the event store relies on: its
    /// subjects, direct get and atomic batch publish.
    pub async fn lookup(&self, context: &jetstream::Context) -> Result<StreamRef, ProvisionError> {
        let name = &self.config.name;
        let not_provisioned = |reason: String| ProvisionError::NotProvisioned {
            stream: name.clone(),
            reason,
        };
        let stream = match context.get_stream(name).await {
            Ok(stream) => stream,
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(_)
                ) =>
            {
                return Err(not_provisioned(format!("the server answered: {error}")));
            }
            Err(error) => {
                return Err(ProvisionError::Server {
                    stream: name.clone(),
                    reason: error.to_string(),
                });
            }
        };
        let found = &stream.cached_info().config;
        if found.subjects != self.config.subjects {
            return Err(not_provisioned(format!(
                "it captures {:?}, the definition {:?}",
                found.subjects, self.config.subjects
            )));
        }
        if self.config.allow_direct && !found.allow_direct {
            return Err(not_provisioned("direct get is off".to_owned()));
        }
        if self.config.allow_atomic_publish && !found.allow_atomic_publish {
            return Err(not_provisioned("atomic batch publish is off".to_owned()));
        }
        Ok(self.stream_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_definitions_keep_history_forever() {
        let definition = StreamDefinition::new("BANK", "bank");
        let config = definition.config();
        assert!(config.deny_delete && config.deny_purge);
        assert!(config.allow_direct && config.allow_atomic_publish);
        assert_eq!(config.storage, stream::StorageType::File);
        assert_eq!(config.max_messages, -1);
        assert_eq!(config.max_bytes, -1);
        assert_eq!(config.max_messages_per_subject, -1);
        assert!(config.max_age.is_zero());
        assert_eq!(config.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
        assert_eq!(definition.stream_ref(), StreamRef::new("BANK", "bank"));
        // The definition survives a round trip through JSON.
        let json = serde_json::to_string(config).unwrap();
        let again = StreamDefinition::from_json(&json).unwrap();
        assert_eq!(again.config().subjects, config.subjects);
    }

    #[test]
    fn a_stream_without_direct_get_is_refused() {
        let mut config = StreamDefinition::new("BANK", "bank").config().clone();
        config.allow_direct = false;
        let error = StreamDefinition::from_config(config).unwrap_err();
        assert!(error.to_string().contains("allow_direct"), "{error}");
    }

    #[test]
    fn a_stream_must_capture_one_prefix() {
        let mut config = StreamDefinition::new("BANK", "bank").config().clone();
        config.subjects = vec!["bank.account".into()];
        assert!(StreamDefinition::from_config(config.clone()).is_err());
        config.subjects = vec!["a.>".into(), "b.>".into()];
        assert!(StreamDefinition::from_config(config).is_err());
    }
}
