//! Decoding a bincode (serde, standard configuration) payload that came from
//! a file: nothing is allocated for what a length field claims beyond what
//! the bytes that remain can hold.
//!
//! bincode's serde decoder has two gaps on hostile input. A `String` (or
//! byte buffer) of claimed length `n` is decoded into `vec![0; n]` before
//! its bytes are read, so a length of 2^40 aborts the process. And every
//! sequence or map hands its claimed length to serde as the size hint, from
//! which `Vec` and friends reserve up to 1 MiB each, at every nesting level,
//! before the first element is read. [`decode`] wraps the deserializer in
//! [`Capped`], which (1) reads strings and byte buffers as borrowed slices
//! of the payload (bounds-checked against the bytes present, then copied),
//! and (2) caps every size hint at the number of payload bytes still
//! unread (each element takes at least one byte), so a reservation never
//! exceeds what the file can fill.

use std::cell::Cell;
use std::fmt;

use bincode::de::read::{BorrowReader, Reader, SliceReader};
use bincode::error::DecodeError;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

thread_local! {
    /// Payload bytes not yet read by the innermost [`decode`] on this thread.
    static LEFT: Cell<usize> = const { Cell::new(0) };
}

fn left() -> usize {
    LEFT.with(Cell::get)
}

/// A slice reader that publishes how many bytes remain (for the size hints).
struct Tracked<'a>(SliceReader<'a>, usize);

impl Tracked<'_> {
    fn consumed(&mut self, n: usize) {
        self.1 = self.1.saturating_sub(n);
        LEFT.with(|l| l.set(self.1));
    }
}

impl Reader for Tracked<'_> {
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        self.0.read(bytes)?;
        self.consumed(bytes.len());
        Ok(())
    }

    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.peek_read(n)
    }

    fn consume(&mut self, n: usize) {
        self.0.consume(n);
        self.consumed(n);
    }
}

impl<'a> BorrowReader<'a> for Tracked<'a> {
    fn take_bytes(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        let b = self.0.take_bytes(length)?;
        self.consumed(length);
        Ok(b)
    }
}

/// Decodes a `T` from `payload` (bincode 2, standard configuration, the
/// layout `bincode::serde::encode_to_vec` writes); returns it with the
/// number of bytes used. See the module docs for what is checked.
pub(crate) fn decode<T: de::DeserializeOwned>(payload: &[u8]) -> Result<(T, usize), DecodeError> {
    let outer = left();
    LEFT.with(|l| l.set(payload.len()));
    let mut dec = bincode::de::DecoderImpl::new(
        Tracked(SliceReader::new(payload), payload.len()),
        bincode::config::standard(),
        (),
    );
    let r = <bincode::serde::BorrowCompat<Root<T>> as bincode::BorrowDecode<'_, ()>>::borrow_decode(&mut dec);
    let used = payload.len() - left();
    LEFT.with(|l| l.set(outer));
    r.map(|v| (v.0.0, used))
}

/// The decoded value, deserialized through [`Capped`].
struct Root<T>(T);

impl<'de, T: de::DeserializeOwned> de::Deserialize<'de> for Root<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(Capped(d)).map(Root)
    }
}

/// A deserializer whose strings are read borrowed and whose size hints are
/// capped at the bytes left (see the module docs).
struct Capped<D>(D);

macro_rules! forward_deserialize {
    ($($m:ident),* $(,)?) => {$(
        fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
            self.0.$m(Wrap(v))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Capped<D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_bytes,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    /// Same encoding as a `str`: read it borrowed (bounds-checked), the
    /// visitor copies it.
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_str(Wrap(v))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_bytes(Wrap(v))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(v))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(v))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(v))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(v))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, Wrap(v))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(v))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor that passes [`Capped`] on to whatever it is handed.
struct Wrap<V>(V);

macro_rules! forward_visit {
    ($($m:ident($t:ty)),* $(,)?) => {$(
        fn $m<E: de::Error>(self, v: $t) -> Result<Self::Value, E> {
            self.0.$m(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_borrowed_str(&'de str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_borrowed_bytes(&'de [u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Capped(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Capped(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Seq(a))
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Map(a))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Enum(a))
    }
}

/// A seed that deserializes through [`Capped`].
struct Seed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Capped(d))
    }
}

/// A sequence whose size hint is at most the bytes left.
struct Seq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint().map(|n| n.min(left()))
    }
}

/// A map whose size hint is at most the bytes left.
struct Map<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint().map(|n| n.min(left()))
    }
}

/// An enum whose variant's content deserializes through [`Capped`].
struct Enum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<A> {
    type Error = A::Error;
    type Variant = Variant<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        self.0.variant_seed(Seed(seed)).map(|(v, a)| (v, Variant(a)))
    }
}

struct Variant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(v))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum E {
        A,
        B(Vec<u8>),
        C { x: Option<String>, y: (u32, f32) },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        name: String,
        v: Vec<Vec<f32>>,
        m: std::collections::BTreeMap<String, E>,
    }

    #[test]
    fn decodes_what_bincode_serde_encodes() {
        let s = S {
            name: "weight".into(),
            v: vec![vec![1.0, 2.5], vec![]],
            m: [
                ("a".to_string(), E::A),
                ("b".to_string(), E::B(vec![1, 2, 3])),
                ("c".to_string(), E::C { x: Some("x".into()), y: (7, -1.0) }),
            ]
            .into(),
        };
        let bytes = bincode::serde::encode_to_vec(&s, bincode::config::standard()).unwrap();
        let (back, used): (S, usize) = decode(&bytes).unwrap();
        assert_eq!((back, used), (s, bytes.len()));
    }

    #[test]
    fn a_lying_string_length_is_an_error() {
        // a string of claimed length 2^40 (varint tag 253, then u64)
        let mut b = vec![253];
        b.extend_from_slice(&(1u64 << 40).to_le_bytes());
        b.extend_from_slice(b"abc");
        assert!(decode::<String>(&b).is_err());
        // a sequence of 2^64-1 vectors: no reservation beyond the bytes present
        let mut b = vec![253];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode::<Vec<Vec<u64>>>(&b).is_err());
    }
}
