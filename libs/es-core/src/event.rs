//! Domain events: how an aggregate's events become bytes and come back.
//!
//! Events are protobuf messages. A service wraps its events in an enum and
//! implements [`DomainEvent`] for it (the [`domain_events!`](crate::domain_events)
//! macro writes that impl). Old payloads are upgraded on load by
//! [`Upcaster`]s, so the domain only ever sees the current schema.

use std::sync::Arc;

use bytes::Bytes;

/// An event as it sits in the store: a type name, a schema version and
/// protobuf bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// Full protobuf message name, e.g. `stocklet.events.v1.OrderPlaced`.
    pub event_type: String,
    /// Schema version of `payload`.
    pub schema_version: u32,
    /// Protobuf-encoded payload.
    pub payload: Bytes,
}

/// A payload that could not be turned into a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The event type is not one this aggregate knows.
    #[error("unknown event type {event_type} v{schema_version}")]
    UnknownType {
        /// The type name found in the store.
        event_type: String,
        /// Its schema version.
        schema_version: u32,
    },
    /// The bytes are not a valid message of the named type.
    #[error("malformed {event_type}: {reason}")]
    Malformed {
        /// The type name found in the store.
        event_type: String,
        /// What the decoder said.
        reason: String,
    },
    /// The message envelope (headers or batch wrapper) is broken.
    #[error("malformed envelope: {0}")]
    Envelope(String),
}

/// A domain event type: usually an enum with one variant per protobuf event.
pub trait DomainEvent: Sized + Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Every event type name this type decodes.
    fn event_types() -> &'static [&'static str];

    /// Full protobuf name of this event's payload.
    fn event_type(&self) -> &'static str;

    /// The schema version this code writes. Readers of older versions go
    /// through [`Upcaster`]s first.
    fn schema_version(&self) -> u32 {
        1
    }

    /// Encodes the payload as protobuf.
    fn encode(&self) -> Bytes;

    /// Decodes a payload of the current schema version.
    fn decode(event: &RawEvent) -> Result<Self, DecodeError>;

    /// Encodes into a [`RawEvent`].
    fn to_raw(&self) -> RawEvent {
        RawEvent {
            event_type: self.event_type().to_owned(),
            schema_version: self.schema_version(),
            payload: self.encode(),
        }
    }
}

/// The events a projection or a reaction handles, decoded from the stream.
///
/// A handler declares its event type once; the consumer then skips (and
/// acknowledges) every event of another type and hands the handler only
/// decoded events. Every [`DomainEvent`] is an `EventSet` of its own
/// types, so a service can declare the outside events it reacts to as a
/// [`domain_events!`](crate::domain_events) enum. [`RawEvent`] is the set
/// of every event, undecoded, for handlers that read any type (an audit
/// log, a timeline).
pub trait EventSet: Sized + Send + Sync + 'static {
    /// The event types wanted, or `None` for every type.
    fn wanted_types() -> Option<&'static [&'static str]>;

    /// Decodes one stored event of a wanted type.
    fn decode_stored(raw: &RawEvent) -> Result<Self, DecodeError>;
}

impl<E: DomainEvent> EventSet for E {
    fn wanted_types() -> Option<&'static [&'static str]> {
        Some(E::event_types())
    }

    fn decode_stored(raw: &RawEvent) -> Result<Self, DecodeError> {
        E::decode(raw)
    }
}

impl EventSet for RawEvent {
    fn wanted_types() -> Option<&'static [&'static str]> {
        None
    }

    fn decode_stored(raw: &RawEvent) -> Result<Self, DecodeError> {
        Ok(raw.clone())
    }
}

/// Upgrades one stored (type, version) to the next version.
///
/// Return `Ok(None)` for events this upcaster does not handle. An upcaster
/// must raise `schema_version` (or change `event_type`), otherwise
/// [`Upcasters::apply`] would loop; it stops after a bounded number of steps.
pub trait Upcaster: Send + Sync {
    /// Upgrades `event` if it is an old version this upcaster knows.
    fn upcast(&self, event: &RawEvent) -> Result<Option<RawEvent>, DecodeError>;
}

impl<F> Upcaster for F
where
    F: Fn(&RawEvent) -> Result<Option<RawEvent>, DecodeError> + Send + Sync,
{
    fn upcast(&self, event: &RawEvent) -> Result<Option<RawEvent>, DecodeError> {
        self(event)
    }
}

/// An ordered chain of upcasters, applied on every load.
///
/// Most upcasters upgrade a (type, version) wherever it is stored
/// ([`with`](Self::with)). Some old events meant one thing on one aggregate
/// type and another elsewhere (a type that two aggregates wrote, whose
/// meaning on one of them moved to a new type): such an upcaster is
/// registered for that aggregate type only
/// ([`with_for_aggregate`](Self::with_for_aggregate)), and the others'
/// events of the same type pass untouched. Every reader applies the chain
/// with the aggregate type of the event it read ([`apply`](Self::apply)).
#[derive(Clone, Default)]
pub struct Upcasters(Vec<Registered>);

