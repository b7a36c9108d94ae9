//! Analytics counters: one row per organization, mode, UTC hour and counter, grown with an
//! UPSERT; a marker row per applied contribution, inserted in the same transaction, so a
//! contribution offered twice is added once.

use super::*;
use rusqlite::params;

#[async_trait]
impl AnalyticsStore for EmbeddedStore {
    async fn add_analytics(&self, c: &Contribution) -> StoreResult<bool> {
        let c = c.clone();
        self.tx(move |tx| apply(tx, &c)).await
    }

    /// One transaction for all of them: a stream consumer's batch is one durable commit.
    async fn add_analytics_all(&self, cs: &[Contribution]) -> StoreResult<usize> {
        let cs = cs.to_vec();
        self.tx(move |tx| {
            let mut applied = 0;
            for c in &cs {
                applied += usize::from(apply(tx, c)?);
            }
            Ok(applied)
        })
        .await
    }

    async fn read_analytics(
        &self,
        org: &OrgId,
        mode: KeyMode,
        first_hour: i64,
        last_hour: i64,
    ) -> StoreResult<Vec<Bucket>> {
        let (org, mode) = (org.to_string(), mode.to_string());
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT hour, name, value FROM analytics \
                     WHERE org_id = ?1 AND mode = ?2 AND hour BETWEEN ?3 AND ?4 ORDER BY hour",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![org, mode, first_hour, last_hour], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        // SQLite turns a sum past an i64 into a REAL: it saturates.
                        match r.get::<_, rusqlite::types::Value>(2)? {
                            rusqlite::types::Value::Integer(v) => v,
                            rusqlite::types::Value::Real(v) => crate::analytics::counter_value(v),
                            _ => 0,
                        },
                    ))
                })
                .map_err(sql)?;
            let mut out: Vec<Bucket> = Vec::new();
            for row in rows {
                let (hour, name, value) = row.map_err(sql)?;
                if out.last().is_none_or(|b| b.hour != hour) {
                    out.push(Bucket {
                        hour,
                        counters: Default::default(),
                    });
                }
                out.last_mut()
                    .expect("pushed above")
                    .counters
                    .insert(name, value);
            }
            Ok(out)
        })
        .await
    }
}

/// Adds one contribution inside `tx` unless its marker is there; true if it did.
fn apply(tx: &rusqlite::Connection, c: &Contribution) -> StoreResult<bool> {
    let fresh = exec(
        tx,
        "INSERT INTO analytics_markers (marker) VALUES (?1) ON CONFLICT DO NOTHING",
        params![c.marker],
    )
    .map_err(sql)?;
    if fresh == 0 || c.counters.is_empty() {
        return Ok(false);
    }
    let (org, mode) = (c.organization_id.to_string(), c.mode.to_string());
    for (name, v) in &c.counters {
        exec(
            tx,
            "INSERT INTO analytics (org_id, mode, hour, name, value) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (org_id, mode, hour, name) DO UPDATE SET value = value + excluded.value",
            params![org, mode, c.hour, name, v],
        )
        .map_err(sql)?;
    }
    Ok(true)
}
