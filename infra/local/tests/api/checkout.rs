//! The hosted checkout page (`GET /pay/{id}`), the organization's checkout settings
//! (`/settings/checkout`) and the links to the page on every merchant answer. The page in
//! a real browser is infra/scripts/browser_test.py (run by `make test`).

use crate::support::*;
use payorders::Scope;
use serde_json::json;

#[tokio::test]
async fn checkout_settings_are_managed_with_their_scope_and_shown_to_customers() {
    let app = spawn_app().await;
    let r = app.get(&app.a, "/settings/checkout").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"object": "checkout_settings", "display_name": null, "logo_url": null,
               "theme_color": null, "hide_footer": false})
    );
    let r = app
        .post(
            &app.a,
            "/settings/checkout",
            Some(&json!({"display_name": "  Acme Store ", "logo_url": "https://acme.example/logo.png",
                         "theme_color": "#0F766E", "hide_footer": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["display_name"], "Acme Store");
    assert_eq!(r.body["theme_color"], "#0f766e");
    // Fields not named stay; null clears one.
    let r = app
        .post(
            &app.a,
            "/settings/checkout",
            Some(&json!({"logo_url": null})),
        )
        .await;
    assert_eq!(r.body["logo_url"], json!(null));
    assert_eq!(r.body["display_name"], "Acme Store");
    assert_eq!(r.body["hide_footer"], true);

    for (body, code, param) in [
        (
            json!({"theme_color": "teal"}),
            "INVALID_PARAMETER",
            "theme_color",
        ),
        (
            json!({"theme_color": "#12345g"}),
            "INVALID_PARAMETER",
            "theme_color",
        ),
        (
            json!({"logo_url": "http://acme.example/logo.png"}),
            "INVALID_URL",
            "logo_url",
        ),
        (
            json!({"logo_url": "javascript:alert(1)"}),
            "INVALID_URL",
            "logo_url",
        ),
        (
            json!({"display_name": ""}),
            "INVALID_PARAMETER",
            "display_name",
        ),
        (
            json!({"display_name": "x".repeat(101)}),
            "INVALID_PARAMETER",
            "display_name",
        ),
        (
            json!({"hide_footer": "yes"}),
            "INVALID_PARAMETER",
            "hide_footer",
        ),
        (json!({"colour": "red"}), "UNKNOWN_PARAMETER", "colour"),
    ] {
        let r = app.post(&app.a, "/settings/checkout", Some(&body)).await;
        r.assert_error(400, code);
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }

    // settings:manage only.
    let reader = app
        .key_of_a(vec![Scope::OrdersRead, Scope::OrdersCreate])
        .await;
    app.get(&reader, "/settings/checkout")
        .await
        .assert_error(403, "INSUFFICIENT_SCOPE");
    // Per organization: B has its own.
    let b = app.get(&app.b, "/settings/checkout").await;
    assert_eq!(b.body["display_name"], json!(null));

    // The customer sees them.
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    let v = app
        .send(
            "GET",
            &format!("/public/pay-orders/{id}"),
            headers(&[]),
            None,
        )
        .await;
    assert_eq!(
        v.body["merchant"],
        json!({"name": "Acme Store", "logo_url": null, "theme_color": "#0f766e", "hide_footer": true})
    );
}

#[tokio::test]
async fn every_merchant_answer_links_the_hosted_page() {
    let app = spawn_app().await;
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    let hosted = format!("{}/pay/{id}", app.base);
    assert_eq!(o.body["hosted_url"], hosted);
    assert_eq!(o.body["payment_url"], hosted);
    assert_eq!(
        o.body["qr_code_url"],
        format!("{}/public/pay-orders/{id}/qr", app.base)
    );
    let got = app.get(&app.a, &format!("/pay-orders/{id}")).await;
    assert_eq!(got.body["hosted_url"], hosted);
    let list = app.get(&app.a, "/pay-orders").await;
    assert_eq!(list.body["data"][0]["hosted_url"], hosted);
    let d = app
        .post(
            &app.a,
            &format!("/pay-orders/{id}/payment-details"),
            Some(&json!({"source_currency": {"chain_id": 84532, "address": BASE_SEPOLIA_USDC}})),
        )
        .await;
    assert_eq!(d.body["hosted_url"], hosted);
    let c = app
        .post(&app.a, &format!("/pay-orders/{id}/cancel"), None)
        .await;
    assert_eq!(c.body["hosted_url"], hosted, "{}", c.text);
}

#[tokio::test]
async fn the_page_is_one_self_contained_document_and_unknown_orders_are_a_404_page() {
    let app = spawn_app().await;
    let o = app.create_deposit(&app.a, &json!({})).await;
    let id = o.body["id"].as_str().unwrap();
    let page = app
        .http
        .get(format!("{}/pay/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<meta name=\"viewport\""));
    assert!(html.contains("lang=\"en\""));
    // Nothing loaded from elsewhere: no external script, style sheet, font or frame.
    for banned in [
        "<script src",
        "<link rel=\"stylesheet\"",
        "@import",
        "<iframe",
        "cdn.",
        "fonts.g",
    ] {
        assert!(!html.contains(banned), "the page loads {banned}");
    }
    assert!(
        !html.contains("src=\"http"),
        "the page loads from elsewhere"
    );

    for unknown in ["po_1111111111111111111111", "not-an-id"] {
        let r = app
            .http
            .get(format!("{}/pay/{unknown}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Payment request not found")
        );
    }
}
