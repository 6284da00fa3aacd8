//! Fuzzing driven by the served OpenAPI document, a quick complement to
//! schemathesis (`schemathesis.rs`) that needs no Python and mixes in
//! hostile values schemathesis does not try: for every documented operation
//! of the services running here, requests built from the document's own
//! schemas, with hostile values mixed in, as admin, customer and anonymous.
//! Properties: no 5xx, and every answer conforms to the document (the 200
//! schema of the operation, or the Error schema).

use serde_json::{Map, Value, json};

use crate::app::TestApp;

/// Backends running in the test app.
const RUNNING: &[&str] = &["product", "order"];

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "",
    "x",
    "0192f0c1-0000-7000-8000-000000000001",
    "not-a-uuid",
    "ü😀 ",
    "../../etc/passwd",
    "' OR 1=1 --",
    "\u{0}",
];

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn generate(doc: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if rng.below(12) == 0 {
        // Hostile: a value of the wrong type.
        return rng
            .pick(&[
                json!(null),
                json!([]),
                json!({}),
                json!(true),
                json!(-1),
                json!("zz"),
            ])
            .clone();
    }
    match schema["type"].as_str() {
        Some("object") if depth < 4 => {
            let mut object = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if rng.below(3) > 0 {
                        object.insert(name.clone(), generate(doc, property, rng, depth + 1));
                    }
                }
            }
            if schema["additionalProperties"].is_object() {
                for _ in 0..rng.below(3) {
                    let key = (*rng.pick(STRINGS)).to_owned();
                    let value = generate(doc, &schema["additionalProperties"], rng, depth + 1);
                    object.insert(key, value);
                }
            }
            Value::Object(object)
        }
        Some("array") if depth < 4 => (0..rng.below(3))
            .map(|_| generate(doc, &schema["items"], rng, depth + 1))
            .collect(),
        Some("string") => match (schema["enum"].as_array(), schema["format"].as_str()) {
            (Some(values), _) => rng.pick(values).clone(),
            (None, Some("int64")) => {
                json!(
                    rng.pick(&["0", "1", "-1", "50", "9223372036854775807", "1e3"])
                        .to_string()
                )
            }
            _ => json!(rng.pick(STRINGS)),
        },
        Some("integer") => json!(rng.pick(&[0i64, 1, -1, 100, 2_147_483_647, -2_147_483_648])),
        Some("boolean") => json!(rng.below(2) == 0),
        Some("number") => json!(rng.pick(&[0.0, -1.5, 1e300])),
        _ => json!({}),
    }
}

/// Checks `value` against `schema` (the subset the gateway writes).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    let fail = |what: &str| Err(format!("{at}: {what}, got {value}"));
    match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return fail("expected an object");
            };
            for key in schema["required"].as_array().into_iter().flatten() {
                if !object.contains_key(key.as_str().unwrap_or_default()) {
                    return fail(&format!("missing {key}"));
                }
            }
            for (key, item) in object {
                let property = &schema["properties"][key];
                if !property.is_null() {
                    conforms(doc, property, item, &format!("{at}.{key}"))?;
                } else if schema["additionalProperties"] == json!(false) {
                    return fail(&format!("unexpected property {key}"));
                } else if schema["additionalProperties"].is_object() {
                    conforms(
                        doc,
                        &schema["additionalProperties"],
                        item,
                        &format!("{at}.{key}"),
                    )?;
                }
            }
            Ok(())
        }
        Some("array") => match value.as_array() {
            Some(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))
            }),
            None => fail("expected an array"),
        },
        Some("string") => {
            let Some(text) = value.as_str() else {
                return fail("expected a string");
            };
            if let Some(values) = schema["enum"].as_array()
                && !values.contains(value)
            {
                return fail("not an enum value");
            }
            if schema["format"] == "int64" && text.parse::<i64>().is_err() {
                return fail("not an int64 string");
            }
            Ok(())
        }
        Some("integer") if value.is_i64() || value.is_u64() => Ok(()),
        Some("integer") => fail("expected an integer"),
        Some("boolean") if value.is_boolean() => Ok(()),
        Some("boolean") => fail("expected a boolean"),
        Some("number") if value.is_number() => Ok(()),
        Some("number") => fail("expected a number"),
        _ => Ok(()),
    }
}

#[tokio::test]
async fn openapi_driven_requests_never_get_5xx_or_off_schema_answers() {
    let app = TestApp::spawn_with(|config| config.rate_limit_burst = 1_000).await;
    let doc = app.get("/openapi.json", None).await.json;
    let tokens = [Some(app.admin()), Some(app.alice()), None];
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let (mut requests, mut successes) = (0, 0);
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let tag = operation["tags"][0].as_str().unwrap_or_default();
            if !RUNNING.contains(&tag) {
                continue;
            }
            for round in 0..12 {
                let mut path = String::new();
                let mut query = Vec::new();
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    let value = match generate(&doc, &parameter["schema"], &mut rng, 0) {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    let encoded: String =
                        form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    let name = parameter["name"].as_str().unwrap();
                    if parameter["in"] == "path" {
                        let encoded = if encoded.is_empty() {
                            "x".to_owned()
                        } else {
                            encoded
                        };
                        path = if path.is_empty() {
                            template.clone()
                        } else {
                            path
                        };
                        path = path.replace(&format!("{{{name}}}"), &encoded);
                    } else if rng.below(2) == 0 {
                        query.push(format!("{name}={encoded}"));
                    }
                }
                if path.is_empty() {
                    path = template.clone();
                }
                if !query.is_empty() {
                    path = format!("{path}?{}", query.join("&"));
                }
                let body = match operation["requestBody"]["content"]["application/json"]["schema"] {
                    Value::Null => Vec::new(),
                    ref schema => generate(&doc, schema, &mut rng, 0).to_string().into_bytes(),
                };
                let token = &tokens[round % tokens.len()];
                let http_method: http::Method = method.to_uppercase().parse().unwrap();
                let answer = app
                    .send(http_method, &path, token.as_deref(), body.clone(), &[])
                    .await;
                requests += 1;
                let context = format!(
                    "{method} {path} body {} -> {} {}",
                    String::from_utf8_lossy(&body),
                    answer.status,
                    answer.json
                );
                assert!(answer.status < 500, "5xx: {context}");
                successes += usize::from(answer.status == 200);
                let schema = if answer.status == 200 {
                    &operation["responses"]["200"]["content"]["application/json"]["schema"]
                } else {
                    &json!({"$ref": "#/components/schemas/Error"})
                };
                if let Err(violation) = conforms(&doc, schema, &answer.json, "$") {
                    panic!("off-schema answer: {violation}\n{context}");
                }
            }
        }
    }
    assert!(requests > 100, "only {requests} requests");
    assert!(
        successes > 10,
        "only {successes} of {requests} requests succeeded"
    );
    app.stop().await;
}
