//! proto3 JSON ↔ protobuf for one route, with `prost-reflect`.
//!
//! A request message is built from, in this order: the body (the whole
//! message for `body: "*"`, one field for `body: "<field>"`), the query
//! string (only for routes without a body), and the path variables, which
//! are set last so a body cannot override the object the path names.
//! A key repeated in a JSON object, at any depth, is rejected (400) rather
//! than read as last-wins.
//! Unknown JSON fields and unknown query parameters are rejected (400), as
//! the services' own JSON mapping does: privileged fields that a request
//! does not have cannot be smuggled in (mass assignment).
//!
//! Responses are written in the proto3 JSON mapping: lowerCamelCase names,
//! int64 as strings, enums as names, and every field present (as
//! gRPC-Gateway's default marshaller does), so clients see `[]` and `0`
//! rather than missing keys.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
    Value,
};

use crate::routes::{BodyMapping, Route};

/// A request the route cannot turn into its message.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The body is not valid JSON for the message.
    #[error("invalid JSON body: {0}")]
    Body(String),
    /// A path variable or query parameter has a bad value.
    #[error("invalid value for {field}: {reason}")]
    Field {
        /// The field, as in the proto.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A query parameter that names no field of the request.
    #[error("unknown query parameter {0:?}")]
    UnknownParameter(String),
    /// A JSON object names this key (its path in the body) more than once.
    #[error("invalid JSON body: the key {0:?} appears more than once")]
    DuplicateKey(String),
}

impl RequestError {
    /// The field at fault, if there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::UnknownParameter(name) | Self::DuplicateKey(name) => Some(name),
            Self::Body(_) => None,
        }
    }
}

/// Builds the request message of `route`.
pub fn request_message(
    route: &Route,
    path_vars: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, RequestError> {
    let input = route.method.input();
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    let mut message = match &route.body {
        BodyMapping::Whole if has_body => parse_json(input.clone(), body)?,
        BodyMapping::Field(field) if has_body => parse_json_field(input.clone(), field, body)?,
        BodyMapping::Field(_) => DynamicMessage::new(input.clone()),
        BodyMapping::Whole | BodyMapping::None => DynamicMessage::new(input.clone()),
    };
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let field = match &route.body {
                BodyMapping::None => query_field(route, &input, &name),
                BodyMapping::Whole | BodyMapping::Field(_) => None,
            }
            .ok_or_else(|| RequestError::UnknownParameter(name.clone().into_owned()))?;
            let parsed = parse_scalar(&field, &value)?;
            if field.is_list() {
                if let Value::List(items) = message.get_field_mut(&field) {
                    items.push(parsed);
                }
            } else {
                message.set_field(&field, parsed);
            }
        }
    }
    for (name, value) in path_vars {
        let field = input
            .get_field_by_name(name)
            .ok_or_else(|| RequestError::UnknownParameter(name.clone()))?;
        let parsed = parse_scalar(&field, value)?;
        message.set_field(&field, parsed);
    }
    Ok(message)
}

/// A query parameter's field: a top-level scalar (or repeated scalar) field
/// that is not bound by the path, named in either spelling.
fn query_field(route: &Route, input: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    let field = input
        .get_field_by_name(name)
        .or_else(|| input.get_field_by_json_name(name))?;
    let scalar = !field.is_map() && !matches!(field.kind(), Kind::Message(_));
    let in_path = route.path_fields().any(|f| f == field.name());
    (scalar && !in_path).then_some(field)
}

fn parse_json(descriptor: MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, RequestError> {
    reject_duplicate_keys(body, "")?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let message = DynamicMessage::deserialize_with_options(descriptor, &mut deserializer, &options)
        .map_err(|e| RequestError::Body(e.to_string()))?;
    deserializer
        .end()
        .map_err(|e| RequestError::Body(e.to_string()))?;
    Ok(message)
}

/// Parses a body that is one field of the message (a message or a map, as
/// `body: "items"` makes `{"<product id>": 2}` the whole body). The body
/// is read as one JSON value first, then placed under the field's name and
/// read as the message, so it cannot reach any other field.
fn parse_json_field(
    descriptor: MessageDescriptor,
    field: &FieldDescriptor,
    body: &[u8],
) -> Result<DynamicMessage, RequestError> {
    reject_duplicate_keys(body, field.json_name())?;
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RequestError::Body(e.to_string()))?;
    let wrapped = serde_json::Value::Object(
        [(field.json_name().to_owned(), value)]
            .into_iter()
            .collect(),
    );
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    DynamicMessage::deserialize_with_options(descriptor, wrapped, &options)
        .map_err(|e| RequestError::Body(e.to_string()))
}

