//! What es-core measures, recorded through the [`metrics`] facade (with the
//! `metrics` feature; without it every call here is a no-op).
//!
//! Names are `<prefix>_<name>`: the prefix is `es` unless the application
//! sets its own once at start-up with [`set_prefix`] (Stocklet uses
//! `stocklet`). Like the facade's recorder, the prefix is process-wide,
//! since a process exports one set of metrics.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `<prefix>_commands_total` | counter | `aggregate_type`, `outcome` |
//! | `<prefix>_command_duration_seconds` | histogram | `aggregate_type`, `outcome` |
//! | `<prefix>_consumer_pending` | gauge | `consumer` |
//! | `<prefix>_consumer_redeliveries_total` | counter | `consumer` |
//! | `<prefix>_dead_letters_total` | counter | `consumer` |
//! | `<prefix>_projection_lag_events` | gauge | `projection` |
//! | `<prefix>_projection_lag_seconds` | gauge | `projection` |

use std::sync::OnceLock;

static PREFIX: OnceLock<String> = OnceLock::new();

/// The prefix used when the application sets none.
pub const DEFAULT_PREFIX: &str = "es";

/// Sets the metric name prefix, once, before anything is recorded. Returns
/// `false` (and changes nothing) if a prefix was already in use.
pub fn set_prefix(prefix: impl Into<String>) -> bool {
    PREFIX.set(prefix.into()).is_ok()
}

/// The metric name prefix in use.
pub fn prefix() -> &'static str {
    PREFIX.get_or_init(|| DEFAULT_PREFIX.to_owned())
}

#[cfg(feature = "metrics")]
fn name(metric: &str) -> String {
    format!("{}_{metric}", prefix())
}

/// One command ran: its outcome and how long it took.
pub(crate) fn command(aggregate_type: &'static str, outcome: &'static str, seconds: f64) {
    #[cfg(feature = "metrics")]
    {
        ::metrics::counter!(name("commands_total"), "aggregate_type" => aggregate_type, "outcome" => outcome)
            .increment(1);
        ::metrics::histogram!(name("command_duration_seconds"), "aggregate_type" => aggregate_type, "outcome" => outcome)
            .record(seconds);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (aggregate_type, outcome, seconds);
}

/// A consumer got a delivery: what it still has to deliver after it, and
/// whether it is a redelivery.
pub(crate) fn delivery(consumer: &str, pending: u64, delivered: i64) {
    #[cfg(feature = "metrics")]
    {
        #[allow(clippy::cast_precision_loss)] // a gauge; precision past 2^53 is moot
        ::metrics::gauge!(name("consumer_pending"), "consumer" => consumer.to_owned())
            .set(pending as f64);
        if delivered > 1 {
            ::metrics::counter!(name("consumer_redeliveries_total"), "consumer" => consumer.to_owned())
                .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (consumer, pending, delivered);
}

/// A consumer gave up on an event and filed it as a dead letter.
pub(crate) fn dead_letter(consumer: &str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(name("dead_letters_total"), "consumer" => consumer.to_owned()).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = consumer;
}

/// A projection's lag after a batch: events still to deliver, and the age
/// of the newest event applied.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn projection_lag(projection: &str, pending: Option<u64>, age_seconds: Option<f64>) {
    #[cfg(feature = "metrics")]
    {
        if let Some(pending) = pending {
            #[allow(clippy::cast_precision_loss)] // a gauge; precision past 2^53 is moot
            ::metrics::gauge!(name("projection_lag_events"), "projection" => projection.to_owned())
                .set(pending as f64);
        }
        if let Some(age) = age_seconds {
            ::metrics::gauge!(name("projection_lag_seconds"), "projection" => projection.to_owned())
                .set(age);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (projection, pending, age_seconds);
}
