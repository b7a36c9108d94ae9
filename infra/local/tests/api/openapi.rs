//! The OpenAPI document (infra/local/src/openapi.rs) against `docs/openapi.json`,
//! `template.yaml` and what the local host serves.

use crate::support::{repo_root, spawn_app};
use payorders_local::openapi;
use payorders_local::template::Template;
use serde_json::Value;
use std::collections::BTreeSet;

fn document() -> Value {
    serde_json::from_str(openapi::json()).unwrap()
}

#[test]
fn docs_openapi_json_is_generated_from_the_code() {
    crate::support::generated_file("docs/openapi.json", openapi::json(), "openapi");
}

#[test]
fn every_route_of_the_template_is_in_the_document_and_no_other() {
    let tpl = Template::load(&repo_root().join("template.yaml")).unwrap();
    let doc = document();
    let mut in_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            in_doc.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let mut in_template = BTreeSet::new();
    for (f, r) in tpl.routes() {
        let key = (r.method.clone(), r.path.clone());
        let op = &doc["paths"][&r.path][r.method.to_ascii_lowercase()];
        assert!(
            in_doc.contains(&key),
            "{} {} ({}) is missing from the OpenAPI document: declare it in infra/local/src/openapi.rs",
            r.method,
            r.path,
            f.function
        );
        // Public routes (no authorizer) are the ones the document says need no key.
        let public = op["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(public, r.public, "{} {}: security", r.method, r.path);
        in_template.insert(key);
    }
    let extra: Vec<_> = in_doc.difference(&in_template).collect();
    assert!(
        extra.is_empty(),
        "routes the template does not serve: {extra:?}"
    );
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_complete() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let responses = doc["components"]["responses"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    let unresolved: BTreeSet<_> = all
        .into_iter()
        .filter(|r| {
            let schema = r
                .strip_prefix("#/components/schemas/")
                .is_some_and(|name| schemas.contains_key(name));
            let response = r
                .strip_prefix("#/components/responses/")
                .is_some_and(|name| responses.contains_key(name));
            !schema && !response
        })
        .collect();
    assert!(
        unresolved.is_empty(),
        "references that do not resolve: {unresolved:?}"
    );
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["api_key"]["name"], "X-API-KEY");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["signature"]["name"], "Authorization-Signature");
    // The error shape names every catalogued code.
    let codes = &schemas["ErrorBody"]["properties"]["error"]["properties"]["code"]["enum"];
    for c in payorders::http::ErrorCode::ALL {
        assert!(
            codes.as_array().unwrap().contains(&c.as_str().into()),
            "{c}"
        );
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let answers = op["responses"].as_object().unwrap();
            let ok = answers.keys().filter(|s| s.starts_with('2')).count();
            assert_eq!(ok, 1, "{method} {path}: one success answer");
            for (status, a) in answers {
                // The hosted page's own 404 is a page, not JSON.
                let page = path.starts_with("/pay/") && a["content"]["text/html"].is_object();
                if (status.starts_with('4') || status.starts_with('5')) && !page {
                    // A shared error answer: the error shape, and an example whose code the
                    // catalogue answers with this status.
                    let name = a["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/responses/"))
                        .unwrap_or_else(|| panic!("{method} {path} {status}: {a}"));
                    let media = &responses[name]["content"]["application/json"];
                    assert_eq!(
                        media["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                    let code = payorders::http::ErrorCode::parse(
                        media["example"]["error"]["code"].as_str().unwrap(),
                    )
                    .unwrap();
                    assert!(
                        code.statuses().contains(&status.parse::<u16>().unwrap()),
                        "{name}: {code}"
                    );
                }
            }
            assert!(answers.contains_key("500"), "{method} {path}");
            // A CORS preflight names no object: it is answered for any id.
            if path.contains('{') && method != "options" {
                assert!(answers.contains_key("404"), "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                let media = &op["requestBody"]["content"]["application/json"];
                assert!(media["schema"].is_object(), "{method} {path}: body schema");
            }
        }
    }
    // Request types refuse unknown fields, and say so.
    assert_eq!(
        schemas["CreateOrderRequest"]["additionalProperties"], false,
        "{}",
        schemas["CreateOrderRequest"]
    );
}

#[tokio::test]
async fn the_host_serves_the_document_and_a_self_contained_docs_page() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.json::<Value>().await.unwrap(), document());
    let r = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("fetch(\"/openapi.json\")"));
    // Nothing loaded from elsewhere: no external URL, no script or style by address.
    for outside in ["http://", "https://", "//cdn", "src=", "<link"] {
        assert!(!page.contains(outside), "the docs page loads {outside}");
    }
}

/// Found by schemathesis: `GET …/process` (the older clients' form of `POST …/payments`)
/// answers 422 PAYMENT_DETAILS_REQUIRED for an order without payment details, and the
/// document did not list 422 (nor 409) for it. Every answer a write route gives is listed.
#[tokio::test]
async fn the_process_route_documents_what_it_answers() {
    let app = spawn_app().await;
    let order = app.create_deposit(&app.a, &serde_json::json!({})).await;
    assert_eq!(order.status, 201, "{}", order.text);
    let id = order.body["id"].as_str().unwrap();
    let hash = format!("0x{}", "ab".repeat(32));
    let r = app
        .get(&app.a, &format!("/pay-orders/{id}/process?tx_hash={hash}"))
        .await;
    r.assert_error(422, "PAYMENT_DETAILS_REQUIRED");
    let answers = &document()["paths"]["/pay-orders/{id}/process"]["get"]["responses"];
    for status in ["409", "422"] {
        assert!(answers.get(status).is_some(), "{status} undocumented");
    }
}
