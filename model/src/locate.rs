//! Where a value sits in a TOML text, from the TOML parser's own spans.
//!
//! Checks that run after deserializing (unknown nodes, bounds) know the key path of the
//! value at fault, not its position. Searching the text for `[[step]]` is fooled by the
//! same words in a description or a comment and by `[[ step ]]`; the parser's spans are
//! not.

use crate::limits::PathPart;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The byte range of the deepest part of `path` that exists in `text`: the value itself,
/// else its nearest enclosing table or array. `None` when `text` does not parse.
pub fn span_of(text: &str, path: &[PathPart]) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut best = root.span();
    let mut here: &DeTable<'_> = root.get_ref();
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for part in path {
        let next = match (part, value.map(|v| v.get_ref())) {
            (PathPart::Key(key), None) => table_get(here, key),
            (PathPart::Key(key), Some(DeValue::Table(t))) => table_get(t, key),
            (PathPart::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = next.span();
        if let DeValue::Table(t) = next.get_ref() {
            here = t;
        }
        value = Some(next);
    }
    Some(best)
}

/// The span of the first value under `path` (searched depth first) that is the string
/// `needle`: where an unknown node name is written inside a step.
pub fn span_of_string(text: &str, path: &[PathPart], needle: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut here: &DeTable<'_> = root.get_ref();
    for part in path {
        let next = match (part, value.map(|v| v.get_ref())) {
            (PathPart::Key(key), None) => table_get(here, key),
            (PathPart::Key(key), Some(DeValue::Table(t))) => table_get(t, key),
            (PathPart::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        }?;
        if let DeValue::Table(t) = next.get_ref() {
            here = t;
        }
        value = Some(next);
    }
    find_string(value?, needle)
}

fn table_get<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

fn find_string(value: &Spanned<DeValue<'_>>, needle: &str) -> Option<Range<usize>> {
    match value.get_ref() {
        DeValue::String(s) if s.as_ref() == needle => Some(value.span()),
        DeValue::Table(t) => t.iter().find_map(|(_, v)| find_string(v, needle)),
        DeValue::Array(a) => a.iter().find_map(|v| find_string(v, needle)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathPart::{Index, Key};

    const TEXT: &str = "description = \"\"\"\n[[step]] in words\n\"\"\"\n# [[step]]\n[[ step ]]\naction = \"start\"\nnode = \"a\"\n\n[[step]]\naction = \"start\"\nnode = \"d\"\n";

    fn line(text: &str, at: usize) -> usize {
        text[..at].matches('\n').count() + 1
    }

    #[test]
    fn finds_the_value_not_words_that_look_like_a_header() {
        let span = span_of(TEXT, &[Key("step"), Index(1), Key("node")]).unwrap();
        assert_eq!(line(TEXT, span.start), 11);
        assert_eq!(&TEXT[span], "\"d\"");
        let span = span_of_string(TEXT, &[Key("step"), Index(1)], "d").unwrap();
        assert_eq!(line(TEXT, span.start), 11);
    }

    #[test]
    fn falls_back_to_the_nearest_existing_part() {
        let span = span_of(TEXT, &[Key("step"), Index(0), Key("missing")]).unwrap();
        assert!(line(TEXT, span.start) >= 5, "{span:?}");
        assert!(line(TEXT, span.start) <= 7, "{span:?}");
    }
}
