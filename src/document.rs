//! Reading a JSON document without caring how it is held: as serde's values (manifests, tests)
//! or as the engine's (a review body, parsed once straight into what the policies read). The
//! admission facts (images, risk labels, what a review is about) read either through this.

use regorus::Value as Engine;
use serde_json::Value as Json;

/// A JSON value, read-only.
pub trait Document {
    /// The field `key` of an object; `None` for a missing field and for a non-object.
    fn field(&self, key: &str) -> Option<&Self>;
    /// The text of a string.
    fn text(&self) -> Option<&str>;
    /// The value of a boolean.
    fn boolean(&self) -> Option<bool>;
    /// The items of an array, or `None` for anything else.
    fn items(&self) -> Option<impl Iterator<Item = &Self>>;
    /// The fields of an object in key order, or `None` for anything else.
    fn fields(&self) -> Option<impl Iterator<Item = (&str, &Self)>>;
    fn is_object(&self) -> bool;
    fn is_null(&self) -> bool;

    /// The value at a JSON-pointer-like path of field names (`/spec/template`).
    fn at(&self, path: &str) -> Option<&Self> {
        path.split('/')
            .filter(|name| !name.is_empty())
            .try_fold(self, |value, name| value.field(name))
    }

    /// The text of the field `key`, if it is a string (`key` is one name, slashes and all).
    fn text_of(&self, key: &str) -> Option<&str> {
        self.field(key).and_then(Document::text)
    }

    /// The text at `path`, if it is a string.
    fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).and_then(Document::text)
    }
}

impl Document for Json {
    fn field(&self, key: &str) -> Option<&Json> {
        self.get(key)
    }

    fn text(&self) -> Option<&str> {
        self.as_str()
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn items(&self) -> Option<impl Iterator<Item = &Json>> {
        self.as_array().map(|items| items.iter())
    }

    fn fields(&self) -> Option<impl Iterator<Item = (&str, &Json)>> {
        self.as_object()
            .map(|fields| fields.iter().map(|(key, value)| (key.as_str(), value)))
    }

    fn is_object(&self) -> bool {
        self.is_object()
    }

    fn is_null(&self) -> bool {
        self.is_null()
    }
}

impl Document for Engine {
    fn field(&self, key: &str) -> Option<&Engine> {
        // Objects keep string keys sorted: a scan stops at the first key past `key`, with no
        // key value built for the lookup.
        let Engine::Object(fields) = self else { return None };
        for (name, value) in fields.iter() {
            match name {
                Engine::String(name) if name.as_ref() == key => return Some(value),
                Engine::String(name) if name.as_ref() > key => return None,
                _ => {}
            }
        }
        None
    }

    fn text(&self) -> Option<&str> {
        match self {
            Engine::String(text) => Some(text),
            _ => None,
        }
    }

    fn boolean(&self) -> Option<bool> {
        match self {
            Engine::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn items(&self) -> Option<impl Iterator<Item = &Engine>> {
        match self {
            Engine::Array(items) => Some(items.iter()),
            _ => None,
        }
    }

    fn fields(&self) -> Option<impl Iterator<Item = (&str, &Engine)>> {
        let Engine::Object(fields) = self else { return None };
        Some(
            fields
                .iter()
                .filter_map(|(key, value)| key.text().map(|key| (key, value))),
        )
    }

    fn is_object(&self) -> bool {
        matches!(self, Engine::Object(_))
    }

    fn is_null(&self) -> bool {
        matches!(self, Engine::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reading gives the same answer from serde's values and from the engine's.
    #[test]
    fn both_forms_read_alike() {
        let text = r#"{"a": {"b": [1, "x", {"c": true}], "d": null, "é": "accent", "A": "upper"}, "z": "last"}"#;
        let json: Json = serde_json::from_str(text).unwrap();
        let engine = Engine::from_json_str(text).unwrap();
        fn readings<D: Document>(doc: &D) -> Vec<String> {
            let items: Vec<_> = doc.at("/a/b").and_then(|b| b.items()).into_iter().flatten().collect();
            let keys: Vec<&str> = doc
                .field("a")
                .and_then(|a| a.fields())
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .collect();
            vec![
                format!("{:?}", doc.text_at("/z")),
                format!("{:?}", doc.text_at("/a/é")),
                format!("{:?}", doc.text_at("/a/A")),
                format!("{:?}", doc.text_of("z")),
                format!("{:?}", doc.at("/a/missing").is_none()),
                format!("{:?}", doc.at("/z/deeper").is_none()),
                format!("{:?}", doc.at("/a/d").map(|d| d.is_null())),
                format!("{}", items.len()),
                format!("{:?}", items.get(1).and_then(|i| i.text())),
                format!(
                    "{:?}",
                    items.get(2).and_then(|i| i.field("c")).and_then(|c| c.boolean())
                ),
                format!("{:?}", items.first().map(|i| (i.is_object(), i.text()))),
                format!("{keys:?}"),
                format!("{:?}", doc.is_object()),
            ]
        }
        assert_eq!(readings(&json), readings(&engine));
        assert_eq!(readings(&json)[0], "Some(\"last\")");
    }
}
