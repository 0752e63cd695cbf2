//! The client covers every operation of docs/openapi.json, and nothing the document lacks: a
//! new endpoint fails this test until the client has a method for it (and its route in
//! `client::OPERATIONS`).

use std::collections::BTreeSet;

use client::OPERATIONS;

use crate::document;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

#[test]
fn the_client_implements_exactly_the_documents_operations() {
    let doc = document::load();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    let implemented: BTreeSet<(String, String)> =
        OPERATIONS.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    assert_eq!(implemented.len(), OPERATIONS.len(), "an operation is listed twice");
    let missing: Vec<_> = documented.difference(&implemented).collect();
    let extra: Vec<_> = implemented.difference(&documented).collect();
    assert!(missing.is_empty(), "documented, but the client has no method: {missing:?}");
    assert!(extra.is_empty(), "in the client, but not in the document: {extra:?}");
}
