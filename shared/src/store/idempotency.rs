//! The idempotency rule, once for both adapters: when a key is free to take, what a key
//! already held answers (in flight, replay, mismatch), what completing it keeps, and whose
//! release frees it. The adapters only read and write [`IdempotencyRecord`]s (the DynamoDB
//! adapter states [`IdempotencyRecord::is_free`] and [`IdempotencyRecord::is_held_by`]
//! as the conditions of its writes, since it cannot read and write in one step).

use super::keys::parse_doc;
use super::{
    IDEMPOTENCY_LOCK_SECS, IDEMPOTENCY_TTL_SECS, IdempotencyBegin, IdempotencyHold,
    IdempotencyScope, StoreError, StoreResult, StoredResponse,
};
use crate::model::Timestamp;

/// Where the request holding a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyState {
    InFlight,
    Completed,
}

impl IdempotencyState {
    pub const fn as_str(self) -> &'static str {
        match self {
            IdempotencyState::InFlight => "in_flight",
            IdempotencyState::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "in_flight" => Ok(IdempotencyState::InFlight),
            "completed" => Ok(IdempotencyState::Completed),
            other => Err(StoreError::Corrupt(format!("idempotency state {other}"))),
        }
    }
}

/// One idempotency key's record, as both adapters keep it (times in epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// What the request under the key was (method, path, body).
    pub fingerprint: String,
    pub state: IdempotencyState,
    /// The [`StoredResponse`] as JSON, once completed.
    pub response: Option<String>,
    /// Until when an in-flight request holds the key (0 once completed).
    pub locked_until: i64,
    /// When the record stops counting (also the TTL).
    pub expires_at: i64,
}

impl IdempotencyRecord {
    /// What taking a key writes: in flight, held for [`IDEMPOTENCY_LOCK_SECS`], kept for
    /// [`IDEMPOTENCY_TTL_SECS`].
    pub fn in_flight(fingerprint: &str, now: Timestamp) -> Self {
        Self {
            fingerprint: fingerprint.to_owned(),
            state: IdempotencyState::InFlight,
            response: None,
            locked_until: now.plus_seconds(IDEMPOTENCY_LOCK_SECS).unix(),
            expires_at: now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix(),
        }
    }

    /// What completing a request writes (whatever is there): its response, kept for
    /// [`IDEMPOTENCY_TTL_SECS`] from `now`.
    pub fn completed(fingerprint: &str, response: &StoredResponse, now: Timestamp) -> Self {
        Self {
            fingerprint: fingerprint.to_owned(),
            state: IdempotencyState::Completed,
            response: Some(
                serde_json::to_string(response).expect("a stored response always serializes"),
            ),
            locked_until: 0,
            expires_at: now.plus_seconds(IDEMPOTENCY_TTL_SECS).unix(),
        }
    }

    /// Whether a new request may take the key over this record: it expired, or the request
    /// holding it is still in flight past its lock (it crashed).
    pub fn is_free(&self, now: Timestamp) -> bool {
        let now = now.unix();
        self.expires_at < now
            || (self.state == IdempotencyState::InFlight && self.locked_until < now)
    }

    /// What a live record answers a request with `fingerprint`.
    pub fn answer(&self, fingerprint: &str) -> StoreResult<IdempotencyBegin> {
        if self.fingerprint != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        match self.state {
            IdempotencyState::InFlight => Ok(IdempotencyBegin::InFlight),
            IdempotencyState::Completed => {
                let text = self.response.as_deref().ok_or_else(|| {
                    StoreError::Corrupt("a completed idempotency record has no response".into())
                })?;
                parse_doc(text).map(IdempotencyBegin::Replay)
            }
        }
    }

    /// Whether `hold` still holds the key this record is: in flight, for its request, under
    /// the lock it took. Completing and releasing the key take effect only then; a request
    /// that outlived its lock finds a successor's record (a later lock) and leaves it.
    pub fn is_held_by(&self, hold: &IdempotencyHold) -> bool {
        self.state == IdempotencyState::InFlight
            && self.fingerprint == hold.fingerprint
            && self.locked_until == hold.locked_until
    }
}

/// Taking `scope`'s key for the request with `fingerprint` at `now`: the record to write
/// and the hold the request keeps.
pub fn take(
    scope: &IdempotencyScope,
    fingerprint: &str,
    now: Timestamp,
) -> (IdempotencyRecord, IdempotencyHold) {
    let record = IdempotencyRecord::in_flight(fingerprint, now);
    let hold = IdempotencyHold {
        scope: scope.clone(),
        fingerprint: fingerprint.to_owned(),
        locked_until: record.locked_until,
    };
    (record, hold)
}

/// What starting a request finds over `existing`: `None` when the key is free, and the
/// caller takes it by writing [`IdempotencyRecord::in_flight`]; otherwise the answer.
pub fn begin_over(
    existing: Option<&IdempotencyRecord>,
    fingerprint: &str,
    now: Timestamp,
) -> StoreResult<Option<IdempotencyBegin>> {
    match existing {
        Some(r) if !r.is_free(now) => r.answer(fingerprint).map(Some),
        _ => Ok(None),
    }
}

