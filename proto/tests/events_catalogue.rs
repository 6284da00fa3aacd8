//! Renders `docs/events.md`, the catalogue of every event, from the
//! descriptor set (names, fields, types and the `.proto` doc comments) and
//! from the services' code (which aggregate produces an event and at which
//! schema version, which reactors consume it), and fails when the committed
//! file differs, so the catalogue cannot drift from `proto/`.
//!
//! `make docs` (`UPDATE_EVENTS_CATALOGUE=1 cargo test -p stocklet-proto
//! --test events_catalogue`) writes the file instead of comparing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet, SourceCodeInfo};

const EVENTS_PACKAGE: &str = "stocklet.events.v1";
/// The field every event has at the same number (proto/README.md).
const OCCURRED_AT: (&str, i32) = ("occurred_at_ms", 15);
const CATALOGUE: &str = "docs/events.md";

/// What every message carries besides its payload, when each header is
/// there, and how to read a message with only `proto/`.
const HEADERS: &str = r#"
## Which streams are public

Outside subscribers may read `USER`, `PRODUCT`, `WAREHOUSE`, `ORDER`,
`PAYMENT` and `SHIPPING`: their events carry no secret. `AUTH` is the
auth service's alone: it holds credentials, password hashes
(`CredentialsCreated`, `PasswordChanged`) and the hashes the user service
hands over at registration (`InitialPasswordHashed` on
`auth.registration.<user id>`). `DEADLETTER` (failed deliveries, with
copies of the events) and the snapshot bucket (`KV_snapshots`) are
for operators. No public event carries a password hash: `UserRegistered`'s
deprecated `password_hash` is never set now. A USER stream written before
that change still holds hashes in its first `UserRegistered` events; the
auth service still reads them, and such a history should be kept from
outside subscribers until it is migrated.

## Headers

Every stored message carries these NATS headers (the envelope,
`libs/es-core/src/envelope.rs`). A subscriber can route, dedupe and trace
an event from them without decoding it.

