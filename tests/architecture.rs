//! The shape of `src/` that `docs/architecture.md` ("Where a callback goes")
//! promises: no import cycle between modules, and no file that holds
//! several concepts (none over 400 lines but the catalog table).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Longest a source file may be.
const MAX_LINES: usize = 400;
/// One table, long by nature.
const LONG_TABLES: [&str; 1] = ["normalize/catalog.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `src/spool/reader.rs` -> `["spool", "reader"]`; `mod.rs`, `lib.rs` and
/// `main.rs` name their folder.
fn module_of(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(SRC).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Test code is allowed to reach anywhere: test files, and a file's
/// `#[cfg(test)] mod tests { ... }` at its end.
fn non_test_code(path: &Path, text: &str) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    if name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
    {
        return None;
    }
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    // Comments (and doc links) are not imports.
    let code: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect();
    Some(code.join("\n"))
}

/// Every module path this code names with `crate::` or `super::`, braces
/// expanded one level (`use super::{a, b::c}`).
fn named_paths(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for root in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(root) {
            let start = from + at;
            from = start + root.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let base: Vec<String> = if root == "crate::" {
                Vec::new()
            } else {
                me[..me.len().saturating_sub(1)].to_vec()
            };
            let rest = &code[from..];
            let path_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..path_len].trim_end_matches(':');
            let prefix: Vec<String> = base
                .iter()
                .cloned()
                .chain(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                )
                .collect();
            if rest[path_len..].starts_with('{') {
                let inner = &rest[path_len + 1
                    ..rest[path_len..]
                        .find('}')
                        .map_or(rest.len(), |end| path_len + end)];
                for item in inner.split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("");
                    let mut full = prefix.clone();
                    full.extend(
                        item.split("::")
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned),
                    );
                    found.push(full);
                }
            } else {
                found.push(prefix);
            }
        }
    }
    found
}

/// Module -> modules it imports, with paths cut to `depth` segments
/// (lowercase segments only: types and functions are not modules).
fn graph(depth: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(code) = non_test_code(&path, &text) else {
            continue;
        };
        let me = module_of(&path);
        if me.is_empty() {
            continue;
        }
        let from = me[..me.len().min(depth)].join("::");
        for target in named_paths(&code, &me) {
            let modules: Vec<&String> = target
                .iter()
                .take_while(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
                .collect();
            if modules.is_empty() {
                continue;
            }
            let to = modules[..modules.len().min(depth)]
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("::");
            let nested =
                from.starts_with(&format!("{to}::")) || to.starts_with(&format!("{from}::"));
            if to != from && !nested {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_from(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut visited = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                return Some(cycle);
            }
            if visited.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for depth in 1..=3 {
        let edges = graph(depth);
        assert!(
            edges.keys().any(|module| module.starts_with("ingress")),
            "the scan finds imports: {edges:?}"
        );
        for module in edges.keys() {
            if let Some(cycle) = cycle_from(&edges, module) {
                panic!("import cycle between modules: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycle_from(&edges, "a").unwrap(), ["a", "b", "a"]);
    let me = vec!["spool".to_owned(), "reader".to_owned()];
    let named = named_paths(
        "use super::{job::Job, tail::Tail};\nuse crate::stats::Stats;",
        &me,
    );
    assert!(
        named.contains(&vec![
            "spool".to_owned(),
            "job".to_owned(),
            "Job".to_owned()
        ]),
        "{named:?}"
    );
    assert!(
        named.contains(&vec!["stats".to_owned(), "Stats".to_owned()]),
        "{named:?}"
    );
}

#[test]
fn no_source_file_holds_several_concepts() {
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|path| {
            let relative = path
                .strip_prefix(SRC)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            !LONG_TABLES.contains(&relative.as_str())
        })
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}
