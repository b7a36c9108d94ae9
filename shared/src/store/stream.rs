//! The table's change stream as its consumers read it: which records are new events.
//! Shared by every stream consumer (dispatch-events, aggregate-analytics), so they agree on
//! what an event record is.

use crate::model::Event;

/// The event a stream record carries, given its `eventName` and its new image in the
/// stream's JSON form (`{"pk": {"S": "EVENT#…"}, "doc": {"S": "…"}}`): `None` if the record
/// is not the insertion of an event record, `Err` if it is one but unreadable.
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
    let doc = new_image
        .get("doc")
        .and_then(|d| d.get("S"))
        .and_then(|d| d.as_str());
    Some(match doc {
        Some(d) => serde_json::from_str(d).map_err(|e| e.to_string()),
        None => Err("event record without doc".into()),
    })
}
