//! Events: written with the change they record, listed per organization and mode.

use super::keys::{mode_of, org_partition, sort_key};
use super::*;

pub(super) fn event_item(e: &Event) -> Item {
    let mut item = base_item(format!("EVENT#{}", e.id), "EVENT");
    item.insert("doc".into(), to_doc(e));
    item.insert("type".into(), s(e.event_type.as_str()));
    item.insert(
        "gsi3pk".into(),
        s(org_partition(
            "EVENTS",
            &e.organization_id,
            mode_of(e.livemode),
        )),
    );
    item.insert("gsi3sk".into(), s(sort_key(e.created_at, e.id.as_str())));
    if let Some(o) = &e.order_id {
        item.insert("order_id".into(), s(o.as_str()));
    }
    item
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        self.get_immutable_doc(&format!("EVENT#{id}"), "EVENT")
            .await?
            .map(|i| doc(&i))
            .transpose()
    }

    async fn list_events(&self, w: &ListWindow, f: &EventFilter) -> StoreResult<Page<Event>> {
        let mut filter = Filter::default();
        if let Some(t) = f.event_type {
            filter.eq("type", s(t.as_str()));
        }
        self.page_newest_first(
            "events_by_org",
            "gsi3pk",
            "gsi3sk",
            org_partition("EVENTS", &w.organization_id, w.mode),
            w,
            |id| (format!("EVENT#{id}"), "EVENT".into()),
            filter,
            |_: &Event| true,
        )
        .await
    }
}
