//! The value types every Stocklet context shares: money in whole cents,
//! quantities of units, ids, email addresses, and passwords with their
//! hashes.
//!
//! Why a crate of its own: the same ideas were written out once per service
//! (three `Cents`, two `Quantity`, email normalisation in two places, two
//! `Password` and `PasswordHash`), each
//! copy with its own bounds and error texts, and aggregates kept the raw
//! `i64` and `String` that the API had already parsed. Here each idea is
//! written once, with private fields and a `parse` constructor ("parse,
//! don't validate"): once a value exists it holds its invariant, so the
//! aggregates keep these types in their state and not only at the API.
//!
//! What is a context's own rule stays in that context and is built on top
//! of these types: an order line holds at most 100 units, a price at most
//! [`Cents::MAX`], a top-up at most what payment allows. The bounded
//! constructors ([`Cents::parse_at_most`], [`Quantity::parse_at_most`]) say
//! so in the error they return.
//!
//! Protobuf events keep their raw `int64` and `string` fields: conversion
//! happens at the edges (a command's parse, an aggregate's `apply`). Folding
//! a recorded event cannot fail, so each type also has `from_recorded`, for
//! values this system recorded after parsing them: see each type for what
//! it does with a record that breaks the invariant.
//!
//! Pure: no I/O, no dependency but `thiserror`, `uuid` and
//! `unicode-normalization` (the password policy compares NFC forms).

mod cents;
mod email;
mod id;
mod password;
mod quantity;

pub use cents::{Cents, InvalidCents};
pub use email::{Email, InvalidEmail, normalise_email};
pub use id::{CustomerId, InvalidId, OrderId, ProductId};
pub use password::{InvalidPassword, Password, PasswordAttempt, PasswordHash, is_common_password};
pub use quantity::{InvalidQuantity, Quantity};
