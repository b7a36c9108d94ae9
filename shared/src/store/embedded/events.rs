//! Events, and the outbox the local host reads in place of the DynamoDB stream.

use super::keys::{org_partition, sort_key};
use super::*;
use rusqlite::params;

pub(super) fn insert_event(tx: &Connection, e: &Event) -> StoreResult<()> {
    exec(
        tx,
        "INSERT INTO events (id, partition_key, sort_key, type, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            e.id.as_str(),
            org_partition("EVENTS", &e.organization_id, keys::mode_of(e.livemode)),
            sort_key(e.created_at, e.id.as_str()),
            e.event_type.as_str(),
            to_doc(e)
        ],
    )
    .map_err(sql)?;
    Ok(())
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn get_event(&self, id: &EventId) -> StoreResult<Option<Event>> {
        let id = id.to_string();
        self.point(move |tx| one_doc(tx, "SELECT doc FROM events WHERE id = ?1", &id))
            .await
    }

    async fn list_events(&self, w: &ListWindow, f: &EventFilter) -> StoreResult<Page<Event>> {
        let (w, f) = (w.clone(), f.clone());
        self.read(move |tx| {
            let partition = org_partition("EVENTS", &w.organization_id, w.mode);
            let (rows, stopped_at) = newest_first(tx, "events", &partition, &w, |e: &Event| {
                f.event_type.is_none_or(|t| t == e.event_type)
            })?;
            Ok(keys::page_read(rows, w.page_size(), stopped_at))
        })
        .await
    }
}

impl EmbeddedStore {
    /// Events written after `after` (an outbox sequence number), oldest first, with their
    /// sequence numbers: the local host's stand-in for the DynamoDB stream.
    pub async fn events_after(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Event)>> {
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT seq, doc FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(seq, d)| parse_doc(&d).map(|e| (seq, e)))
                .collect()
        })
        .await
    }

    /// The stream position a consumer has processed up to (0 before any).
    pub async fn stream_cursor(&self, name: &str) -> StoreResult<i64> {
        let name = name.to_owned();
        self.point(move |tx| {
            row(
                tx,
                "SELECT seq FROM stream_cursor WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
            .map(|v| v.unwrap_or(0))
        })
        .await
    }

    pub async fn set_stream_cursor(&self, name: &str, seq: i64) -> StoreResult<()> {
        let name = name.to_owned();
        self.tx(move |tx| {
            exec(
                tx,
                "INSERT INTO stream_cursor (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                params![name, seq],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}
