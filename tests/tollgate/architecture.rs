//! The layering STYLE.md describes, checked on the source itself: only
//! `src/storage` touches sqlx, services know nothing of actix, and no two
//! modules import each other, directly or around a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            out.push((path, text));
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a file belongs to, two levels deep: `src/service/tokens.rs`
/// is `service::tokens`, `src/service/token_cache/store.rs` is
/// `service::token_cache`, `src/startup.rs` is `startup`.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.truncate(2);
    parts.join("::")
}

/// The modules `text` names through `crate::…` paths, two levels deep.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let path: String = text[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        // `crate::a::b::Item`: a module `a::b` when `b` is lower case.
        let depth = match parts.get(1) {
            Some(second) if second.starts_with(|c: char| c.is_lowercase()) => 2,
            _ => 1,
        };
        if !parts.is_empty() {
            found.insert(parts[..depth.min(parts.len())].join("::"));
        }
    }
    found
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
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

/// The import graph: an edge from each module to every other module it
/// names, leaving out a module's own parent and children.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(&src());
    let modules: BTreeSet<String> = files.iter().map(|(p, _)| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in &files {
        let from = module_of(path);
        for to in imports(text) {
            let related = to == from
                || from.starts_with(&format!("{to}::"))
                || to.starts_with(&format!("{from}::"));
            if modules.contains(&to) && !related {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn only_storage_touches_sqlx_and_services_know_nothing_of_actix() {
    for (path, text) in sources(&src()) {
        let module = module_of(&path);
        if !module.starts_with("storage") {
            assert!(
                !text.contains("sqlx"),
                "{} names sqlx; only src/storage may",
                path.display()
            );
        }
        if module.starts_with("service") {
            assert!(
                !text.contains("actix"),
                "{} names actix; services take plain values",
                path.display()
            );
        }
    }
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let graph = graph();
    // The check sees the real edges: handlers call services, services
    // call storage.
    assert!(graph["web::admin"].contains("service::members"));
    assert!(graph["service::tokens"].contains("storage::tokens"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}
