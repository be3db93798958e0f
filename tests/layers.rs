//! The module layering of src/ holds. docs/architecture.md, section `## Floors`, puts every
//! top-level module (feature) of src/ on a floor, in a fenced block of lines `floor N name...`; a
//! feature imports only from features on lower floors, and no files import each other in a cycle.
//!
//! Std only, reading the source as text: a small lexer drops comments, strings and char literals,
//! `#[cfg(test)]` items are skipped (test code may reach anywhere), and every `use` tree and every
//! inline `crate::`/`super::`/`self::` path (`portcullis::` in main.rs) is resolved to the deepest
//! module file that exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Source files by their path under src/ ("images/verify.rs"), so unit tests can use small trees.
type Tree = BTreeMap<String, String>;
type Floors = BTreeMap<String, u32>;

/// One path in `from` that names the module of file `to`.
#[derive(Debug)]
struct Import {
    from: String,
    line: usize,
    path: String,
    to: String,
}

struct Tok {
    text: String,
    line: usize,
}

/// The index of the first char at or after `i` that `stop` accepts, or the end.
fn find(c: &[char], i: usize, stop: impl Fn(char) -> bool) -> usize {
    (i..c.len()).find(|&j| stop(c[j])).unwrap_or(c.len())
}

/// Words, `::` and single punctuation characters. Comments, strings and char literals are dropped
/// so that a path in prose or data is never taken for an import.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let (mut toks, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let start = i;
        let mut push = |text: String| toks.push(Tok { text, line });
        match (c[i], at(i + 1)) {
            ('/', '/') => i = find(&c, i, |ch| ch == '\n'),
            ('/', '*') => i = block_comment_end(&c, i),
            ('"', _) => i = string_end(&c, i + 1),
            ('\'', '\\') => i = find(&c, i + 3, |ch| ch == '\'') + 1,
            ('\'', _) if at(i + 2) == '\'' => i += 3,
            (':', ':') => {
                push("::".into());
                i += 2;
            }
            (ch, _) if ch.is_alphanumeric() || ch == '_' => {
                i = find(&c, i, |ch| !(ch.is_alphanumeric() || ch == '_'));
                let word: String = c[start..i].iter().collect();
                let hashes = find(&c, i, |ch| ch != '#') - i;
                match word.as_str() {
                    "r" | "br" | "cr" if at(i + hashes) == '"' => i = raw_string_end(&c, i + hashes + 1, hashes),
                    _ => push(word),
                }
            }
            // A lone `'` starts a lifetime, whose name follows as a word.
            (ch, _) => {
                if !ch.is_whitespace() {
                    push(ch.to_string());
                }
                i += 1;
            }
        }
        i = i.min(c.len()); // an unterminated literal
        line += c[start..i].iter().filter(|&&ch| ch == '\n').count();
    }
    toks
}

/// Block comments nest in Rust.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        match (c[i], c[i + 1]) {
            ('/', '*') => (depth, i) = (depth + 1, i + 2),
            ('*', '/') => (depth, i) = (depth - 1, i + 2),
            _ => i += 1,
        }
        if depth == 0 {
            return i;
        }
    }
    c.len()
}

fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] != '"' {
        i += if c[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn raw_string_end(c: &[char], i: usize, hashes: usize) -> usize {
    let closes = |j: usize| c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#'));
    (i..c.len()).find(|&j| closes(j)).map_or(c.len(), |j| j + 1 + hashes)
}

fn text(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

fn is_word(s: &str) -> bool {
    s.starts_with(|ch: char| ch.is_alphanumeric() || ch == '_')
}

/// The index just past the item at `i`: its `;`, the bracket that closes its first bracket when
/// `bracketed` (an attribute), else its closing brace. It stops before a bracket it did not open,
/// so a skipped attribute on a field never swallows its struct.
fn item_end(toks: &[Tok], mut i: usize, bracketed: bool) -> usize {
    let mut depth = 0;
    while i < toks.len() {
        match text(toks, i) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return i,
            ")" | "]" if depth == 1 && bracketed => return i + 1,
            "}" if depth == 1 => return i + 1,
            ")" | "]" | "}" => depth -= 1,
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// The module a file defines: [] for lib.rs (and main.rs), ["a", "b"] for a/b.rs and a/b/mod.rs.
fn module_of(file: &str) -> Vec<String> {
    let path = file.strip_suffix(".rs").unwrap_or(file);
    match path.strip_suffix("/mod").unwrap_or(path) {
        "lib" | "main" => vec![],
        path => path.split('/').map(String::from).collect(),
    }
}

/// The file of a library module, if it exists (main.rs is the binary, never a library module).
fn file_of(tree: &Tree, module: &[String]) -> Option<String> {
    let base = module.join("/");
    let files = match module {
        [] => vec!["lib.rs".to_string()],
        _ => vec![format!("{base}.rs"), format!("{base}/mod.rs")],
    };
    files.into_iter().find(|f| tree.contains_key(f) && f != "main.rs")
}

/// The feature a file belongs to; the crate root (lib.rs) only assembles them and has none.
fn feature_of(file: &str) -> Option<String> {
    match file {
        "main.rs" => Some("main".into()),
        _ => module_of(file).first().cloned(),
    }
}

/// The deepest existing module file a path names, seen from module `scope` of `file`; None for
/// other crates (std, serde, ...).
fn resolve(tree: &Tree, file: &str, scope: &[String], path: &[String]) -> Option<String> {
    let first = path.first()?.as_str();
    let ups = path.iter().take_while(|s| *s == "super").count();
    let mut module = match first {
        // main.rs is a crate of its own, which reaches the library as `portcullis`.
        "crate" if file == "main.rs" => return Some(file.into()),
        "crate" => vec![],
        "portcullis" if file == "main.rs" => vec![],
        "self" => scope.to_vec(),
        "super" => scope[..scope.len().checked_sub(ups)?].to_vec(),
        // Since the 2018 edition, `child::x` names a child module without `self::`.
        _ if file != "main.rs" && file_of(tree, &[scope, &path[..1]].concat()).is_some() => scope.to_vec(),
        _ => return None,
    };
    let root = usize::from(matches!(first, "crate" | "portcullis" | "self" | "super"));
    module.extend(path.iter().skip(root).filter(|s| *s != "super").cloned());
    (0..=module.len()).rev().find_map(|k| file_of(tree, &module[..k]))
}

/// A path as written, its line, and the name a `use` brings into scope (none for a glob).
type Leaf = (Vec<String>, usize, Option<String>);

/// Expands the use tree at `i` under `prefix` into full paths; returns the index past the tree.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], leaves: &mut Vec<Leaf>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        let (word, line) = (text(toks, i), toks.get(i).map_or(0, |t| t.line));
        match word {
            "::" => i += 1,
            "*" => {
                leaves.push((path, line, None));
                return i + 1;
            }
            "{" => {
                i += 1;
                while !matches!(text(toks, i), "}" | "") {
                    let next = use_tree(toks, i, &path, leaves);
                    if next == i {
                        break; // not a use tree after all
                    }
                    i = next + usize::from(text(toks, next) == ",");
                }
                return i + 1;
            }
            _ if is_word(word) => {
                // `self` in braces is the prefix itself.
                if word != "self" || path.len() != prefix.len() || prefix.is_empty() {
                    path.push(word.into());
                }
                i += 1;
                if text(toks, i) != "::" {
                    let renamed = text(toks, i) == "as";
                    let name = if renamed {
                        text(toks, i + 1).to_string()
                    } else {
                        path.last().cloned().unwrap_or_default()
                    };
                    leaves.push((path, line, Some(name)));
                    return i + 2 * usize::from(renamed);
                }
            }
            _ => return i,
        }
    }
}

/// The inline path at `i` (`crate::a::B::new`, `review::parse`); returns the index past it.
fn inline_path(toks: &[Tok], mut i: usize, leaves: &mut Vec<Leaf>) -> usize {
    let mut path = vec![text(toks, i).to_string()];
    while text(toks, i + 1) == "::" && is_word(text(toks, i + 2)) {
        path.push(text(toks, i + 2).into());
        i += 2;
    }
    leaves.push((path, toks[i].line, None));
    i + 1
}

/// A file's imports, and the files its `#[cfg(test)] mod name;` declarations make test code.
fn scan(tree: &Tree, file: &str) -> (Vec<Import>, Vec<String>) {
    let toks = lex(&tree[file]);
    // Inline `mod name { ... }` blocks, each with the brace depth it is opened at.
    let mut scopes = vec![(module_of(file), 0)];
    // Names from `use`, with the path and file they stand for: `gatekeeper::review::x` after
    // `use super::gatekeeper;` reaches gatekeeper/review.rs, beyond gatekeeper/mod.rs.
    let mut aliases: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    let (mut imports, mut test_files, mut depth, mut i) = (Vec::new(), Vec::new(), 0, 0);
    while i < toks.len() {
        let scope = scopes.last().unwrap().0.clone();
        let child = |name: &str| file_of(tree, &[&scope[..], &[name.to_string()]].concat());
        let mut leaves = Vec::new();
        match text(&toks, i) {
            "#" if text(&toks, i + 1) == "[" && text(&toks, i + 2) == "cfg" => {
                let mut end = item_end(&toks, i + 1, true);
                let attr: Vec<&str> = (i + 2..end).map(|j| text(&toks, j)).collect();
                if attr.contains(&"test") && !attr.contains(&"not") {
                    while text(&toks, end) == "#" {
                        end = item_end(&toks, end + 1, true);
                    }
                    let start = end + usize::from(text(&toks, end) == "pub");
                    if text(&toks, start) == "mod" && text(&toks, start + 2) == ";" {
                        test_files.extend(child(text(&toks, start + 1)));
                    }
                    end = item_end(&toks, end, false);
                }
                i = end;
            }
            "use" => i = use_tree(&toks, i + 1, &[], &mut leaves),
            "mod" if text(&toks, i + 2) == "{" => {
                scopes.push(([&scope[..], &[text(&toks, i + 1).to_string()]].concat(), depth));
                i += 2;
            }
            "{" => (depth, i) = (depth + 1, i + 1),
            "}" => {
                depth -= 1;
                if scopes.len() > 1 && scopes.last().unwrap().1 == depth {
                    scopes.pop();
                }
                i += 1;
            }
            word if is_word(word) && text(&toks, i + 1) == "::" && text(&toks, i.wrapping_sub(1)) != "::" => {
                i = inline_path(&toks, i, &mut leaves)
            }
            _ => i += 1,
        }
        for (path, line, name) in leaves {
            let (full, known) = match path.first().and_then(|first| aliases.get(first)) {
                Some((alias, to)) => ([&alias[..], &path[1..]].concat(), Some(to.clone())),
                None => (path.clone(), None),
            };
            let Some(to) = resolve(tree, file, &scope, &full) else {
                continue;
            };
            if let Some(name) = name {
                aliases.insert(name, (full, to.clone()));
            }
            // A use of an imported name is that import again, unless it reaches a deeper file.
            if to != file && known.as_ref() != Some(&to) {
                let path = path.join("::");
                imports.push(Import {
                    from: file.into(),
                    line,
                    path,
                    to,
                });
            }
        }
    }
    (imports, test_files)
}

/// Every import of the tree's non-test files; files under a `#[cfg(test)] mod x;` are test code.
fn imports(tree: &Tree) -> Vec<Import> {
    let scans: Vec<_> = tree.keys().map(|file| scan(tree, file)).collect();
    let tests: Vec<Vec<String>> = scans.iter().flat_map(|(_, t)| t.iter().map(|f| module_of(f))).collect();
    let is_test = |file: &str| tests.iter().any(|t| module_of(file).starts_with(t));
    scans
        .into_iter()
        .flat_map(|(i, _)| i)
        .filter(|i| !is_test(&i.from))
        .collect()
}

/// The floors of the first fenced block in section `## Floors`: lines `floor N name name...`.
fn parse_floors(doc: &str) -> Result<Floors, String> {
    let heading = doc.lines().position(|l| l.trim_end() == "## Floors");
    let section = doc.lines().skip(heading.ok_or("no `## Floors` section")? + 1);
    let mut block = section
        .take_while(|l| !l.starts_with("## "))
        .skip_while(|l| !l.starts_with("```"));
    block.next().ok_or("no fenced block in `## Floors`")?;
    let mut floors = Floors::new();
    for line in block.take_while(|l| !l.starts_with("```")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let floor = match words[..] {
            [] => continue,
            ["floor", n, _, ..] => n.parse().map_err(|_| format!("`{line}`: `{n}` is no floor number"))?,
            _ => return Err(format!("`{line}`: expected `floor N module...`")),
        };
        for name in &words[2..] {
            if floors.insert(name.to_string(), floor).is_some() {
                return Err(format!("`{name}` is on two floors"));
            }
        }
    }
    match floors.is_empty() {
        true => Err("the `## Floors` block lists no floors".into()),
        false => Ok(floors),
    }
}

/// Every top-level module of src/ has a floor, and every module on a floor exists.
fn coverage(tree: &Tree, floors: &Floors) -> Vec<String> {
    let modules: BTreeSet<String> = tree.keys().filter_map(|f| feature_of(f)).collect();
    let unplaced = modules.iter().filter(|m| !floors.contains_key(*m));
    let missing = floors.keys().filter(|f| !modules.contains(*f));
    (unplaced.map(|m| format!("module `{m}` of src/ has no floor")))
        .chain(missing.map(|f| format!("`{f}` is on a floor but is no module of src/ (src/{f}.rs or src/{f}/)")))
        .collect()
}

/// Imports across features that do not go strictly down, what one `use` line takes from one
/// file reported together.
fn floor_violations(imports: &[Import], floors: &Floors) -> Vec<String> {
    let floor = |file: &str| feature_of(file).and_then(|f| Some((floors.get(&f).copied()?, f)));
    let mut out: Vec<(String, Vec<&str>, String)> = Vec::new();
    for i in imports {
        let (Some((a, fa)), Some((b, fb))) = (floor(&i.from), floor(&i.to)) else {
            continue;
        };
        if fa != fb && b >= a {
            let at = format!("src/{}:{}", i.from, i.line);
            let what = format!("({}): {fa} (floor {a}) -> {fb} (floor {b})", i.to);
            match out.last_mut() {
                Some((last_at, paths, last_what)) if *last_at == at && *last_what == what => paths.push(&i.path),
                _ => out.push((at, vec![&i.path], what)),
            }
        }
    }
    out.into_iter()
        .map(|(at, paths, what)| format!("{at}: `{}` {what}", paths.join("`, `")))
        .collect()
}

/// Every file `start` reaches through imports (itself only through a cycle).
fn reachable<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>, start: &'a str) -> BTreeSet<&'a str> {
    let (mut seen, mut stack) = (BTreeSet::new(), vec![start]);
    while let Some(file) = stack.pop() {
        stack.extend(graph.get(file).into_iter().flatten().filter(|to| seen.insert(**to)));
    }
    seen
}

/// The strongly connected components of more than one file, each with the imports inside it.
fn cycles(imports: &[Import]) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        graph.entry(&i.from).or_default().insert(&i.to);
    }
    let reach: BTreeMap<&str, BTreeSet<&str>> = graph.keys().map(|f| (*f, reachable(&graph, f))).collect();
    // A file's component: the files it reaches that reach it back.
    let back = |f: &str, g: &str| reach.get(g).is_some_and(|r| r.contains(f));
    let components: BTreeSet<Vec<&str>> = (reach.iter())
        .map(|(f, r)| r.iter().copied().filter(|g| back(f, g)).collect())
        .filter(|c: &Vec<&str>| c.len() > 1)
        .collect();
    let mut out = Vec::new();
    for c in components {
        let mut report = format!("cycle: {}", c.join(" "));
        let mut edges = BTreeSet::new();
        let inside = |i: &&Import| c.contains(&i.from.as_str()) && c.contains(&i.to.as_str());
        for i in imports.iter().filter(inside).filter(|i| edges.insert((&i.from, &i.to))) {
            report += &format!("\n  src/{}:{}: `{}` -> {}", i.from, i.line, i.path, i.to);
        }
        out.push(report);
    }
    out
}

fn read_tree(dir: &Path, prefix: &str, tree: &mut Tree) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = format!("{prefix}{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            read_tree(&path, &format!("{name}/"), tree);
        } else if name.ends_with(".rs") {
            tree.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// src/ and its floors; fails unless the floors cover src/ exactly. Cargo sets the manifest
/// directory; a bare `rustc --test` build runs from the checkout.
fn load() -> (Tree, Floors) {
    let repo = PathBuf::from(option_env!("CARGO_MANIFEST_DIR").unwrap_or("."));
    let mut tree = Tree::new();
    read_tree(&repo.join("src"), "", &mut tree);
    let doc = std::fs::read_to_string(repo.join("docs/architecture.md")).expect("docs/architecture.md");
    let floors = parse_floors(&doc).unwrap_or_else(|e| panic!("docs/architecture.md: {e}"));
    let problems = coverage(&tree, &floors).join("\n");
    assert!(problems.is_empty(), "docs/architecture.md, `## Floors`:\n{problems}");
    (tree, floors)
}

#[test]
fn features_import_only_from_lower_floors() {
    let (tree, floors) = load();
    let violations = floor_violations(&imports(&tree), &floors);
    let report = format!(
        "{} imports not to a lower floor:\n{}",
        violations.len(),
        violations.join("\n")
    );
    assert!(violations.is_empty(), "{report}");
}

#[test]
fn no_import_cycles_between_files() {
    let (tree, _) = load();
    let cycles = cycles(&imports(&tree));
    assert!(
        cycles.is_empty(),
        "{} import cycles:\n{}",
        cycles.len(),
        cycles.join("\n")
    );
}

/// The checker itself, on small trees, so that a passing run means something.
mod checker {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files.iter().map(|(f, s)| (f.to_string(), s.to_string())).collect()
    }

    fn targets(tree: &Tree, file: &str) -> Vec<String> {
        imports(tree)
            .into_iter()
            .filter(|i| i.from == file)
            .map(|i| i.to)
            .collect()
    }

    const LIB: (&str, &str) = ("lib.rs", "pub mod a; pub mod b; pub mod c;");

    #[test]
    fn an_upward_import_and_a_module_without_floor_are_reported() {
        let tree = tree(&[
            LIB,
            ("a.rs", "use crate::b::Up;"),
            ("b.rs", "fn f() { crate::a::f(); }"),
            ("c.rs", ""),
        ]);
        let floors = parse_floors("# A\n\n## Floors\n\n```text\nfloor 1  b\nfloor 0  a\n```\n").unwrap();
        let violations = floor_violations(&imports(&tree), &floors);
        assert_eq!(
            violations,
            ["src/a.rs:1: `crate::b::Up` (b.rs): a (floor 0) -> b (floor 1)"]
        );
        assert_eq!(coverage(&tree, &floors), ["module `c` of src/ has no floor"]);
    }

    #[test]
    fn a_two_file_cycle_is_reported_and_a_re_export_alone_is_not() {
        let parent = ("a/mod.rs", "pub mod x;\npub use x::Thing;\npub fn helper() {}");
        let fine = tree(&[LIB, parent, ("a/x.rs", "pub struct Thing;")]);
        assert!(cycles(&imports(&fine)).is_empty());
        let cyclic = tree(&[LIB, parent, ("a/x.rs", "pub struct Thing;\nuse super::helper;")]);
        let expected = "cycle: a/mod.rs a/x.rs\n  src/a/mod.rs:2: `x::Thing` -> a/x.rs\n  \
                        src/a/x.rs:2: `super::helper` -> a/mod.rs";
        assert_eq!(cycles(&imports(&cyclic)), [expected]);
    }

    #[test]
    fn nested_use_trees_and_relative_paths_resolve_to_the_deepest_file() {
        let b = "pub use crate::{a::{self, y::{z::Z as W, self}}, c};\nuse std::io;\nfn f() { a::x::g(); }";
        let files = tree(&[
            LIB,
            ("a/mod.rs", "pub mod x; pub mod y;"),
            ("a/x.rs", "use super::y::*;\nuse super::*;"),
            ("a/y/mod.rs", "pub mod z;"),
            ("a/y/z.rs", "fn f() { super::super::x::g(); self::inner::h(); }"),
            ("b.rs", b),
            ("c.rs", "use ::serde::Serialize;"),
            (
                "main.rs",
                "use portcullis::{a::x::X, c};\nfn main() { portcullis::b::run(); crate::m(); }",
            ),
        ]);
        assert_eq!(
            targets(&files, "b.rs"),
            ["a/mod.rs", "a/y/z.rs", "a/y/mod.rs", "c.rs", "a/x.rs"]
        );
        assert_eq!(targets(&files, "a/x.rs"), ["a/y/mod.rs", "a/mod.rs"]);
        assert_eq!(targets(&files, "a/y/z.rs"), ["a/x.rs"]);
        assert_eq!(targets(&files, "main.rs"), ["a/x.rs", "c.rs", "b.rs"]);
        assert!(targets(&files, "c.rs").is_empty());
    }

    #[test]
    fn comments_strings_chars_and_test_code_are_ignored() {
        let a = r####"
            // crate::b::line
            /// crate::b::doc
            /* crate::b::block /* nested */ crate::b::still */
            const S: &str = "crate::b::string \" crate::b::escaped";
            const R: &str = r#"crate::b::raw " crate::b::raw"#;
            const Q: char = '"';
            fn f<'a>(x: &'a str) -> u8 { b'\'' }
            #[cfg(test)]
            mod tests { use super::*; use crate::b::test_only; }
            #[cfg(test)]
            mod more;
            mod inline { use super::super::c::Real; }
        "####;
        let files = tree(&[
            LIB,
            ("a.rs", a),
            ("a/more.rs", "use crate::b::x;"),
            ("b.rs", ""),
            ("c.rs", ""),
        ]);
        let found = imports(&files);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].to.as_str(), found[0].line), ("c.rs", 13));
    }

    #[test]
    fn the_floors_block_must_be_there_and_well_formed() {
        assert_eq!(parse_floors("# A\n\n## Other\n"), Err("no `## Floors` section".into()));
        assert!(parse_floors("## Floors\n\n```\nfloor x a\n```\n").is_err());
        assert!(parse_floors("## Floors\n\n```\nfloor 1 a\nfloor 0 a\n```\n").is_err());
        let tree = tree(&[LIB, ("a.rs", ""), ("b/mod.rs", ""), ("c.rs", ""), ("main.rs", "")]);
        let floors = parse_floors("## Floors\n```\nfloor 2 main\nfloor 1 b c gone\nfloor 0 a\n```").unwrap();
        assert_eq!(
            coverage(&tree, &floors),
            ["`gone` is on a floor but is no module of src/ (src/gone.rs or src/gone/)"]
        );
    }
}
