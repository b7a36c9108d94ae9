//! Records as DynamoDB stores them: their JSON deflated against a preset dictionary, in a
//! binary attribute.
//!
//! DynamoDB charges a write unit per started kilobyte of the item, twice in a transaction,
//! and again for each index that copies it. A paid order's JSON is about 2.9 KB and the event
//! recording its completion, which carries the order, about 3.2 KB: 3 to 4 units per write.
//! Most of those bytes are field names and the structure around them, the same in every
//! record, so deflate with a preset dictionary of them (RFC 1951's raw format, as zlib's
//! `deflateSetDictionary` primes it) brings the order to about 500 bytes and the event to about
//! 550, and each item under a kilobyte. AWS's own guidance for large attributes is the same
//! (compress them into a binary attribute).
//!
//! A packed record is a format byte and the deflated JSON. Format 1 is raw deflate primed with
//! `docs-v1.dict`. That file can never change: every record written with it would become
//! unreadable. A better dictionary is a new format byte and a new file beside it, and readers
//! keep every old one. (v1 was made from the records of one paid order with webhooks: each
//! record's JSON with its identifiers, amounts and times emptied, the most frequent kinds
//! last, since deflate codes nearer matches in fewer bits.)
//!
//! Records stored as JSON text before this format keep working: readers take both.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

const FORMAT_V1: u8 = 1;
static DICTIONARY_V1: &[u8] = include_bytes!("docs-v1.dict");

/// A record's JSON is never larger than this unpacked (DynamoDB's item limit is 400 KB; a
/// packed value that claims more is damaged or hostile, not a record of ours).
const MAX_UNPACKED: usize = 4 << 20;

/// The environment variable that chooses how records are written: `packed` (the default) or
/// `json`, JSON text as versions before packing wrote it. Readers take both whatever it says.
/// `json` is for upgrading a stack deployed before packed records: during the update old and
/// new functions run side by side, and the old ones cannot read a packed record (an old
/// stream consumer would skip a packed event, and its webhooks with it). Deploy once with
/// `json`, then with `packed`.
pub const FORMAT_VAR: &str = "PAYORDERS_RECORD_FORMAT";

/// Whether records are written packed, given [`FORMAT_VAR`]'s value; any other value than the
/// two is refused (a function's configuration fails at its first invocation).
pub fn writes_packed(setting: Option<&str>) -> Result<bool, String> {
    match setting.unwrap_or_default() {
        "" | "packed" => Ok(true),
        "json" => Ok(false),
        other => Err(format!("{other:?} is neither \"packed\" nor \"json\"")),
    }
}

/// `json` packed in the current format.
pub fn pack(json: &[u8]) -> Vec<u8> {
    // Level 6: level 9 saves a byte or two on an order and takes a quarter longer.
    let mut c = Compress::new(Compression::default(), false);
    c.set_dictionary(DICTIONARY_V1)
        .expect("a dictionary can prime a fresh raw deflate stream");
    let mut out = Vec::with_capacity(json.len() / 2 + 64);
    out.push(FORMAT_V1);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&json[consumed..], &mut out, FlushCompress::Finish)
            .expect("deflating into memory cannot fail");
        if status == Status::StreamEnd {
            return out;
        }
        out.reserve(out.capacity().max(64));
    }
}

/// The JSON text of a packed record: what both its readers (the store, the stream
/// consumers) parse.
pub fn unpack_text(packed: &[u8]) -> Result<String, String> {
    String::from_utf8(unpack(packed)?).map_err(|e| format!("packed record: {e}"))
}