/// Refuses a body in which an object names a key twice, at any depth.
///
/// serde (and so the proto3 JSON reader) keeps the last of two equal keys
/// without a word: `{"items": {"p": "1", "p": "2"}}` would order two units
/// of `p` where the client may have meant one, or three. RFC 8259 leaves
/// the meaning of duplicates open, so the gateway refuses them (400, naming
/// the key's path) rather than guess. A separate pass: prost-reflect reads
/// maps and messages into structures that cannot see the duplicate.
fn reject_duplicate_keys(body: &[u8], root: &str) -> Result<(), RequestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde::de::DeserializeSeed::deserialize(UniqueKeys(root), &mut deserializer) {
        Ok(()) => Ok(()),
        Err(error) => match error.to_string().split_once(DUPLICATE_MARK) {
            Some((_, rest)) => {
                let path = rest.split(" at line").next().unwrap_or(rest);
                Err(RequestError::DuplicateKey(path.to_owned()))
            }
            // Not JSON at all: the proto3 reader says why, below.
            None => Ok(()),
        },
    }
}

const DUPLICATE_MARK: &str = "duplicate key: ";

/// Walks any JSON value, failing on an object's repeated key; the string is
/// the path walked so far (`items.p`, `lines[2].id`).
struct UniqueKeys<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let path = format!("{}[{index}]", self.0);
            if seq.next_element_seed(UniqueKeys(&path))?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.0.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.0)
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE_MARK}{path}")));
            }
            map.next_value_seed(UniqueKeys(&path))?;
        }
        Ok(())
    }
}

