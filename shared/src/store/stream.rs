//! The table's change stream as its consumers read it: which records are new events.
//! Shared by every stream consumer (dispatch-events, aggregate-analytics), so they agree on
//! what an event record is.

use crate::model::Event;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The event a stream record carries, given its `eventName` and its new image in the
/// stream's JSON form (`{"pk": {"S": "EVENT#…"}, "doc": {"B": "<base64>"}}`, the document
/// packed as `store::packed` writes it, or `{"S": "<json>"}` as records were written before):
/// `None` if the record is not the insertion of an event record, `Err` if it is one but
/// unreadable.
pub fn stream_event(
    event_name: &str,
    new_image: &serde_json::Value,
) -> Option<Result<Event, String>> {
    if event_name != "INSERT" {
        return None;
    }
    let pk = new_image.get("pk")?.get("S")?.as_str()?;
    if !pk.starts_with("EVENT#") {
        return None;
    }
    let doc = new_image.get("doc");
    Some(
        if let Some(packed) = doc.and_then(|d| d.get("B")).and_then(|d| d.as_str()) {
            STANDARD
                .decode(packed)
                .map_err(|e| format!("event record's doc: {e}"))
                .and_then(|bytes| super::packed::unpack_text(&bytes))
                .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()))
        } else if let Some(text) = doc.and_then(|d| d.get("S")).and_then(|d| d.as_str()) {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            Err("event record without doc".into())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Event {
        let o = crate::testing::order(
            &crate::model::OrgId::generate(),
            false,
            crate::model::Timestamp::now(),
        );
        crate::model::NewOrder::new(o).unwrap().event().clone()
    }

    #[test]
    fn an_event_record_reads_packed_or_as_json_text() {
        let ev = event();
        let json = serde_json::to_vec(&ev).unwrap();
        let pk = json!({"S": format!("EVENT#{}", ev.id)});
        let packed =
            json!({"pk": pk, "doc": {"B": STANDARD.encode(super::super::packed::pack(&json))}});
        let text = json!({"pk": pk, "doc": {"S": String::from_utf8(json).unwrap()}});
        for image in [&packed, &text] {
            assert_eq!(stream_event("INSERT", image).unwrap().unwrap(), ev);
            // Only the insertion of an event record is an event.
            assert!(stream_event("MODIFY", image).is_none());
            assert!(stream_event("REMOVE", image).is_none());
        }
        let order = json!({"pk": {"S": "ORDER#po_1"}, "doc": packed["doc"]});
        assert!(stream_event("INSERT", &order).is_none());
    }

    #[test]
    fn a_damaged_event_record_is_an_error() {
        let pk = json!({"S": "EVENT#evt_1"});
        for doc in [
            json!({"B": "not base64!"}),
            json!({"B": STANDARD.encode([1u8, 0xff, 0x00])}),
            json!({"B": STANDARD.encode(super::super::packed::pack(b"{}"))}),
            json!({"S": "{"}),
            json!({"N": "1"}),
        ] {
            let image = json!({"pk": pk, "doc": doc});
            assert!(stream_event("INSERT", &image).unwrap().is_err(), "{doc}");
        }
        assert!(stream_event("INSERT", &json!({"pk": pk})).unwrap().is_err());
    }
}
