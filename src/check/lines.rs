//! Where each object of a manifest file starts: the line of every document's root node and of
//! every item of a `List`, so that a finding can point at its object in a pull request's diff;
//! and where each field of a file like app.yaml is, so that a problem names its line. The
//! values themselves are read by `yaml_serde`; this reads only the positions.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser};

/// The first lines (1-based) of one document's objects.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DocumentLines {
    /// The document's root node.
    pub root: Option<usize>,
    /// The items of its top-level `items` sequence (a `List`'s objects), in order.
    pub items: Vec<usize>,
}

/// One document's positions: its objects' lines, and where each of its fields is.
#[derive(Default)]
struct Scanned {
    lines: DocumentLines,
    /// Every mapping key outside sequences, by its dotted path (`image.repository`).
    fields: BTreeMap<String, usize>,
}

/// An open collection while the events are read.
enum Open {
    /// A mapping: its dotted path (`None` inside a sequence), whether its next node is a key,
    /// and the last key read.
    Mapping {
        path: Option<String>,
        at_key: bool,
        key: String,
    },
    /// A sequence: whether it is the root mapping's `items`.
    Sequence { items: bool },
}

/// Lines as git, editors and CI annotations count them: each ends at a `\n`. YAML also ends a
/// line at a lone `\r`, so the parser's own line numbers can point past a file's last line.
struct Newlines(Vec<usize>);

impl Newlines {
    fn of(text: &str) -> Newlines {
        Newlines(
            text.chars()
                .enumerate()
                .filter(|(_, c)| *c == '\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The line (1-based) of the character at `index`.
    fn line_of(&self, index: usize) -> usize {
        1 + self.0.partition_point(|&newline| newline < index)
    }
}

/// Every document of `text` in order, from one walk over its events; `None` when the text does
/// not scan as YAML (the values' reader reports that).
fn scan(text: &str) -> Option<Vec<Scanned>> {
    let join = |path: &str, key: &str| match path {
        "" => key.to_string(),
        path => format!("{path}.{key}"),
    };
    let newlines = Newlines::of(text);
    let mut documents: Vec<Scanned> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        let line = newlines.line_of(span.start.index());
        match event {
            Event::DocumentStart(_) => documents.push(Scanned::default()),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..) => {
                let Some(document) = documents.last_mut() else {
                    continue;
                };
                // Where the node sits decides the path a collection that starts here has.
                let mut child = None;
                match stack.last_mut() {
                    None => {
                        document.lines.root = Some(line);
                        child = Some(String::new());
                    }
                    Some(Open::Mapping { path, at_key, key }) => {
                        if *at_key {
                            *key = match &event {
                                Event::Scalar(text, ..) => text.to_string(),
                                _ => String::new(),
                            };
                            if let Some(path) = path {
                                document.fields.entry(join(path, key)).or_insert(line);
                            }
                        } else {
                            child = path.as_deref().map(|path| join(path, key));
                        }
                        *at_key = !*at_key;
                    }
                    Some(Open::Sequence { items }) => {
                        if *items {
                            document.lines.items.push(line);
                        }
                    }
                }
                match event {
                    Event::MappingStart(..) => stack.push(Open::Mapping {
                        path: child,
                        at_key: true,
                        key: String::new(),
                    }),
                    Event::SequenceStart(..) => stack.push(Open::Sequence {
                        items: child.as_deref() == Some("items"),
                    }),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Some(documents)
}

/// The lines of every document of `text`, in order; `None` when the text does not scan as YAML
/// (the values' reader reports that).
pub fn document_lines(text: &str) -> Option<Vec<DocumentLines>> {
    Some(scan(text)?.into_iter().map(|document| document.lines).collect())
}

/// The line of every mapping key of the first document, by its dotted path (`image.repository`);
/// keys inside sequences are not named. `None` when the text does not scan.
pub fn field_lines(text: &str) -> Option<BTreeMap<String, usize>> {
    Some(
        scan(text)?
            .into_iter()
            .next()
            .map(|document| document.fields)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(root: usize, items: &[usize]) -> DocumentLines {
        DocumentLines {
            root: Some(root),
            items: items.to_vec(),
        }
    }

    #[test]
    fn each_document_starts_at_its_first_node() {
        let text = "# a comment\napiVersion: v1\nkind: Pod\n---\n\n---\n# the second object\nkind: Pod\nmetadata:\n  name: b\n";
        let found = document_lines(text).unwrap();
        // The empty document counts (as for the values' reader, which gives it no object).
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!((&found[0], &found[2]), (&lines(2, &[]), &lines(8, &[])));
    }

    #[test]
    fn a_leading_separator_starts_the_first_document() {
        let found = document_lines("# c\n---\nkind: Pod\n").unwrap();
        assert_eq!(found, vec![lines(3, &[])]);
    }

    #[test]
    fn a_lists_items_start_at_their_dashes_nested_sequences_do_not_count() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  spec:\n    containers:\n    - name: a\n    - name: b\n-   kind: Service\n    metadata: {name: s}\nmetadata:\n  items: [1, 2]\n";
        assert_eq!(document_lines(text).unwrap(), vec![lines(1, &[4, 9])]);
    }

    #[test]
    fn json_and_flow_lists_have_lines_too() {
        let text =
            "{\n  \"kind\": \"List\",\n  \"items\": [\n    {\"kind\": \"Pod\"},\n    {\"kind\": \"Pod\"}\n  ]\n}\n";
        assert_eq!(document_lines(text).unwrap(), vec![lines(1, &[4, 5])]);
    }

    #[test]
    fn fields_by_their_dotted_paths() {
        let text = "# app\nname: a\nimage:\n  repository: r\n  tag: \"1\"\nlist:\n- x: 1\n---\nother: 2\n";
        let found = field_lines(text).unwrap();
        let expected: BTreeMap<String, usize> = [
            ("name", 2),
            ("image", 3),
            ("image.repository", 4),
            ("image.tag", 5),
            ("list", 6),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_lone_carriage_return_starts_no_line() {
        // YAML reads "a: 1", "" and "b: 2" here; git, and so a pull request, one line.
        let text = "a: 1\r\rb: 2\n---\nkind: Pod\n";
        let lines = document_lines(text).unwrap();
        assert_eq!(lines.iter().map(|d| d.root).collect::<Vec<_>>(), [Some(1), Some(3)]);
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn text_that_does_not_scan_has_no_lines() {
        assert_eq!(document_lines("a: [1, 2\n"), None);
    }
}
