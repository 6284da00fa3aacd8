//! The OpenAPI 3 document, generated at start-up from the same route table
//! and descriptors the gateway serves, so it cannot describe a route the
//! gateway does not serve or miss one it does.
//!
//! Schemas follow what [`crate::transcode`] writes: lowerCamelCase
//! properties, int64 as strings, enums as their names, maps as objects, and
//! no additional properties (unknown fields are rejected).

use std::collections::BTreeMap;

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::routes::{BodyMapping, Route, RouteTable};

/// Builds the document for `table`; `public` says whether a method needs
/// no token.
pub fn document(table: &RouteTable, public: impl Fn(&str) -> bool) -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in table.routes() {
        let operation = operation(route, public(route.full_name()), &mut schemas);
        paths
            .entry(route.template.clone())
            .or_default()
            .insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    for (path, summary) in [
        ("/healthz", "The gateway itself is running."),
        ("/readyz", "Every backend service is serving."),
        ("/openapi.json", "This document."),
    ] {
        let mut operation = Map::new();
        operation.insert("get".into(), json!({
            "operationId": path.trim_start_matches('/').replace('.', "_"),
            "summary": summary,
            "tags": ["gateway"],
            "security": [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": {"description": "Not ready", "content": {"application/json": {"schema": {"type": "object"}}}}
            }
        }));
        paths.insert(path.to_owned(), operation);
    }
    let mut components = Map::new();
    for (name, schema) in schemas {
        components.insert(name, schema);
    }
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Stocklet API",
            "version": "v1",
            "description": "Generated from the google.api.http annotations of Stocklet's proto files."
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}

fn operation(route: &Route, public: bool, schemas: &mut BTreeMap<String, Value>) -> Value {
    let input = route.method.input();
    let mut parameters = Vec::new();
    for name in route.path_fields() {
        if let Some(field) = input.get_field_by_name(name) {
            parameters.push(json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": field_schema(&field, schemas)
            }));
        }
    }
    if route.http_method != http::Method::GET {
        parameters.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes the command safe to retry: the same key with the same request \
                answers the first answer again (marked Idempotent-Replayed: true) without running \
                the command twice; with another request, 422. Kept 24 h (STOCKLET_IDEMPOTENCY_TTL_S).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[A-Za-z0-9._:-]+$"}
        }));
    }
    let mut operation = Map::new();
    match &route.body {
        BodyMapping::None => {
            for field in input.fields() {
                let in_path = route.path_fields().any(|p| p == field.name());
                if in_path || field.is_map() || matches!(field.kind(), Kind::Message(_)) {
                    continue;
                }
                parameters.push(json!({
                    "name": field.json_name(),
                    "in": "query",
                    "required": false,
                    "schema": field_schema(&field, schemas)
                }));
            }
        }
        BodyMapping::Whole => {
            operation.insert(
                "requestBody".into(),
                request_body(message_ref(&input, schemas)),
            );
        }
        BodyMapping::Field(field) => {
            operation.insert(
                "requestBody".into(),
                request_body(field_schema(field, schemas)),
            );
        }
    }
    let service = route.method.parent_service();
    operation.insert(
        "operationId".into(),
        json!(format!("{}_{}", service.name(), route.method.name())),
    );
    operation.insert("tags".into(), json!([route.backend]));
    if let Some(comment) = crate::policy::leading_comment(&route.method) {
        operation.insert("description".into(), json!(comment.trim()));
    }
    operation.insert("parameters".into(), Value::Array(parameters));
    operation.insert(
        "security".into(),
        if public {
            json!([])
        } else {
            json!([{"bearer": []}])
        },
    );
    operation.insert("responses".into(), json!({
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": message_ref(&route.method.output(), schemas)}}
        },
        "default": {
            "description": "An error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
    }));
    Value::Object(operation)
}

/// A JSON request body. Not required: as in gRPC-Gateway, an empty body
/// is read as an empty message (`{}`), so a command whose fields all come
/// from the path needs none.
fn request_body(schema: Value) -> Value {
    json!({"required": false, "content": {"application/json": {"schema": schema}}})
}

/// A `$ref` to `message`'s schema, adding it (and what it uses) once.
fn message_ref(message: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), Value::Null); // breaks recursion
        let mut properties = Map::new();
        for field in message.fields() {
            properties.insert(field.json_name().to_owned(), field_schema(&field, schemas));
        }
        schemas.insert(
            name.clone(),
            json!({"type": "object", "properties": properties, "additionalProperties": false}),
        );
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return json!({"type": "object"});
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": kind_schema(&value.kind(), schemas)});
    }
    let item = kind_schema(&field.kind(), schemas);
    if field.is_list() {
        json!({"type": "array", "items": item})
    } else {
        item
    }
}

fn kind_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int64", "minimum": 0}),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"})
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "string", "format": "uint64", "pattern": "^[0-9]+$"})
        }
        Kind::Float => json!({"type": "number", "format": "float"}),
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!({"type": "string", "enum": names})
        }
        Kind::Message(m) => message_ref(m, schemas),
    }
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "The gRPC status code."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}}
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_reflect::DescriptorPool;

    use super::*;

    #[test]
    fn every_served_route_is_documented_with_its_schemas() {
        let pool = DescriptorPool::decode(stocklet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_pool(&pool).unwrap();
        let doc = document(&table, |m| m.ends_with("ViewProducts"));
        for route in table.routes() {
            let method = route.http_method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][&route.template][&method].is_object(),
                "{}",
                route.template
            );
        }
        // The original's body: the cart itself, a map of int64 strings.
        let place = &doc["paths"]["/v1/order/place"]["post"];
        let schema = &place["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"]["format"], "int64");
        let wrapped = &doc["paths"]["/v1/order/orders"]["post"];
        assert_eq!(
            wrapped["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/stocklet.order.v1.Cart"
        );
        let order = &doc["components"]["schemas"]["stocklet.order.v1.Order"]["properties"];
        assert_eq!(order["totalCents"]["type"], "string");
        assert_eq!(order["status"]["enum"][1], "ORDER_STATUS_PROCESSING");
        assert_eq!(
            doc["paths"]["/v1/product/list"]["get"]["security"],
            json!([])
        );
        assert_eq!(
            doc["paths"]["/v1/order/place"]["post"]["security"][0]["bearer"],
            json!([])
        );
        // Every $ref resolves.
        let text = doc.to_string();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
    }
}