/// Parses a path or query value for a scalar field, as the proto3 JSON
/// mapping reads the same value inside a JSON string.
fn parse_scalar(field: &FieldDescriptor, text: &str) -> Result<Value, RequestError> {
    let bad = |reason: &str| RequestError::Field {
        field: field.name().to_owned(),
        reason: reason.to_owned(),
    };
    let value = match field.kind() {
        Kind::String => Value::String(text.to_owned()),
        Kind::Bool => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("expected true or false")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(text.parse().map_err(|_| bad("expected a 32-bit integer"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(text.parse().map_err(|_| bad("expected a 64-bit integer"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => Value::U32(
            text.parse()
                .map_err(|_| bad("expected an unsigned 32-bit integer"))?,
        ),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(
            text.parse()
                .map_err(|_| bad("expected an unsigned 64-bit integer"))?,
        ),
        Kind::Float => Value::F32(text.parse().map_err(|_| bad("expected a number"))?),
        Kind::Double => Value::F64(text.parse().map_err(|_| bad("expected a number"))?),
        Kind::Enum(desc) => {
            let number = desc
                .get_value_by_name(text)
                .map(|v| v.number())
                .or_else(|| {
                    text.parse::<i32>()
                        .ok()
                        .filter(|n| desc.get_value(*n).is_some())
                })
                .ok_or_else(|| bad("not a value of the enum"))?;
            Value::EnumNumber(number)
        }
        Kind::Bytes | Kind::Message(_) => return Err(bad("cannot be given in the URL")),
    };
    Ok(value)
}

/// Writes `message` in the proto3 JSON mapping.
pub fn response_json(message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    let mut serializer = serde_json::Serializer::new(Vec::new());
    let options = SerializeOptions::new().skip_default_fields(false);
    message.serialize_with_options(&mut serializer, &options)?;
    Ok(serializer.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_reflect::DescriptorPool;

    use super::*;
    use crate::routes::{Lookup, RouteTable};

    fn build(
        method: http::Method,
        path: &str,
        query: Option<&str>,
        body: &str,
    ) -> Result<DynamicMessage, RequestError> {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_pool(&pool).unwrap();
        let Lookup::Found(route, vars) = table.lookup(&method, path) else {
            panic!("no route for {path}");
        };
        request_message(route, &vars, query, body.as_bytes())
    }

    fn place_order(path: &str, body: &str) -> Result<PlaceOrderRequest, RequestError> {
        use prost::Message as _;

        let message = build(http::Method::POST, path, None, body)?;
        Ok(PlaceOrderRequest::decode(message.encode_to_vec().as_slice()).unwrap())
    }

    use stocklet_proto::stocklet::order::v1::PlaceOrderRequest;

    #[test]
    fn the_place_order_body_is_the_bare_cart_as_in_the_original() {
        let request = place_order("/v1/order/place", r#"{"p1": "2", "p2": 3}"#).unwrap();
        assert_eq!((request.items["p1"], request.items["p2"]), (2, 3));
        assert_eq!(request.cart, None);

        let request = place_order("/v1/order/orders", r#"{"items": {"p1": "2"}}"#).unwrap();
        assert_eq!(request.cart.unwrap().items["p1"], 2);
        assert!(request.items.is_empty());
    }

    #[test]
    fn a_bare_cart_reaches_no_other_field() {
        // Trailing text after the map is not JSON, not a second field.
        let error =
            place_order("/v1/order/place", r#"{"p1": 1}, "cart": {"items": {}}"#).unwrap_err();
        assert!(matches!(error, RequestError::Body(_)), "{error}");
        // A key that looks like a field is a product id (the service refuses it).
        let request = place_order("/v1/order/place", r#"{"customerId": 1}"#).unwrap();
        assert_eq!(request.items["customerId"], 1);
        for bad in [r#"["p1"]"#, r#"{"p1": "two"}"#, r#""p1""#] {
            let error = place_order("/v1/order/place", bad).unwrap_err();
            assert!(matches!(error, RequestError::Body(_)), "{bad}: {error}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected_so_privileged_fields_cannot_be_smuggled() {
        let error = build(
            http::Method::POST,
            "/v1/order/orders",
            None,
            r#"{"items": {"p1": 1}, "customerId": "someone-else"}"#,
        )
        .unwrap_err();
        assert!(matches!(error, RequestError::Body(_)), "{error}");
        let error = build(
            http::Method::GET,
            "/v1/product/list",
            Some("pageSize=2&role=admin"),
            "",
        )
        .unwrap_err();
        assert!(matches!(error, RequestError::UnknownParameter(ref p) if p == "role"));
    }

    #[test]
    fn both_spellings_are_accepted_and_the_path_wins_over_the_body() {
        let message = build(
            http::Method::PUT,
            "/v1/product/from-path/price",
            None,
            r#"{"id": "from-body", "price_cents": "250"}"#,
        )
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&response_json(&message).unwrap()).unwrap();
        assert_eq!(json["id"], "from-path");
        assert_eq!(json["priceCents"], "250");
        let query = build(
            http::Method::GET,
            "/v1/product/list",
            Some("page_size=5&pageToken=abc"),
            "",
        )
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&response_json(&query).unwrap()).unwrap();
        assert_eq!(
            (json["pageSize"].as_i64(), json["pageToken"].as_str()),
            (Some(5), Some("abc"))
        );
    }

    #[test]
    fn a_key_given_twice_at_any_depth_is_refused_with_its_path() {
        let error = build(
            http::Method::POST,
            "/v1/order/orders",
            None,
            r#"{"items": {"p": "1", "p": "2"}}"#,
        )
        .unwrap_err();
        // A body that is one field is named from that field.
        assert_eq!(error.field(), Some("cart.items.p"), "{error}");
        let error = build(
            http::Method::POST,
            "/v1/order/place",
            None,
            r#"{"p": "1", "p": "2"}"#,
        )
        .unwrap_err();
        assert_eq!(error.field(), Some("items.p"), "{error}");
        let error = build(
            http::Method::POST,
            "/v1/product",
            None,
            r#"{"name": "a", "name": "b"}"#,
        )
        .unwrap_err();
        assert_eq!(error.field(), Some("name"), "{error}");
        // The same key in different objects is fine.
        assert!(
            reject_duplicate_keys(br#"{"a": {"x": 1}, "b": [{"x": 1}, {"x": 2}]}"#, "").is_ok()
        );
        let error =
            reject_duplicate_keys(br#"{"b": [{"x": 1}, {"x": 2, "x": 3}]}"#, "").unwrap_err();
        assert_eq!(error.field(), Some("b[1].x"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let error = build(
            http::Method::GET,
            "/v1/product/list",
            Some("pageSize=many"),
            "",
        )
        .unwrap_err();
        assert_eq!(error.field(), Some("page_size"));
        assert!(matches!(
            build(http::Method::POST, "/v1/product", None, "{not json").unwrap_err(),
            RequestError::Body(_)
        ));
    }
}
