//! The shape of the code, checked from its source (docs/architecture.md):
//! the module graph read from every `use` and path in src/ (tests left
//! out, re-exports followed to where an item is defined) has no cycle,
//! neither between top-level modules nor between the modules of any one
//! folder; no module reaches up to a layer above it; `mod.rs` files hold
//! only docs, modules and re-exports; and comments cite only documents
//! that are in the repository. A checker that found nothing would pass
//! vacuously, so it is also run on a small tree that has a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

use crate::support::root;

/// A module path below the crate root, such as `["runner", "dispatcher"]`.
type ModPath = Vec<String>;

/// One source file: its module path and its syntax tree.
struct SourceFile {
    module: ModPath,
    path: PathBuf,
    ast: syn::File,
}

/// Every module of the crate, the items each re-exports, and the paths
/// each file names.
struct Crate {
    modules: BTreeSet<ModPath>,
    /// Re-exports: module, exported name, and the path it names.
    exports: BTreeMap<(ModPath, String), ModPath>,
    /// Glob re-exports: module and the module it re-exports everything of.
    globs: BTreeMap<ModPath, Vec<ModPath>>,
    files: Vec<SourceFile>,
}

fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_string()),
    }
    parts
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `#[cfg(test)]` (or `#[cfg(all(test, ..))]`): code the library does not
/// contain.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(l) if a.path().is_ident("cfg") => {
            let text = l.tokens.to_string();
            text.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "test")
                && !text.contains("not")
        }
        _ => false,
    })
}

impl Crate {
    /// Reads a crate from (file path, module path, text) triples; `main.rs`
    /// is a binary of its own and is left out by the caller.
    fn parse(sources: Vec<(PathBuf, ModPath, String)>) -> Self {
        let mut krate = Self {
            modules: BTreeSet::new(),
            exports: BTreeMap::new(),
            globs: BTreeMap::new(),
            files: Vec::new(),
        };
        for (path, module, text) in sources {
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            krate.modules.insert(module.clone());
            krate.files.push(SourceFile { module, path, ast });
        }
        // Inline modules, then re-exports (which may name them).
        let mut inline = Vec::new();
        for f in &krate.files {
            collect_inline(&f.ast.items, &f.module, &mut inline);
        }
        krate.modules.extend(inline);
        let mut exports = Vec::new();
        let mut globs = Vec::new();
        for f in &krate.files {
            for item in &f.ast.items {
                if let syn::Item::Use(u) = item
                    && !matches!(u.vis, syn::Visibility::Inherited)
                {
                    let mut leaves = Vec::new();
                    use_leaves(&u.tree, Vec::new(), &mut leaves);
                    for (segments, alias) in leaves {
                        let Some(target) = krate.absolute(&f.module, &segments) else {
                            continue;
                        };
                        match alias.as_deref() {
                            Some("*") => globs.push((f.module.clone(), target)),
                            Some(name) => {
                                exports.push(((f.module.clone(), name.to_string()), target));
                            }
                            None => {}
                        }
                    }
                }
            }
        }
        krate.exports.extend(exports);
        for (m, t) in globs {
            krate.globs.entry(m).or_default().push(t);
        }
        krate
    }

