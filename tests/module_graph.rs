//! No import cycles between the top-level modules of `host/src`.
//!
//! The graph is read from the source itself: every `crate::X` path outside
//! test code (a `#[cfg(test)]` item, a file declared by `#[cfg(test)] mod x;`
//! or named `tests.rs`) is an edge from the module the file belongs to
//! (`dispatch.rs` → `dispatch`, `capabilities/files/mod.rs` →
//! `capabilities`) to `X`. Comments and string literals are blanked first,
//! so a doc link or a message naming a path is no edge. The test prints the
//! graph and fails naming a cycle if there is one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it uses (with one file that does).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// `src` with comments, string and char literals blanked out.
fn code_only(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(comment) = rest.strip_prefix("/*") {
            i += comment.find("*/").map_or(rest.len(), |e| e + 4);
            out.push(' ');
        } else if let Some(len) = raw_string_len(src, i) {
            i += len;
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' && rest.len() > 2 && bytes[i + 1] == b'\\' {
            i += 2 + rest[2..].find('\'').map_or(rest.len(), |e| e + 1);
            out.push_str("' '");
        } else if bytes[i] == b'\'' && rest.chars().nth(2) == Some('\'') {
            i += 1 + rest[1..].chars().next().map_or(0, char::len_utf8) + 1;
            out.push_str("' '");
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Length of a raw string literal (`r"…"`, `br#"…"#`) starting at `i`.
fn raw_string_len(src: &str, i: usize) -> Option<usize> {
    if i > 0
        && src[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    let rest = &src[i..];
    let after_b = rest.strip_prefix('b').unwrap_or(rest);
    let after_r = after_b.strip_prefix('r')?;
    let hashes = after_r.len() - after_r.trim_start_matches('#').len();
    let body = after_r[hashes..].strip_prefix('"')?;
    let end = format!("\"{}", "#".repeat(hashes));
    let close = body.find(&end)?;
    Some(rest.len() - body.len() + close + end.len())
}

/// `code` without its `#[cfg(test)]` items, and the modules declared
/// test-only (`#[cfg(test)] mod name;`).
fn without_test_items(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let item = &rest[at + ATTR.len()..];
        let stop = item.find([';', '{']).unwrap_or(item.len());
        if item[stop..].starts_with(';') || stop == item.len() {
            if let Some(name) = item[..stop].trim().strip_prefix("mod ") {
                test_mods.push(name.trim().to_owned());
            }
            rest = item.get(stop + 1..).unwrap_or("");
            continue;
        }
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item[stop..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = stop + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// The top-level modules a piece of code names as `crate::X` or in
/// `crate::{X, Y::…}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let path = rest[at + "crate::".len()..].trim_start();
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = path.strip_prefix('{') {
            // Top-level items of the group: after `{` or a `,` at depth 0.
            let mut depth = 0usize;
            let mut want = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => want = true,
                    c if want && (c.is_alphanumeric() || c == '_') => {
                        refs.insert(ident(&group[k..]));
                        want = false;
                    }
                    c if !c.is_whitespace() => want = false,
                    _ => {}
                }
            }
        } else {
            refs.insert(ident(path));
        }
    }
    refs.retain(|r| !r.is_empty() && r != "self");
    refs
}

/// The graph of the top-level modules of a source tree given as
/// (path relative to `src`, text) pairs.
fn module_graph(files: &[(PathBuf, String)]) -> Graph {
    let mut cleaned = BTreeMap::new();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, text) in files {
        let (code, test_mods) = without_test_items(&code_only(text));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = match stem {
            "mod" | "lib" | "main" => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            _ => path.with_extension(""),
        };
        for m in test_mods {
            test_only.insert(dir.join(format!("{m}.rs")));
            test_only.insert(dir.join(m));
        }
        cleaned.insert(path.clone(), code);
    }
    let mut graph = Graph::new();
    for (path, code) in &cleaned {
        let excluded = test_only.iter().any(|t| path.starts_with(t));
        let top = match path.components().next().and_then(|c| c.as_os_str().to_str()) {
            Some(first) => first.strip_suffix(".rs").unwrap_or(first).to_owned(),
            None => continue,
        };
        if excluded || top == "lib" || top == "main" || path.ends_with("tests.rs") {
            continue;
        }
        let edges = graph.entry(top.clone()).or_default();
        for target in crate_refs(code) {
            if target != top {
                edges.entry(target).or_insert_with(|| path.display().to_string());
            }
        }
    }
    graph
}