| header | present | meaning |
| --- | --- | --- |
| `Stocklet-Event-Id` | always | UUIDv7 of the event; of the commit for a batch message (each event in the batch has its own) |
| `Stocklet-Event-Type` | always | the payload's full protobuf name, e.g. `stocklet.events.v1.OrderPlaced`; `stocklet.events.v1.EventBatch` for a commit of several events |
| `Stocklet-Schema-Version` | always | the payload's schema version (`1` for every event today; a batch message is `1`, its records carry their own) |
| `Stocklet-Aggregate-Type`, `Stocklet-Aggregate-Id` | always | the aggregate instance that wrote it (also the last two tokens of the subject) |
| `Stocklet-Timestamp` | always | Unix milliseconds when the commit was made |
| `Stocklet-Causation-Id` | when the command had a cause | the id of the event a reaction handled, or of the client request (`X-Request-Id` at the gateway, `x-request-id` over gRPC, else one the service made); absent only on what a service writes by itself at start-up (the first admin's `CredentialsCreated`) |
| `Stocklet-Correlation-Id` | on every event of an order's saga | the order id; absent on events outside a saga (catalogue, stock levels, users, credentials, balances opened or credited) |
| `Stocklet-Dedupe-Key` | on events a reaction wrote, and on the first admin's `CredentialsCreated` (`bootstrap-admin`) | `<handler>:<source event id>`, remembered in the aggregate's history; absent on client commands (their retries are deduplicated by the `Idempotency-Key` ledger at the API) |
| `Nats-Msg-Id` | on ordinary appends; absent on the messages of an atomic batch (JetStream refuses it there) | `<subject>:<dedupe key>`, else the commit's id, so the server's duplicate window drops a re-sent publish |
| `traceparent` | when the writer traced the command (always, in the services) | W3C trace context of the span that wrote it |
| `tracestate` | only when the trace carries vendor state (rarely) | W3C trace state |

A letter in the `DEADLETTER` stream (subject `deadletter.<consumer>`) keeps
the original message's headers and payload (without its `Nats-` headers)
and adds:

| header | meaning |
| --- | --- |
| `Stocklet-Dlq-Consumer` | the durable consumer that gave up |
| `Stocklet-Dlq-Error` | why, one line, at most 1,024 characters |
| `Stocklet-Dlq-Stream`, `Stocklet-Dlq-Sequence`, `Stocklet-Dlq-Subject` | where the event is stored |
| `Stocklet-Dlq-Deliveries` | deliveries tried (0 for an event a projection read from the stream itself) |

Replayed letters travel on `deadletter.<consumer>.replay` (see the README,
"Dead letters").

## Reading events with only `proto/`

The event files import nothing outside `proto/stocklet/events/v1`, so any
protobuf toolchain compiles them from `proto/` alone (the service files
also import `google/api/*.proto`, vendored under `proto/google`, and
`google/protobuf/descriptor.proto`, which ships with every protoc and with
Python's `grpcio-tools`). For example, with a message's payload saved as
`event.bin` (a subscriber receives it as the message's bytes):

```sh
protoc -Iproto --decode=stocklet.events.v1.OrderPlaced stocklet/events/v1/order.proto < event.bin
```

Pick the message type from `Stocklet-Event-Type`. A message of type
`stocklet.events.v1.EventBatch` (`envelope.proto`) holds several events of
one commit: decode it, then each `EventRecord` by its own `event_type`.
Unknown types are events added after your copy of `proto/`: skip them.

A stream keeps every event as it was first stored. When a service reads an
old form as a newer event (its upcasters do that, see `proto/README.md`,
"Evolving an event"), the newer event's description below says what the
old form looks like, so that a subscriber can read it the same way.
"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where an event is written: the service, its aggregate modules and the
/// schema version declared in `domain_events!`.
#[derive(Default)]
struct Producer {
    service: String,
    aggregates: BTreeSet<String>,
    version: u32,
    /// The stream, when it is not the producer's own.
    stream: Option<String>,
}

impl Producer {
    fn stream(&self) -> String {
        self.stream
            .clone()
            .unwrap_or_else(|| stream_of(&self.service))
    }
}

/// Messages a service writes to another service's stream, outside any
/// aggregate of its own: (event, writer, aggregate type, stream). The one
/// today is how the user service hands a new user's password hash to the
/// auth service (`stocklet_service_kit::registration`).
const HAND_OVERS: &[(&str, &str, &str, &str)] =
    &[("InitialPasswordHashed", "user", "registration", "AUTH")];

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The service crates (`services/<name>/src/domain` exists).
fn services() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("services"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/domain").is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Identifiers following `events::` or `pb::` in `text`, with the text after them.
fn event_paths(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for prefix in ["events::", "pb::"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let after = &rest[at + prefix.len()..];
            let end = after
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(after.len());
            if end > 0 {
                out.push((&after[..end], &after[end..]));
            }
            rest = &after[end..];
        }
    }
    out
}

/// Producers, from the `domain_events!` declarations in `services/*/src/domain`.
fn producers() -> BTreeMap<String, Producer> {
    let mut producers: BTreeMap<String, Producer> = BTreeMap::new();
    for service in services() {
        let domain = workspace_root()
            .join("services")
            .join(&service)
            .join("src/domain");
        for file in rust_files(&domain) {
            let text = std::fs::read_to_string(&file).unwrap();
            let Some(start) = text.find("domain_events!") else {
                continue;
            };
            let block = &text[start..];
            let block = &block[..block.find("\n}").unwrap_or(block.len())];
            for (name, after) in event_paths(block) {
                // `Variant(pb::Name) @ 2` declares schema version 2.
                let after = after.trim_start_matches(')').trim_start();
                let version = after
                    .strip_prefix('@')
                    .map(|v| {
                        let v = v.trim_start();
                        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
                        digits.parse().unwrap()
                    })
                    .unwrap_or(1);
                let producer = producers.entry(name.to_owned()).or_default();
                producer.service.clone_from(&service);
                producer
                    .aggregates
                    .insert(file.file_stem().unwrap().to_string_lossy().into_owned());
                producer.version = producer.version.max(version);
            }
        }
    }
    for &(event, service, aggregate, stream) in HAND_OVERS {
        producers.insert(
            event.to_owned(),
            Producer {
                service: service.to_owned(),
                aggregates: BTreeSet::from([aggregate.to_owned()]),
                version: 1,
                stream: Some(stream.to_owned()),
            },
        );
    }
    producers
}

/// Consumers: the services whose reactors (`services/*/src/reactor`) name the event.
fn consumers() -> BTreeMap<String, BTreeSet<String>> {
    let mut consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for service in services() {
        let reactor = workspace_root()
            .join("services")
            .join(&service)
            .join("src/reactor");
        for file in rust_files(&reactor) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (name, _) in event_paths(&text) {
                consumers
                    .entry(name.to_owned())
                    .or_default()
                    .insert(service.clone());
            }
        }
    }
    consumers
}

/// The name of the stream a service writes, from `nats/streams/<service>.json`.
fn stream_of(service: &str) -> String {
    let path = workspace_root().join(format!("nats/streams/{service}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let after = &text[text.find("\"name\"").expect("stream has a name")..];
    let after = &after[after.find(':').unwrap() + 1..];
    let start = after.find('"').unwrap() + 1;
    let end = start + after[start..].find('"').unwrap();
    after[start..end].to_owned()
}

/// The leading comment at `path`, on one line (for tables and paragraphs).
fn comment(info: Option<&SourceCodeInfo>, path: &[i32]) -> String {
    let Some(info) = info else {
        return String::new();
    };
    info.location
        .iter()
        .find(|l| l.path == path)
        .map(|l| {
            l.leading_comments()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
                .replace('|', "\\|")
        })
        .unwrap_or_default()
}

fn scalar(kind: Type) -> &'static str {
    match kind {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

/// A type name in markdown: own-package types link to their section.
fn type_ref(type_name: &str) -> String {
    let short = type_name
        .strip_prefix(&format!(".{EVENTS_PACKAGE}."))
        .map(str::to_owned);
    match short {
        Some(short) => format!("[`{short}`](#{})", short.to_ascii_lowercase()),
        None => format!("`{}`", type_name.trim_start_matches('.')),
    }
}

/// The type column of one field, e.g. `repeated [OrderLine](#orderline)`.
fn field_type(message: &DescriptorProto, field: &prost_types::FieldDescriptorProto) -> String {
    let base = match field.r#type() {
        Type::Message | Type::Enum | Type::Group => {
            // map<K, V> is a nested `<Name>Entry` message with map_entry set.
            let entry = message.nested_type.iter().find(|n| {
                n.options.as_ref().and_then(|o| o.map_entry) == Some(true)
                    && field.type_name().ends_with(&format!(".{}", n.name()))
            });
            if let Some(entry) = entry {
                let part = |name: &str| {
                    let f = entry.field.iter().find(|f| f.name() == name).unwrap();
                    match f.r#type() {
                        Type::Message | Type::Enum => type_ref(f.type_name()),
                        other => format!("`{}`", scalar(other)),
                    }
                };
                return format!("map<{}, {}>", part("key"), part("value"));
            }
            type_ref(field.type_name())
        }
        other => format!("`{}`", scalar(other)),
    };
    if field.label() == Label::Repeated {
        format!("repeated {base}")
    } else if field.proto3_optional() {
        format!("optional {base}")
    } else {
        base
    }
}

fn is_event(message: &DescriptorProto) -> bool {
    message
        .field
        .iter()
        .any(|f| f.name() == OCCURRED_AT.0 && f.number() == OCCURRED_AT.1)
}

/// The fields table of one message at `path` in `file`.
fn fields_table(
    out: &mut String,
    file: &FileDescriptorProto,
    message: &DescriptorProto,
    path: &[i32],
) {
    let info = file.source_code_info.as_ref();
    out.push_str("| # | field | type | meaning |\n| --- | --- | --- | --- |\n");
    for (index, field) in message.field.iter().enumerate() {
        let mut field_path = path.to_vec();
        field_path.extend([2, i32::try_from(index).unwrap()]);
        let mut meaning = comment(info, &field_path);
        if let Some(oneof) = field.oneof_index.filter(|_| !field.proto3_optional()) {
            let name = message.oneof_decl[usize::try_from(oneof).unwrap()].name();
            meaning = format!("(one of `{name}`) {meaning}");
        }
        writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            field.number(),
            field.name(),
            field_type(message, field),
            meaning.trim()
        )
        .unwrap();
    }
}