    /// `segments` as written in module `from`, made absolute; `None` for a
    /// path into another crate.
    fn absolute(&self, from: &ModPath, segments: &[String]) -> Option<ModPath> {
        let mut out = from.clone();
        let mut rest = segments;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                out.clear();
                rest = &rest[1..];
            }
            Some("self") => rest = &rest[1..],
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    out.pop()?;
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                // A child module of `from`, or another crate.
                let mut child = from.clone();
                child.push(first.to_string());
                if !self.modules.contains(&child) {
                    return None;
                }
            }
            None => return None,
        }
        out.extend(rest.iter().cloned());
        Some(out)
    }

    /// The module that defines what `path` (absolute) names, following
    /// re-exports.
    fn defining_module(&self, path: &ModPath) -> ModPath {
        let mut path = path.clone();
        for _ in 0..16 {
            let Some(len) = (0..=path.len())
                .rev()
                .find(|&n| self.modules.contains(&path[..n]))
            else {
                return Vec::new();
            };
            let module = path[..len].to_vec();
            let Some(name) = path.get(len) else {
                return module;
            };
            if let Some(target) = self.exports.get(&(module.clone(), name.clone())) {
                let mut next = target.clone();
                next.extend(path[len + 1..].iter().cloned());
                path = next;
                continue;
            }
            if let Some(sources) = self.globs.get(&module) {
                // An item of a glob-re-exported module: the first that
                // defines a module or re-export of that name, else the first.
                let found = sources.iter().find(|s| {
                    let mut p = (*s).clone();
                    p.push(name.clone());
                    self.modules.contains(&p)
                        || self.exports.contains_key(&((*s).clone(), name.clone()))
                });
                if let Some(s) = found.or(sources.first()) {
                    let mut next = s.clone();
                    next.extend(path[len..].iter().cloned());
                    path = next;
                    continue;
                }
            }
            return module;
        }
        panic!("re-exports of {path:?} go round in circles");
    }

    /// Every edge between modules: from the module a path is written in to
    /// the module that defines what it names.
    fn edges(&self) -> BTreeSet<(ModPath, ModPath)> {
        let mut edges = BTreeSet::new();
        for f in &self.files {
            let mut paths = Paths::default();
            paths.module.push(f.module.clone());
            paths.visit_file(&f.ast);
            for (from, segments) in paths.found {
                let Some(abs) = self.absolute(&from, &segments) else {
                    continue;
                };
                let to = self.defining_module(&abs);
                if to != from {
                    edges.insert((from, to));
                }
            }
        }
        edges
    }
}

fn collect_inline(items: &[syn::Item], module: &ModPath, out: &mut Vec<ModPath>) {
    for item in items {
        if let syn::Item::Mod(m) = item
            && let Some((_, inner)) = &m.content
            && !is_test_only(&m.attrs)
        {
            let mut child = module.clone();
            child.push(m.ident.to_string());
            collect_inline(inner, &child, out);
            out.push(child);
        }
    }
}

/// The leaves of a use tree: the full path of each, and the name it is
/// brought in as (`*` for a glob).
fn use_leaves(
    tree: &syn::UseTree,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.push(p.ident.to_string());
            use_leaves(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let mut full = prefix;
            let name = n.ident.to_string();
            if name == "self" {
                let alias = full.last().cloned();
                out.push((full, alias));
            } else {
                full.push(name.clone());
                out.push((full, Some(name)));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix;
            if r.ident != "self" {
                full.push(r.ident.to_string());
            }
            out.push((full, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix, Some("*".into()))),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_leaves(t, prefix.clone(), out);
            }
        }
    }
}

/// Collects every path a file names, outside test code, with the module
/// it is written in.
#[derive(Default)]
struct Paths {
    module: Vec<ModPath>,
    found: Vec<(ModPath, Vec<String>)>,
}

impl Paths {
    fn here(&self) -> ModPath {
        self.module.last().cloned().unwrap_or_default()
    }

    fn add(&mut self, segments: Vec<String>) {
        if !segments.is_empty() {
            let here = self.here();
            self.found.push((here, segments));
        }
    }

    /// Paths inside macro bodies (`format!`, `tokio::select!`) that syn
    /// leaves as tokens: `crate::..`, `super::..`, `self::..` sequences.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => self.scan_tokens(g.stream()),
                TokenTree::Ident(id)
                    if matches!(id.to_string().as_str(), "crate" | "super" | "self") =>
                {
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    // `::` is two `:` puncts, then the next segment.
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.add(segments);
                    }
                    i = j.max(i + 1);
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if is_test_only(&m.attrs) {
            return;
        }
        if m.content.is_some() {
            let mut child = self.here();
            child.push(m.ident.to_string());
            self.module.push(child);
            syn::visit::visit_item_mod(self, m);
            self.module.pop();
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_only(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if is_test_only(&u.attrs) {
            return;
        }
        let mut leaves = Vec::new();
        use_leaves(&u.tree, Vec::new(), &mut leaves);
        for (segments, _) in leaves {
            self.add(segments);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.add(segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.scan_tokens(m.tokens.clone());
    }
}

/// The strongly connected components of more than one node.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut graph = petgraph::graphmap::DiGraphMap::<&str, ()>::new();
    for (a, b) in edges {
        graph.add_edge(a.as_str(), b.as_str(), ());
    }
    petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c: Vec<String> = c.into_iter().map(str::to_string).collect();
            c.sort();
            c
        })
        .collect()
}