/// The answer when a conditional take was refused (the key was not free) and the record
/// was read afterwards: what it says, or, if it was released in between, in flight (the
/// caller's retry will find the key free).
pub fn after_refused_take(
    existing: Option<&IdempotencyRecord>,
    fingerprint: &str,
) -> StoreResult<IdempotencyBegin> {
    match existing {
        Some(r) => r.answer(fingerprint),
        None => Ok(IdempotencyBegin::InFlight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Timestamp {
        Timestamp::parse("2026-06-01T12:00:00Z").unwrap()
    }

    fn response() -> StoredResponse {
        StoredResponse {
            status: 201,
            body: "{\"id\":\"po_1\"}".into(),
        }
    }

    #[test]
    fn a_free_key_is_taken_and_then_held() {
        assert_eq!(begin_over(None, "fp", t0()).unwrap(), None);
        let held = IdempotencyRecord::in_flight("fp", t0());
        assert_eq!(held.locked_until, t0().unix() + IDEMPOTENCY_LOCK_SECS);
        assert_eq!(held.expires_at, t0().unix() + IDEMPOTENCY_TTL_SECS);
        let soon = t0().plus_seconds(IDEMPOTENCY_LOCK_SECS);
        assert_eq!(
            begin_over(Some(&held), "fp", soon).unwrap(),
            Some(IdempotencyBegin::InFlight)
        );
        assert_eq!(
            begin_over(Some(&held), "other", soon).unwrap(),
            Some(IdempotencyBegin::Mismatch)
        );
    }

    #[test]
    fn a_crashed_request_s_lock_is_taken_over() {
        let held = IdempotencyRecord::in_flight("fp", t0());
        let late = t0().plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
        assert!(held.is_free(late));
        assert_eq!(begin_over(Some(&held), "other", late).unwrap(), None);
    }

    #[test]
    fn completed_requests_replay_until_they_expire() {
        let done = IdempotencyRecord::completed("fp", &response(), t0());
        assert_eq!(done.locked_until, 0);
        let later = t0().plus_seconds(IDEMPOTENCY_TTL_SECS);
        assert_eq!(
            begin_over(Some(&done), "fp", later).unwrap(),
            Some(IdempotencyBegin::Replay(response()))
        );
        assert_eq!(
            begin_over(Some(&done), "other", later).unwrap(),
            Some(IdempotencyBegin::Mismatch)
        );
        assert_eq!(
            begin_over(Some(&done), "fp", later.plus_seconds(1)).unwrap(),
            None
        );
    }

    fn scope() -> IdempotencyScope {
        IdempotencyScope {
            organization_id: crate::model::OrgId::generate(),
            mode: crate::model::KeyMode::Test,
            key: "k".into(),
        }
    }

    #[test]
    fn only_the_holder_s_own_lock_completes_or_releases() {
        let (held, hold) = take(&scope(), "fp", t0());
        assert_eq!(held, IdempotencyRecord::in_flight("fp", t0()));
        assert_eq!(hold.locked_until, held.locked_until);
        assert!(held.is_held_by(&hold));
        // Another request's key, or a completed one, is not this hold's.
        let (_, other) = take(&scope(), "other", t0());
        assert!(!held.is_held_by(&other));
        let done = IdempotencyRecord::completed("fp", &response(), t0());
        assert!(!done.is_held_by(&hold));
        // The same request retried after the lock ran out took the key over: the first
        // attempt's hold no longer counts, though its fingerprint is the same.
        let late = t0().plus_seconds(IDEMPOTENCY_LOCK_SECS + 1);
        assert_eq!(begin_over(Some(&held), "fp", late).unwrap(), None);
        let (successor, retry) = take(&scope(), "fp", late);
        assert!(successor.is_held_by(&retry));
        assert!(!successor.is_held_by(&hold));
    }

    #[test]
    fn a_refused_take_answers_from_what_was_read() {
        let done = IdempotencyRecord::completed("fp", &response(), t0());
        assert_eq!(
            after_refused_take(Some(&done), "fp").unwrap(),
            IdempotencyBegin::Replay(response())
        );
        assert_eq!(
            after_refused_take(None, "fp").unwrap(),
            IdempotencyBegin::InFlight
        );
    }

    #[test]
    fn unreadable_records_are_corrupt() {
        let mut done = IdempotencyRecord::completed("fp", &response(), t0());
        done.response = None;
        assert!(matches!(done.answer("fp"), Err(StoreError::Corrupt(_))));
        done.response = Some("null".into());
        assert!(matches!(done.answer("fp"), Err(StoreError::Corrupt(_))));
        assert!(IdempotencyState::parse("paused").is_err());
        for s in [IdempotencyState::InFlight, IdempotencyState::Completed] {
            assert_eq!(IdempotencyState::parse(s.as_str()).unwrap(), s);
        }
    }
}