/// The whole catalogue.
fn render() -> String {
    let set = FileDescriptorSet::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut files: Vec<FileDescriptorProto> = set
        .file
        .into_iter()
        .filter(|f| f.package() == EVENTS_PACKAGE)
        .collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    let producers = producers();
    let consumers = consumers();

    let mut out = String::new();
    out.push_str(
        "# Events catalogue\n\n\
         <!-- Generated by proto/tests/events_catalogue.rs from proto/stocklet/events/v1 and the \
         services' code. Do not edit: run `make docs`. -->\n\n\
         Every event Stocklet stores, by the file that defines it. An event's type (the \
         `Stocklet-Event-Type` header) is its full protobuf name; its payload is the protobuf \
         encoding of the message. The producer and schema version come from the \
         `domain_events!` declaration of the aggregate that writes the event \
         (`services/<service>/src/domain`); consumers are the services whose reactors \
         (`services/<service>/src/reactor`) read it. Every event is stored on its producer's \
         stream, on the subject of the aggregate instance that recorded it \
         (`<context>.<aggregate>.<id>`, see `docs/architecture.md`).\n\n",
    );

    // Index of every event.
    out.push_str("| event | stream | producer (aggregate) | version | consumed by |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    let mut events = 0;
    for file in &files {
        for message in file.message_type.iter().filter(|m| is_event(m)) {
            let name = message.name();
            let producer = producers.get(name);
            let consumed = consumers
                .get(name)
                .map(|c| c.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "—".into());
            writeln!(
                out,
                "| [`{name}`](#{}) | {} | {} | {} | {consumed} |",
                name.to_ascii_lowercase(),
                producer.map_or("—".into(), |p| format!("`{}`", p.stream())),
                producer.map_or("—".into(), |p| format!(
                    "{} ({})",
                    p.service,
                    p.aggregates.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                producer.map_or("—".into(), |p| p.version.to_string()),
            )
            .unwrap();
            events += 1;
        }
    }
    assert!(events > 20, "only {events} events found");
    out.push_str(HEADERS);

    for file in &files {
        let info = file.source_code_info.as_ref();
        writeln!(out, "\n## `{}`\n", file.name()).unwrap();
        for (index, message) in file.message_type.iter().enumerate() {
            let path = [4, i32::try_from(index).unwrap()];
            let name = message.name();
            writeln!(out, "### {name}\n").unwrap();
            let what = if is_event(message) {
                match producers.get(name) {
                    Some(p) => format!(
                        "Event `{EVENTS_PACKAGE}.{name}`, schema version {}, written by the {} \
                         service ({}) to stream `{}`.",
                        p.version,
                        p.service,
                        p.aggregates.iter().cloned().collect::<Vec<_>>().join(", "),
                        p.stream()
                    ),
                    None => format!(
                        "Event `{EVENTS_PACKAGE}.{name}`; no `domain_events!` declaration writes it."
                    ),
                }
            } else {
                format!("Type `{EVENTS_PACKAGE}.{name}`, used inside events.")
            };
            let consumed = consumers
                .get(name)
                .filter(|_| is_event(message))
                .map(|c| {
                    format!(
                        " Consumed by: {}.",
                        c.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
                .unwrap_or_default();
            writeln!(out, "{what}{consumed}\n").unwrap();
            let doc = comment(info, &path);
            if !doc.is_empty() {
                writeln!(out, "{doc}\n").unwrap();
            }
            fields_table(&mut out, file, message, &path);
            out.push('\n');
        }
        for (index, enumeration) in file.enum_type.iter().enumerate() {
            let path = [5, i32::try_from(index).unwrap()];
            writeln!(out, "### {}\n", enumeration.name()).unwrap();
            writeln!(
                out,
                "Enum `{EVENTS_PACKAGE}.{}`, used inside events.\n",
                enumeration.name()
            )
            .unwrap();
            let doc = comment(info, &path);
            if !doc.is_empty() {
                writeln!(out, "{doc}\n").unwrap();
            }
            out.push_str("| value | name | meaning |\n| --- | --- | --- |\n");
            for (value_index, value) in enumeration.value.iter().enumerate() {
                let value_path = [5, path[1], 2, i32::try_from(value_index).unwrap()];
                writeln!(
                    out,
                    "| {} | `{}` | {} |",
                    value.number(),
                    value.name(),
                    comment(info, &value_path)
                )
                .unwrap();
            }
            out.push('\n');
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[test]
fn events_catalogue_is_current() {
    let rendered = render();
    let path = workspace_root().join(CATALOGUE);
    if std::env::var("UPDATE_EVENTS_CATALOGUE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{CATALOGUE} is not current with proto/ and the services' event declarations: run \
         `make docs` and commit it"
    );
}

#[test]
fn every_event_has_a_producer_and_a_documented_field_list() {
    let rendered = render();
    let producers = producers();
    for name in [
        "OrderPlaced",
        "UserRegistered",
        "StockReserved",
        "PaymentCaptured",
    ] {
        assert!(producers.contains_key(name), "{name} has no producer");
        assert!(
            rendered.contains(&format!("### {name}\n")),
            "{name} has no section"
        );
    }
    assert!(rendered.contains("| 15 | `occurred_at_ms` | `int64` |"));
    assert_eq!(stream_of("order"), "ORDER");
}
