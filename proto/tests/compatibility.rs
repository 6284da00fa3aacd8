//! Schema evolution as a checked rule, in the spirit of `buf breaking`:
//! the current descriptors are compared with the committed baseline
//! (`proto/baseline.txt`, one line per message field, enum value and
//! method), and a breaking change fails the build unless the baseline is
//! updated on purpose in the same commit.
//!
//! Breaking, for clients that hold old code or stored events:
//! - a message, enum, service or method removed or renamed;
//! - a field removed or renumbered without being `reserved`, or its name
//!   (the JSON name), type, message/enum type or cardinality changed;
//! - an enum value removed or renamed;
//! - a method's request or response type changed.
//!
//! Adding messages, fields, enum values, services and methods is not
//! breaking. `UPDATE_PROTO_BASELINE=1 cargo test -p stocklet-proto --test
//! compatibility` (or `make proto-baseline`) rewrites the baseline after a
//! deliberate change; review its diff like code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::Label;
use prost_types::{DescriptorProto, FileDescriptorSet};

const BASELINE: &str = "baseline.txt";

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(BASELINE)
}

/// The contract of a descriptor set: element → what must not change,
/// keyed so that removal shows as a missing key. Reserved field numbers
/// and names are kept apart: removing a field whose number is reserved is
/// allowed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Contract {
    elements: BTreeMap<String, String>,
    reserved: BTreeSet<String>,
}

fn contract(set: &FileDescriptorSet) -> Contract {
    let mut out = Contract::default();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("stocklet.") {
            continue;
        }
        for message in &file.message_type {
            walk(&format!("{package}.{}", message.name()), message, &mut out);
        }
        for enumeration in &file.enum_type {
            enum_lines(
                &format!("{package}.{}", enumeration.name()),
                enumeration,
                &mut out,
            );
        }
        for service in &file.service {
            let name = format!("{package}.{}", service.name());
            out.elements
                .insert(format!("service {name}"), String::new());
            for method in &service.method {
                out.elements.insert(
                    format!("method {name}.{}", method.name()),
                    format!("{} -> {}", method.input_type(), method.output_type()),
                );
            }
        }
    }
    out
}

fn walk(name: &str, message: &DescriptorProto, out: &mut Contract) {
    out.elements
        .insert(format!("message {name}"), String::new());
    for field in &message.field {
        let cardinality = match field.label() {
            Label::Repeated => "repeated",
            _ if field.proto3_optional() => "optional",
            _ => "singular",
        };
        let kind = if field.type_name().is_empty() {
            format!("{:?}", field.r#type())
        } else {
            field.type_name().to_owned()
        };
        out.elements.insert(
            format!("field {name} #{}", field.number()),
            format!("{} {cardinality} {kind}", field.name()),
        );
    }
    for range in &message.reserved_range {
        for number in range.start.unwrap_or(0)..range.end.unwrap_or(0) {
            out.reserved.insert(format!("field {name} #{number}"));
        }
    }
    for nested in &message.nested_type {
        // Map entries are part of their field's type.
        if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        walk(&format!("{name}.{}", nested.name()), nested, out);
    }
    for enumeration in &message.enum_type {
        enum_lines(&format!("{name}.{}", enumeration.name()), enumeration, out);
    }
}

fn enum_lines(name: &str, enumeration: &prost_types::EnumDescriptorProto, out: &mut Contract) {
    out.elements.insert(format!("enum {name}"), String::new());
    for value in &enumeration.value {
        out.elements.insert(
            format!("value {name} #{}", value.number()),
            value.name().to_owned(),
        );
    }
}

/// The breaking changes from `old` to `new`, one line each.
fn breaking(old: &Contract, new: &Contract) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, was) in &old.elements {
        match new.elements.get(key) {
            None if key.starts_with("field ") && new.reserved.contains(key) => {}
            None => problems.push(format!("{key} ({was}) was removed")),
            Some(now) if now != was => problems.push(format!("{key} changed: {was} -> {now}")),
            Some(_) => {}
        }
    }
    problems
}

