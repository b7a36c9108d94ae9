//! How objects look on the wire: bare objects with an `object` field, lists in one shape.

use crate::checkout::Links;
use crate::model::{Event, OrderView, PayOrder};
use crate::store::Page;
use serde_json::{Value, json};

/// A pay order as the API returns it, with the customer's links: `hosted_url` (the
/// checkout page to send the customer to), `payment_url` (the same, under the name other
/// APIs use) and `qr_code_url` (the payment URI as a QR code, once a currency is chosen).
pub fn order(o: &PayOrder, links: &Links) -> Value {
    serde_json::to_value(order_view(o, links)).expect("orders serialize")
}

/// [`order`], to serialize straight into a response ([`crate::http::json`]).
pub fn order_view<'a>(o: &'a PayOrder, links: &Links) -> OrderView<'a> {
    let hosted = links.hosted(&o.id);
    o.view(vec![
        ("hosted_url", json!(hosted)),
        ("payment_url", json!(hosted)),
        ("qr_code_url", json!(links.qr(&o.id))),
    ])
}

/// An event as the API returns it: `id` and `object` first.
pub fn event(e: &Event) -> Value {
    serde_json::to_value(EventView(e)).expect("events serialize")
}

struct EventView<'a>(&'a Event);

impl serde::Serialize for EventView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        crate::model::view::record_fields(&mut map, &self.0.id, "event", self.0, &["id"])?;
        map.end()
    }
}

/// `{"object":"list","data":[…],"has_more":…,"next_cursor":…}`.
pub fn list<T>(page: &Page<T>, item: impl Fn(&T) -> Value) -> Value {
    json!({
        "object": "list",
        "data": page.data.iter().map(item).collect::<Vec<_>>(),
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
    })
}