/// One cycle of the graph, as the modules along it (first = last), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == node) {
            let mut cycle = path[pos..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn read_tree(root: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                files.push((path.strip_prefix(root).expect("under root").to_path_buf(), text));
            }
        }
    }
    files.sort();
    files
}

fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| format!("{from} -> {}\n", to.keys().cloned().collect::<Vec<_>>().join(", ")))
        .collect()
}

#[test]
fn host_modules_import_no_cycle() {
    // QGA_MODULE_GRAPH_SRC: read another tree (e.g. an older checkout's host/src).
    let src = std::env::var_os("QGA_MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let graph = module_graph(&read_tree(&src));
    println!(
        "module graph of host/src (crate:: paths outside test code):\n{}",
        render(&graph)
    );
    assert!(
        graph.len() > 10,
        "too few modules found: the reader is broken:\n{}",
        render(&graph)
    );
    assert!(
        graph["dispatch"].contains_key("policy"),
        "a known edge is missing: the reader is broken"
    );
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!("import cycle between top-level modules:\n  {}", steps.join("\n  "));
    }
}

fn tree(files: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    files.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_owned())).collect()
}

#[test]
fn a_cycle_through_nested_files_and_groups_is_found() {
    let graph = module_graph(&tree(&[
        ("a.rs", "use crate::{b::Thing, c};\n"),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", "fn f() { crate::a::g() }\n"),
        ("c.rs", "pub fn h() {}\n"),
    ]));
    assert_eq!(graph["a"].keys().collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "a".into()]));
}

#[test]
fn test_code_comments_and_strings_make_no_edge() {
    let graph = module_graph(&tree(&[
        (
            "a.rs",
            "//! See [`crate::b`].\n#[cfg(test)]\nmod linear;\nfn f() { let s = \"crate::b\"; let c = '{'; }\n\
             #[cfg(test)]\nmod tests { use crate::b; }\npub fn g() {}\n",
        ),
        ("a/linear.rs", "use crate::b::x;\n"),
        ("b.rs", "use crate::a::g;\n/* crate::c */\n"),
        ("c/tests.rs", "use crate::b;\n"),
    ]));
    assert!(!graph["a"].contains_key("b"), "{}", render(&graph));
    assert!(!graph["b"].contains_key("c"), "{}", render(&graph));
    assert!(
        !graph.get("c").is_some_and(|e| e.contains_key("b")),
        "{}",
        render(&graph)
    );
    assert_eq!(find_cycle(&graph), None);
}

/// The Ctx/View split holds: no capability implements a WIT host trait on
/// the whole store data (`CallCtx`); each sees only its view.
#[test]
fn no_capability_host_trait_is_implemented_on_the_call_ctx() {
    let caps = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/capabilities");
    let mut offenders = Vec::new();
    let mut views = 0;
    for (path, text) in read_tree(&caps) {
        let code = code_only(&text);
        for line in code.lines().map(str::trim) {
            if line.starts_with("impl") && line.contains("Host") && line.contains(" for ") {
                if line.contains("CallCtx") {
                    offenders.push(format!("{}: {line}", path.display()));
                } else {
                    views += 1;
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "host traits on CallCtx:\n{}",
        offenders.join("\n")
    );
    assert!(views >= 15, "only {views} host impls found: the reader is broken");
}
