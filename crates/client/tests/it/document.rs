//! docs/openapi.json, read once per test, and a small checker of values against its schemas:
//! types, enums, required and unknown properties, integer ranges and item counts. Enough to
//! say that what the client sends is what the document names, field by field.

use serde_json::{Map, Value};

pub fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The document's operation for `(method, path)`.
pub fn operation<'a>(doc: &'a Value, (method, path): (&str, &str)) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "no {method} {path} in the document");
    op
}

/// The request body schema of `(method, path)`.
pub fn request_schema<'a>(doc: &'a Value, route: (&str, &str)) -> &'a Value {
    let schema = &operation(doc, route)["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{route:?} takes no JSON body");
    schema
}

/// The JSON schema of the success answer of `(method, path)`.
pub fn response_schema<'a>(doc: &'a Value, route: (&str, &str)) -> &'a Value {
    let responses = operation(doc, route)["responses"].as_object().unwrap();
    let (_, success) = responses
        .iter()
        .find(|(status, _)| status.starts_with('2'))
        .unwrap_or_else(|| panic!("{route:?} has no success answer"));
    let schema = &success["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{route:?} answers no JSON");
    schema
}

/// `schema` with its `$ref`s followed.
pub fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            let target = &doc["components"]["schemas"][name];
            assert!(target.is_object(), "dangling {reference}");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every way `value` breaks `schema`, each with its path; empty when it conforms.
pub fn violations(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(doc, schema, value, "$", &mut found);
    found
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let n_matching = variants
            .iter()
            .filter(|variant| {
                let mut inner = Vec::new();
                check(doc, variant, value, at, &mut inner);
                inner.is_empty()
            })
            .count();
        if n_matching != 1 {
            found.push(format!("{at}: {value} matches {n_matching} variants of a oneOf"));
        }
        return;
    }
    let allowed = types(schema);
    let actual = type_of(value);
    if !allowed.is_empty() && !allowed.contains(&actual) {
        found.push(format!("{at}: {actual} where the schema takes {allowed:?}"));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            found.push(format!("{at}: {value} is none of {options:?}"));
        }
    }
    match value {
        Value::Object(object) => check_object(doc, schema, object, at, found),
        Value::Array(items) => {
            let n_items = items.len() as u64;
            if schema.get("minItems").and_then(Value::as_u64).is_some_and(|min| n_items < min) {
                found.push(format!("{at}: fewer items than minItems"));
            }
            if schema.get("maxItems").and_then(Value::as_u64).is_some_and(|max| n_items > max) {
                found.push(format!("{at}: more items than maxItems"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (idx, item) in items.iter().enumerate() {
                    check(doc, item_schema, item, &format!("{at}[{idx}]"), found);
                }
            }
        }
        Value::Number(number) => {
            let number = number.as_i64().map(i128::from).or(number.as_u64().map(i128::from));
            let bound = |key: &str| schema.get(key).and_then(Value::as_u64).map(i128::from);
            if let (Some(number), Some(min)) = (number, bound("minimum")) {
                if number < min {
                    found.push(format!("{at}: {number} below the minimum {min}"));
                }
            }
            if let (Some(number), Some(max)) = (number, bound("maximum")) {
                if number > max {
                    found.push(format!("{at}: {number} above the maximum {max}"));
                }
            }
        }
        _ => {}
    }
}

fn check_object(
    doc: &Value,
    schema: &Value,
    object: &Map<String, Value>,
    at: &str,
    found: &mut Vec<String>,
) {
    let empty = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = required.as_str().unwrap();
        if !object.contains_key(name) {
            found.push(format!("{at}: the required {name:?} is missing"));
        }
    }
    let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, field) in object {
        match properties.get(name) {
            Some(field_schema) => check(doc, field_schema, field, &format!("{at}.{name}"), found),
            None if closed => found.push(format!("{at}: {name:?} is not a property")),
            None => {}
        }
    }
}

/// Which sample [`sample`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Every property, nullable ones with a value.
    Full,
    /// Required properties only.
    Required,
    /// Every property, nullable ones `null`.
    Nulls,
}

/// A value of `schema` as the service could send it: examples where the document gives
/// them, the first of an enum, the first variant of a `oneOf`, decimal digits for strings
/// (every id and amount is one), 1 for integers, one item per array.
pub fn sample(doc: &Value, schema: &Value, fill: Fill) -> Value {
    let schema = resolve(doc, schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let non_null = variants.iter().find(|variant| resolve(doc, variant)["type"] != "null");
        return match (fill, non_null) {
            (Fill::Nulls, _) if variants.iter().any(|v| v["type"] == "null") => Value::Null,
            (_, Some(variant)) => sample(doc, variant, fill),
            (_, None) => Value::Null,
        };
    }
    let allowed = types(schema);
    if fill == Fill::Nulls && allowed.contains(&"null") {
        return Value::Null;
    }
    if let Some(first) = schema.get("enum").and_then(|options| options.get(0)) {
        return first.clone();
    }
    let example = schema
        .get("examples")
        .and_then(|examples| examples.get(0))
        .or_else(|| schema.get("example"));
    match allowed.iter().copied().find(|kind| *kind != "null") {
        Some("object") | None if schema.get("properties").is_some() => {
            let mut object = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, field) in schema["properties"].as_object().unwrap() {
                if fill == Fill::Required && !required.contains(&name.as_str()) {
                    continue;
                }
                object.insert(name.clone(), sample(doc, field, fill));
            }
            Value::Object(object)
        }
        Some("object") => Value::Object(Map::new()),
        Some("array") => match schema.get("items") {
            Some(items) => Value::Array(vec![sample(doc, items, fill)]),
            None => Value::Array(Vec::new()),
        },
        Some("string") => example.cloned().unwrap_or_else(|| Value::String("1".into())),
        Some("integer") => {
            let minimum = schema.get("minimum").and_then(Value::as_u64).unwrap_or(1).max(1);
            example.cloned().unwrap_or_else(|| Value::from(minimum))
        }
        Some("boolean") => Value::Bool(true),
        _ => example.cloned().unwrap_or(Value::Null),
    }
}

/// Where `value` leaves out a property its schema declares (recursively): a request built
/// with every option set must name every field the document takes.
pub fn missing_properties(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    complete(doc, schema, value, "$", &mut found);
    found
}

fn complete(doc: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        if let Some(variant) =
            variants.iter().find(|variant| violations(doc, variant, value).is_empty())
        {
            complete(doc, variant, value, at, found);
        }
        return;
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for (name, field_schema) in properties.into_iter().flatten() {
                match object.get(name) {
                    Some(field) => {
                        complete(doc, field_schema, field, &format!("{at}.{name}"), found)
                    }
                    None => found.push(format!("{at}.{name}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (idx, item) in items.iter().enumerate() {
                    complete(doc, item_schema, item, &format!("{at}[{idx}]"), found);
                }
            }
        }
        _ => {}
    }
}