fn render(contract: &Contract) -> String {
    let mut out = String::from(
        "# The proto contract baseline: see proto/tests/compatibility.rs.\n\
         # Regenerate with `make proto-baseline` after a deliberate change.\n",
    );
    for (key, value) in &contract.elements {
        if value.is_empty() {
            out.push_str(&format!("{key}\n"));
        } else {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    for key in &contract.reserved {
        out.push_str(&format!("reserved {key}\n"));
    }
    out
}

fn parse(text: &str) -> Contract {
    let mut contract = Contract::default();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some(key) = line.strip_prefix("reserved ") {
            contract.reserved.insert(key.to_owned());
        } else if let Some((key, value)) = line.split_once(" = ") {
            contract.elements.insert(key.to_owned(), value.to_owned());
        } else {
            contract.elements.insert(line.to_owned(), String::new());
        }
    }
    contract
}

fn current() -> FileDescriptorSet {
    FileDescriptorSet::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap()
}

#[test]
fn the_proto_contract_has_no_breaking_change_against_its_baseline() {
    let now = contract(&current());
    if std::env::var_os("UPDATE_PROTO_BASELINE").is_some() {
        std::fs::write(baseline_path(), render(&now)).unwrap();
        return;
    }
    let text = std::fs::read_to_string(baseline_path()).unwrap_or_else(|e| {
        panic!("cannot read proto/{BASELINE} ({e}); create it with `make proto-baseline`")
    });
    let problems = breaking(&parse(&text), &now);
    assert!(
        problems.is_empty(),
        "breaking changes to the proto contract:\n  {}\n\
         If this is deliberate (a new major version, or nothing outside uses it yet), \
         update the baseline with `make proto-baseline` in the same commit.",
        problems.join("\n  ")
    );
    // Additions are allowed, but the baseline must name them, so that the
    // next change is checked against them too.
    let added: Vec<&String> = now
        .elements
        .keys()
        .filter(|key| !parse(&text).elements.contains_key(*key))
        .collect();
    assert!(
        added.is_empty(),
        "proto/{BASELINE} lacks {} new elements (first: {:?}); run `make proto-baseline`",
        added.len(),
        added.first()
    );
}

#[test]
fn deliberately_broken_protos_are_caught() {
    let old = contract(&current());
    let event = |set: &mut FileDescriptorSet, name: &str| -> (usize, usize) {
        for (f, file) in set.file.iter().enumerate() {
            if file.package() != "stocklet.events.v1" {
                continue;
            }
            if let Some(m) = file.message_type.iter().position(|m| m.name() == name) {
                return (f, m);
            }
        }
        panic!("no event {name}");
    };

    // A field removed.
    let mut set = current();
    let (f, m) = event(&mut set, "OrderPlaced");
    set.file[f].message_type[m]
        .field
        .retain(|field| field.name() != "customer_id");
    let problems = breaking(&old, &contract(&set));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("OrderPlaced #2") && p.contains("removed")),
        "{problems:?}"
    );

    // ... unless its number is reserved.
    let mut set = current();
    let (f, m) = event(&mut set, "OrderPlaced");
    let message = &mut set.file[f].message_type[m];
    message.field.retain(|field| field.name() != "customer_id");
    message
        .reserved_range
        .push(prost_types::descriptor_proto::ReservedRange {
            start: Some(2),
            end: Some(3),
        });
    assert!(breaking(&old, &contract(&set)).is_empty());

    // A field renumbered, renamed, or given another type.
    for change in ["renumber", "rename", "retype"] {
        let mut set = current();
        let (f, m) = event(&mut set, "OrderPlaced");
        let field = set.file[f].message_type[m]
            .field
            .iter_mut()
            .find(|field| field.name() == "customer_id")
            .unwrap();
        match change {
            "renumber" => field.number = Some(42),
            "rename" => field.name = Some("buyer_id".into()),
            _ => field.set_type(prost_types::field_descriptor_proto::Type::Int64),
        }
        let problems = breaking(&old, &contract(&set));
        assert!(!problems.is_empty(), "{change} went unnoticed");
    }

    // An enum value renamed.
    let mut set = current();
    let reasons = set
        .file
        .iter_mut()
        .filter(|file| file.package() == "stocklet.order.v1")
        .flat_map(|file| file.enum_type.iter_mut())
        .find(|e| e.name() == "RejectionReason")
        .unwrap();
    reasons.value[1].name = Some("REJECTION_REASON_GONE".into());
    assert!(!breaking(&old, &contract(&set)).is_empty());

    // A new field is not breaking.
    let mut set = current();
    let (f, m) = event(&mut set, "OrderPlaced");
    let mut added = set.file[f].message_type[m].field[0].clone();
    added.name = Some("gift_note".into());
    added.json_name = Some("giftNote".into());
    added.number = Some(14);
    set.file[f].message_type[m].field.push(added);
    assert!(breaking(&old, &contract(&set)).is_empty());

    // The baseline's text survives a round trip.
    assert_eq!(parse(&render(&old)), old);
}
