//! [`Loose`]: any TOML value, kept with the spans of its items, for keys that accept more than
//! one shape (`devices = "all" | 2 | [0, "GPU-..."]`, `shm = "16g" | 17179869184`,
//! `HF_TOKEN = "..." | { from-host = true }`).
//!
//! serde's untagged enums lose spans and give "did not match any variant"; deserializing into
//! this and matching on it in validation keeps precise positions and lets berth word the error.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The key the TOML deserializer uses to hand a date-time through serde's data model.
const DATETIME_KEY: &str = "$__toml_private_datetime";

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Loose {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Spanned<Loose>>),
    /// Entries in file order; keys are plain strings (values keep their spans).
    Table(Vec<(String, Spanned<Loose>)>),
    DateTime,
}

impl Loose {
    /// What it is, for "expected ..., found {kind}" messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Loose::Str(_) => "a string",
            Loose::Int(_) => "an integer",
            Loose::Float(_) => "a float",
            Loose::Bool(_) => "a boolean",
            Loose::List(_) => "an array",
            Loose::Table(_) => "a table",
            Loose::DateTime => "a date-time",
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
        i64::try_from(v).map(Loose::Int).map_err(|_| E::custom("integer out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Loose>>()? {
            items.push(item);
        }
        Ok(Loose::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == DATETIME_KEY {
                // The value is the date-time's text; its shape is all validation needs.
                map.next_value::<IgnoredAny>()?;
                return Ok(Loose::DateTime);
            }
            entries.push((key, map.next_value::<Spanned<Loose>>()?));
        }
        Ok(Loose::Table(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Doc {
        v: Spanned<Loose>,
    }

    fn loose(text: &str) -> Spanned<Loose> {
        toml::from_str::<Doc>(text).expect("parses").v
    }

    #[test]
    fn keeps_every_shape_and_item_spans() {
        assert_eq!(loose("v = 'x'").into_inner(), Loose::Str("x".into()));
        assert_eq!(loose("v = 3").into_inner(), Loose::Int(3));
        assert_eq!(loose("v = 1.5").into_inner(), Loose::Float(1.5));
        assert_eq!(loose("v = true").into_inner(), Loose::Bool(true));
        assert_eq!(loose("v = 1979-05-27").into_inner(), Loose::DateTime);
        let list = loose("v = [1, 'a']");
        let Loose::List(items) = list.get_ref() else { panic!("not a list: {list:?}") };
        assert_eq!(items.iter().map(Spanned::span).collect::<Vec<_>>(), [5..6, 8..11]);
        let table = loose("v = { from-host = true }").into_inner();
        let Loose::Table(entries) = table else { panic!("not a table") };
        assert_eq!(entries[0].0, "from-host");
        assert_eq!(entries[0].1.get_ref(), &Loose::Bool(true));
    }
}