/// The JSON of a packed record.
pub fn unpack(packed: &[u8]) -> Result<Vec<u8>, String> {
    let (format, body) = packed
        .split_first()
        .ok_or_else(|| "an empty packed record".to_owned())?;
    if *format != FORMAT_V1 {
        return Err(format!("packed record in unknown format {format}"));
    }
    let mut d = Decompress::new(false);
    d.set_dictionary(DICTIONARY_V1)
        .map_err(|e| format!("packed record: {e}"))?;
    // Room for a typical record at once, and never beyond the limit and one byte more, so a
    // record over the limit is caught however well it compresses.
    let mut out = Vec::with_capacity((body.len() * 6).clamp(64, MAX_UNPACKED + 1));
    loop {
        let consumed = d.total_in() as usize;
        let produced = d.total_out();
        let status = d
            .decompress_vec(&body[consumed..], &mut out, FlushDecompress::Finish)
            .map_err(|e| format!("packed record: {e}"))?;
        if out.len() > MAX_UNPACKED {
            return Err(format!("packed record larger than {MAX_UNPACKED} bytes"));
        }
        match status {
            Status::StreamEnd if d.total_in() as usize == body.len() => return Ok(out),
            Status::StreamEnd => return Err("packed record: bytes after its end".into()),
            _ if out.len() == out.capacity() => {
                let room = out.capacity().min(MAX_UNPACKED + 1 - out.len());
                out.reserve_exact(room);
            }
            _ if d.total_out() == produced && d.total_in() as usize == consumed => {
                return Err("packed record: truncated".into());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn records_are_packed_unless_json_is_asked_for() {
        assert_eq!(writes_packed(None), Ok(true));
        assert_eq!(writes_packed(Some("")), Ok(true));
        assert_eq!(writes_packed(Some("packed")), Ok(true));
        assert_eq!(writes_packed(Some("json")), Ok(false));
        assert!(writes_packed(Some("JSON")).is_err());
        assert!(writes_packed(Some("text")).is_err());
    }

    #[test]
    fn the_v1_dictionary_never_changes() {
        // Every record written in format 1 needs exactly these bytes to be read again. A new
        // dictionary is a new format, never an edit of this one.
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_V1)),
            "d6dfd07bbac820d0db4333a1f518fcba5d681d6db8fbf03bfc742dc93f283957"
        );
    }

    #[test]
    fn a_record_comes_back_byte_for_byte_and_smaller() {
        let mut order = crate::testing::order(
            &crate::model::OrgId::generate(),
            false,
            crate::model::Timestamp::now(),
        );
        order.payment = Some(crate::testing::payment(
            "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913",
            25_000_000,
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ));
        let json = serde_json::to_vec(&order).unwrap();
        let packed = pack(&json);
        assert_eq!(packed[0], FORMAT_V1);
        assert_eq!(unpack(&packed).unwrap(), json);
        assert!(
            packed.len() * 3 < json.len(),
            "an order with its payment packs to {} of its {} bytes",
            packed.len(),
            json.len()
        );
        for text in ["", "{}", "\u{1F600} not json at all", &"x".repeat(300_000)] {
            assert_eq!(unpack(&pack(text.as_bytes())).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn damaged_or_hostile_packed_records_are_errors_not_panics() {
        let json = br#"{"id":"po_1","status":"COMPLETED","version":4}"#;
        let good = pack(json);
        assert!(unpack(&[]).is_err());
        assert!(unpack(&[2, 0, 0]).unwrap_err().contains("unknown format 2"));
        assert!(unpack(&good[..good.len() - 2]).is_err(), "truncated");
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(unpack(&trailing).unwrap_err().contains("after its end"));
        // Damage inside the stream is an error or other bytes (which then fail to parse as
        // the record); the last byte is left alone, as it may end in unused padding bits.
        for i in 1..good.len() - 1 {
            let mut flipped = good.clone();
            flipped[i] ^= 0x5a;
            if let Ok(out) = unpack(&flipped) {
                assert_ne!(out, json, "byte {i} damaged");
            }
        }
        // No deflate stream at all after the format byte: an error, not a wait for more.
        assert!(unpack(&[FORMAT_V1]).unwrap_err().contains("truncated"));
        // Zeros deflate to almost nothing: a record of exactly the limit unpacks, one byte
        // more is refused, whatever the compression (a bomb stops at the limit).
        let zeros = |n: usize| {
            let mut out = vec![FORMAT_V1];
            let mut c = Compress::new(Compression::fast(), false);
            let input = vec![b'0'; n];
            while c
                .compress_vec(
                    &input[c.total_in() as usize..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .unwrap()
                != Status::StreamEnd
            {
                out.reserve(out.capacity());
            }
            out
        };
        assert_eq!(unpack(&zeros(MAX_UNPACKED)).unwrap().len(), MAX_UNPACKED);
        for n in [MAX_UNPACKED + 1, 3 * MAX_UNPACKED / 2] {
            let bomb = zeros(n);
            assert!(bomb.len() < n / 100);
            assert!(
                unpack(&bomb).unwrap_err().contains("larger than"),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn incompressible_records_grow_the_buffers_and_come_back() {
        // A chain of SHA-256 digests: nothing in it repeats, so the packed form outgrows its
        // first buffer, and unpacking grows its own from the same start.
        let mut bytes = Vec::new();
        let mut digest = Sha256::digest(b"seed");
        while bytes.len() < 100_000 {
            bytes.extend_from_slice(&digest);
            digest = Sha256::digest(digest);
        }
        let packed = pack(&bytes);
        assert!(
            packed.len() > bytes.len() / 2 + 64,
            "the first buffer was outgrown"
        );
        assert_eq!(unpack(&packed).unwrap(), bytes);
    }
}