/// One upcaster of the chain, and the aggregate type it is confined to.
#[derive(Clone)]
struct Registered {
    aggregate_type: Option<Arc<str>>,
    upcaster: Arc<dyn Upcaster>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upcasters({})", self.0.len())
    }
}

/// Most version hops one event may take on load before we call it a loop.
const MAX_UPCAST_STEPS: usize = 32;

impl Upcasters {
    /// Adds an upcaster to the chain, for events of every aggregate type.
    pub fn with(mut self, upcaster: impl Upcaster + 'static) -> Self {
        self.0.push(Registered {
            aggregate_type: None,
            upcaster: Arc::new(upcaster),
        });
        self
    }

    /// Adds an upcaster to the chain that sees only the events stored by
    /// aggregates of `aggregate_type` (their `Aggregate-Type` header).
    pub fn with_for_aggregate(
        mut self,
        aggregate_type: &str,
        upcaster: impl Upcaster + 'static,
    ) -> Self {
        self.0.push(Registered {
            aggregate_type: Some(aggregate_type.into()),
            upcaster: Arc::new(upcaster),
        });
        self
    }

    /// Whether the chain has no upcaster.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Upgrades an event that an aggregate of `aggregate_type` stored until
    /// no upcaster applies any more.
    pub fn apply(
        &self,
        aggregate_type: &str,
        mut event: RawEvent,
    ) -> Result<RawEvent, DecodeError> {
        for _ in 0..MAX_UPCAST_STEPS {
            let next = self
                .0
                .iter()
                .filter(|registered| {
                    registered
                        .aggregate_type
                        .as_deref()
                        .is_none_or(|only| only == aggregate_type)
                })
                .find_map(|registered| registered.upcaster.upcast(&event).transpose())
                .transpose()?;
            match next {
                Some(upgraded) => event = upgraded,
                None => return Ok(event),
            }
        }
        Err(DecodeError::Malformed {
            event_type: event.event_type,
            reason: format!(
                "more than {MAX_UPCAST_STEPS} upcasting steps; is an upcaster looping?"
            ),
        })
    }
}

/// Implements [`DomainEvent`] for an enum whose variants each wrap one
/// prost message that implements [`prost::Name`] (generated with type names).
/// The event type is the message's full protobuf name. A variant whose
/// schema has moved on names its current version after `@`; older stored
/// versions must be upgraded by an [`Upcaster`] before they decode.
///
/// The macro writes the enum (deriving `Clone`, `Debug` and `PartialEq`,
/// plus any attributes given), its [`DomainEvent`] impl and a `From` impl
/// per message, so `Deposited { .. }.into()` is an `AccountEvent`. Variants
/// may carry `///` docs and other attributes.
///
/// Each message needs [`prost::Name`]: generate it with prost-build's
/// `Config::enable_type_names()`, or write it by hand as here.
///
/// ```
/// use es_core::{DomainEvent, RawEvent};
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// pub struct AccountOpened {
///     #[prost(string, tag = "1")]
///     pub owner: String,
/// }
///
/// impl prost::Name for AccountOpened {
///     const NAME: &'static str = "AccountOpened";
///     const PACKAGE: &'static str = "bank.v1";
/// }
///
/// #[derive(Clone, PartialEq, prost::Message)]
/// pub struct Deposited {
///     #[prost(int64, tag = "1")]
///     pub amount_cents: i64,
/// }
///
/// impl prost::Name for Deposited {
///     const NAME: &'static str = "Deposited";
///     const PACKAGE: &'static str = "bank.v1";
/// }
///
/// es_core::domain_events! {
///     /// What happens to a bank account.
///     pub enum AccountEvent {
///         /// The account exists from now on.
///         Opened(AccountOpened),
///         /// Money came in; schema version 2 (v1 counted whole units).
///         Deposited(Deposited) @ 2,
///     }
/// }
///
/// let event: AccountEvent = Deposited { amount_cents: 250 }.into();
/// assert_eq!(event.event_type(), "bank.v1.Deposited");
/// assert_eq!(event.schema_version(), 2);
/// assert_eq!(
///     AccountEvent::event_types(),
///     ["bank.v1.AccountOpened", "bank.v1.Deposited"]
/// );
///
/// // What the store keeps, and back.
/// let raw: RawEvent = event.to_raw();
/// assert_eq!(AccountEvent::decode(&raw), Ok(event));
///
/// // A stored v1 payload does not decode as v2: an `Upcaster` must
/// // upgrade it first.
/// let v1 = RawEvent { schema_version: 1, ..raw };
/// assert!(AccountEvent::decode(&v1).is_err());
/// ```
#[macro_export]
macro_rules! domain_events {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$variant_meta:meta])* $variant:ident($ty:ty) $(@ $version:literal)?),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        $vis enum $name { $($(#[$variant_meta])* $variant($ty)),+ }

        impl $name {
            #[allow(irrefutable_let_patterns)] // a one-variant enum
            fn variant_index(&self) -> usize {
                let mut index = 0usize;
                $(
                    if let Self::$variant(_) = self {
                        return index;
                    }
                    index += 1;
                )+
                index
            }
        }

        impl $crate::event::DomainEvent for $name {
            /// Every event type name this enum decodes, in declaration order.
            fn event_types() -> &'static [&'static str] {
                static NAMES: ::std::sync::OnceLock<::std::vec::Vec<&'static str>> =
                    ::std::sync::OnceLock::new();
                NAMES.get_or_init(|| {
                    ::std::vec![$($crate::event::type_name::<$ty>()),+]
                })
            }

            fn event_type(&self) -> &'static str {
                <Self as $crate::event::DomainEvent>::event_types()[self.variant_index()]
            }

            fn schema_version(&self) -> u32 {
                match self {
                    $(Self::$variant(_) => $crate::__schema_version!($($version)?)),+
                }
            }

            fn encode(&self) -> $crate::bytes::Bytes {
                match self {
                    $(Self::$variant(event) => $crate::prost::Message::encode_to_vec(event).into()),+
                }
            }

            fn decode(raw: &$crate::event::RawEvent) -> Result<Self, $crate::event::DecodeError> {
                let mut index = 0usize;
                $(
                    if raw.event_type == <Self as $crate::event::DomainEvent>::event_types()[index]
                        && raw.schema_version == $crate::__schema_version!($($version)?)
                    {
                        return <$ty as $crate::prost::Message>::decode(raw.payload.clone())
                            .map(Self::$variant)
                            .map_err(|e| $crate::event::DecodeError::Malformed {
                                event_type: raw.event_type.clone(),
                                reason: e.to_string(),
                            });
                    }
                    index += 1;
                )+
                let _ = index;
                Err($crate::event::DecodeError::UnknownType {
                    event_type: raw.event_type.clone(),
                    schema_version: raw.schema_version,
                })
            }
        }

        $(
            impl From<$ty> for $name {
                fn from(event: $ty) -> Self {
                    Self::$variant(event)
                }
            }
        )+
    };
}