/// Within every folder (the crate root included), the edges between its
/// direct children that the module edges imply.
fn folder_edges(
    edges: &BTreeSet<(ModPath, ModPath)>,
) -> BTreeMap<ModPath, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<ModPath, BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, to) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        // An edge to or from the folder itself (a parent and its child)
        // is not between two of its children.
        if common < from.len() && common < to.len() {
            out.entry(from[..common].to_vec())
                .or_default()
                .insert((from[common].clone(), to[common].clone()));
        }
    }
    out
}

/// Every cycle between sibling modules, named by folder.
fn sibling_cycles(krate: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (folder, edges) in folder_edges(&krate.edges()) {
        for c in cycles(&edges) {
            let at = if folder.is_empty() {
                "crate".to_string()
            } else {
                folder.join("::")
            };
            let list: Vec<String> = edges
                .iter()
                .filter(|(a, b)| c.contains(a) && c.contains(b))
                .map(|(a, b)| format!("{a} -> {b}"))
                .collect();
            found.push(format!(
                "in {at}: {{{}}} ({})",
                c.join(", "),
                list.join("; ")
            ));
        }
    }
    found
}

fn load_crate() -> Crate {
    let src = root().join("src");
    let sources = rust_files(&src)
        .into_iter()
        .filter(|p| p != &src.join("main.rs"))
        .map(|p| {
            let module = module_of(&src, &p);
            let text = std::fs::read_to_string(&p).unwrap();
            (p, module, text)
        })
        .collect();
    Crate::parse(sources)
}

/// Each top-level module's layer: a module may name modules of its own
/// layer or below, never above. The front end knows nothing of running;
/// running knows nothing of the command line.
const LAYERS: &[(&str, u8)] = &[
    // Leaves every layer may use.
    ("source", 0),
    ("diagnostic", 0),
    ("clock", 0),
    ("exit_code", 0),
    ("paths", 0),
    ("private", 0),
    ("secrets", 0),
    ("stop_reason", 0),
    ("bus", 0),
    ("store", 1),
    ("walk", 1),
    ("writes", 1),
    // The front end: text to plan.
    ("syntax", 2),
    ("model", 2),
    ("schema", 2),
    ("decode", 2),
    ("prompt", 2),
    ("compile", 2),
    ("plan", 2),
    ("load", 2),
    ("preamble", 2),
    // What running builds on.
    ("agents", 3),
    ("process", 3),
    ("isolation", 3),
    ("incremental", 3),
    // Running, and what watches and reports it.
    ("runner", 4),
    ("report", 5),
    ("watch", 5),
    // What the run store holds, read back; the web UI and API over it.
    ("view", 5),
    ("serve", 5),
    // The command line.
    ("cli", 6),
    ("fuzzing", 6),
];

