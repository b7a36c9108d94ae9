//! Writing a record's fields into an API view as they are serialized, instead of through a
//! `serde_json::Value` that is built, copied into a new map in the view's order and then
//! written out (a GET spent a tenth of its time on that).

use serde::Serialize;
use serde::ser::{Error, Impossible, SerializeMap, SerializeStruct, Serializer};

/// Writes the head every API view of a record starts with: `id` and `object`, then the
/// record's own fields but those named in `skip` (which names `id` too).
pub(crate) fn record_fields<M: SerializeMap, I: Serialize + ?Sized, T: Serialize + ?Sized>(
    map: &mut M,
    id: &I,
    object: &'static str,
    record: &T,
    skip: &'static [&'static str],
) -> Result<(), M::Error> {
    map.serialize_entry("id", id)?;
    map.serialize_entry("object", object)?;
    struct_fields(map, record, skip)
}

/// Writes the fields of `value`, a struct, as entries of `map`, in their order, leaving out
/// the fields named in `skip`. Anything but a struct is an error.
pub(crate) fn struct_fields<M: SerializeMap, T: Serialize + ?Sized>(
    map: &mut M,
    value: &T,
    skip: &'static [&'static str],
) -> Result<(), M::Error> {
    value.serialize(Fields { map, skip })
}

struct Fields<'m, M> {
    map: &'m mut M,
    skip: &'static [&'static str],
}

fn not_a_struct<E: Error>() -> E {
    E::custom("an API view is made of a struct's fields")
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $arg),*) -> Result<(), M::Error> {
            Err(not_a_struct())
        })*
    };
}

impl<'m, M: SerializeMap> Serializer for Fields<'m, M> {
    type Ok = ();
    type Error = M::Error;
    type SerializeSeq = Impossible<(), M::Error>;
    type SerializeTuple = Impossible<(), M::Error>;
    type SerializeTupleStruct = Impossible<(), M::Error>;
    type SerializeTupleVariant = Impossible<(), M::Error>;
    type SerializeMap = Impossible<(), M::Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), M::Error>;

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), M::Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), M::Error> {
        Err(not_a_struct())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, M::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, M::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, M::Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, M::Error> {
        Err(not_a_struct())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, M::Error> {
        Err(not_a_struct())
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, M::Error> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, M::Error> {
        Err(not_a_struct())
    }
}

impl<'m, M: SerializeMap> SerializeStruct for Fields<'m, M> {
    type Ok = ();
    type Error = M::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        if self.skip.contains(&key) {
            return Ok(());
        }
        self.map.serialize_entry(key, value)
    }

    fn end(self) -> Result<(), M::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        a: u8,
    }

    #[derive(Serialize)]
    struct Record {
        id: &'static str,
        secret: &'static str,
        inner: Inner,
        #[serde(skip_serializing_if = "Option::is_none")]
        gone: Option<u8>,
        last: Vec<u8>,
    }

    #[derive(Serialize)]
    struct Wrapped(Record);

    fn view<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        let mut map = (&mut ser).serialize_map(None)?;
        map.serialize_entry("object", "record")?;
        struct_fields(&mut map, value, &["secret"])?;
        map.serialize_entry("extra", &1)?;
        SerializeMap::end(map)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn record() -> Record {
        Record {
            id: "r_1",
            secret: "s",
            inner: Inner { a: 7 },
            gone: None,
            last: vec![1, 2],
        }
    }

    #[test]
    fn a_structs_fields_go_into_the_map_in_order_without_the_skipped_ones() {
        let want = r#"{"object":"record","id":"r_1","inner":{"a":7},"last":[1,2],"extra":1}"#;
        assert_eq!(view(&record()).unwrap(), want);
        assert_eq!(view(&Wrapped(record())).unwrap(), want);
        // The same through a `serde_json::Value`.
        let mut map = serde_json::value::Serializer.serialize_map(None).unwrap();
        struct_fields(&mut map, &record(), &["secret", "last"]).unwrap();
        assert_eq!(
            SerializeMap::end(map).unwrap(),
            serde_json::json!({"id": "r_1", "inner": {"a": 7}})
        );
    }

    #[test]
    fn anything_but_a_struct_is_refused() {
        assert!(view(&5).is_err());
        assert!(view(&"text").is_err());
        assert!(view(&vec![1]).is_err());
        assert!(view(&serde_json::json!({"a": 1})).is_err());
        assert!(view(&Some(record())).is_err());
    }
}