/// The schema version of a `domain_events!` variant: the one given, else 1.
#[doc(hidden)]
#[macro_export]
macro_rules! __schema_version {
    () => {
        1
    };
    ($version:literal) => {
        $version
    };
}

/// The full protobuf name of a message, leaked once per type so event types
/// compare as `&'static str` without allocating on the hot path.
#[doc(hidden)]
pub fn type_name<T: prost::Name>() -> &'static str {
    Box::leak(T::full_name().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(version: u32, payload: &'static [u8]) -> RawEvent {
        RawEvent {
            event_type: "test.Thing".into(),
            schema_version: version,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn upcasters_chain_until_current() {
        let chain = Upcasters::default()
            .with(|e: &RawEvent| {
                Ok((e.schema_version == 1).then(|| RawEvent {
                    schema_version: 2,
                    payload: Bytes::from_static(b"v2"),
                    ..e.clone()
                }))
            })
            .with(|e: &RawEvent| {
                Ok((e.schema_version == 2).then(|| RawEvent {
                    schema_version: 3,
                    payload: Bytes::from_static(b"v3"),
                    ..e.clone()
                }))
            });
        assert_eq!(chain.apply("thing", raw(1, b"v1")).unwrap(), raw(3, b"v3"));
        assert_eq!(chain.apply("thing", raw(3, b"v3")).unwrap(), raw(3, b"v3"));
    }

    #[test]
    fn a_looping_upcaster_is_an_error_not_a_hang() {
        let chain = Upcasters::default().with(|e: &RawEvent| Ok(Some(e.clone())));
        assert!(matches!(
            chain.apply("thing", raw(1, b"")),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn an_upcaster_for_one_aggregate_type_leaves_the_others_events_alone() {
        // `test.Thing` v1 on a `widget` became `test.Part`; on a `gadget`
        // it still means what it meant.
        let chain = Upcasters::default().with_for_aggregate("widget", |e: &RawEvent| {
            Ok((e.event_type == "test.Thing").then(|| RawEvent {
                event_type: "test.Part".into(),
                ..e.clone()
            }))
        });
        let part = RawEvent {
            event_type: "test.Part".into(),
            ..raw(1, b"x")
        };
        assert_eq!(chain.apply("widget", raw(1, b"x")).unwrap(), part);
        assert_eq!(chain.apply("gadget", raw(1, b"x")).unwrap(), raw(1, b"x"));
        assert!(!chain.is_empty());
        assert!(Upcasters::default().is_empty());
    }
}