fn layer(module: &str) -> u8 {
    match LAYERS.iter().find(|(m, _)| *m == module) {
        Some((_, l)) => *l,
        None => panic!("top-level module `{module}` has no layer in tests/architecture.rs"),
    }
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let krate = load_crate();
    let edges = krate.edges();
    // The checker must have seen the crate, not an empty tree.
    assert!(krate.modules.len() > 80, "{} modules", krate.modules.len());
    assert!(edges.len() > 300, "{} edges", edges.len());
    let found = sibling_cycles(&krate);
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn no_module_reaches_up_a_layer() {
    let krate = load_crate();
    let mut wrong = Vec::new();
    for (from, to) in krate.edges() {
        let (Some(a), Some(b)) = (from.first(), to.first()) else {
            continue;
        };
        if a != b && layer(b) > layer(a) {
            wrong.push(format!("{} -> {}", from.join("::"), to.join("::")));
        }
    }
    assert!(wrong.is_empty(), "edges up a layer:\n{}", wrong.join("\n"));
}

#[test]
fn mod_files_hold_only_docs_modules_and_re_exports() {
    let krate = load_crate();
    let mut wrong = Vec::new();
    for f in &krate.files {
        let name = f.path.file_name().unwrap().to_string_lossy();
        if name != "mod.rs" && name != "lib.rs" {
            continue;
        }
        for item in &f.ast.items {
            let ok = match item {
                syn::Item::Mod(m) => m.content.is_none(),
                syn::Item::Use(u) => !matches!(u.vis, syn::Visibility::Inherited),
                _ => false,
            };
            if !ok {
                let what = match item {
                    syn::Item::Fn(i) => format!("fn {}", i.sig.ident),
                    syn::Item::Struct(i) => format!("struct {}", i.ident),
                    syn::Item::Enum(i) => format!("enum {}", i.ident),
                    syn::Item::Use(_) => "a private `use`".to_string(),
                    syn::Item::Mod(i) => format!("inline mod {}", i.ident),
                    _ => "an item".to_string(),
                };
                wrong.push(format!("{}: {what}", f.path.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "logic in mod.rs files:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn comments_cite_only_documents_in_the_repository() {
    let repo = root();
    let mut wrong = Vec::new();
    let mut files = rust_files(&repo.join("src"));
    files.extend(rust_files(&repo.join("tests")));
    files.extend(rust_files(&repo.join("benches")));
    files.extend(rust_files(&repo.join("fuzz").join("fuzz_targets")));
    files.extend(
        std::fs::read_dir(repo.join("docs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    // A citation, not a path inside an instance key such as `review[docs/a.md]`.
    let cited = regex::Regex::new(r"(?:^|[^\w\[/])(docs/[A-Za-z0-9_-]+\.md)").unwrap();
    // The design's section numbers and its reference folder's files are
    // not in the repository: a reader of the code cannot follow them.
    let outside = regex::Regex::new(
        r"\b(agent-clis|anchors|architecture-review|crates|distributed-engines|peers(-2026)?|performance-side-by-side|seed-[a-z-]+|tried-[a-z-]+)\.md\b",
    )
    .unwrap();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = f.extension().is_some_and(|x| x == "rs");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", f.strip_prefix(&repo).unwrap().display(), n + 1);
            // This test names what it looks for.
            if f.ends_with("tests/architecture.rs") {
                continue;
            }
            if line.contains("DESIGN")
                || line.contains("reference/")
                || line.contains('§')
                || outside.is_match(line)
            {
                wrong.push(format!(
                    "{at}: cites a document outside the repository: {}",
                    line.trim()
                ));
            }
            // Only code comments cite docs/ by path (strings and the docs'
            // own examples name files of workflows).
            if !code || !line.trim_start().starts_with("//") {
                continue;
            }
            for c in cited.captures_iter(line) {
                let doc = &c[1];
                if !repo.join(doc).is_file() {
                    wrong.push(format!("{at}: {doc} does not exist"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_through_re_exports() {
    let file = |m: &[&str], text: &str| {
        let module: ModPath = m.iter().map(|s| (*s).to_string()).collect();
        (
            PathBuf::from(format!("{}.rs", m.join("/"))),
            module,
            text.to_string(),
        )
    };
    let krate = Crate::parse(vec![
        file(&[], "pub mod a; pub mod b;"),
        file(&["a"], "mod inner; pub use inner::Thing;"),
        file(
            &["a", "inner"],
            "pub struct Thing; fn f() { let _ = crate::b::other(); }",
        ),
        file(&["b"], "pub fn other() {} fn g(_: super::a::Thing) {}"),
    ]);
    let found = sibling_cycles(&krate);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a -> b") && found[0].contains("b -> a"),
        "{found:?}"
    );
    // Without the edge back, no cycle.
    let krate = Crate::parse(vec![
        file(&[], "pub mod a; pub mod b;"),
        file(&["a"], "mod inner; pub use inner::Thing;"),
        file(&["a", "inner"], "pub struct Thing;"),
        file(
            &["b"],
            "fn g(_: super::a::Thing) { format!(\"{}\", crate::a::Thing); }",
        ),
    ]);
    assert!(sibling_cycles(&krate).is_empty());
    assert!(
        krate.edges().contains(&(
            vec!["b".to_string()],
            vec!["a".to_string(), "inner".to_string()]
        )),
        "{:?}",
        krate.edges()
    );
}
