//! Finds import cycles between the modules of crates: `import-cycles
//! ROOT.rs...` (each a crate root, `src/lib.rs` or `src/main.rs`) prints
//! every cycle with the file and line of each arrow, and exits 1 if there
//! is one.
//!
//! A module is a file: inline modules count as part of the file they stand
//! in, and `#[cfg(test)]` items are left out (tests reach into what they
//! test). An arrow goes from a module to another for every
//!
//! - `mod name;` (a parent depends on its children),
//! - `use` item, and
//! - path anywhere in the code (a type, a call, a pattern, a macro's path),
//!
//! that names the other module or something in it: through `crate::`,
//! `self::`, `super::`, or the name of a child module. A path is resolved
//! to the longest prefix that is a module, so `use crate::a::f` (a
//! function), `crate::a::T::new()` and `use crate::a::b::*` are all seen.
//! Paths into other crates, and names brought in by a `use` (whose arrow
//! the `use` already drew), draw none.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use syn::spanned::Spanned;
use syn::visit::Visit;

/// A module of a crate, as `crate` plus the path of names below it.
type ModPath = Vec<String>;

/// One arrow, where it was drawn.
#[derive(Clone, Debug)]
struct Arrow {
    from: ModPath,
    to: ModPath,
    file: PathBuf,
    line: usize,
}

/// The modules of one crate and the arrows between them.
#[derive(Default)]
struct Crate {
    /// Every file module, with its file.
    modules: BTreeMap<ModPath, PathBuf>,
    /// The child modules' names of every module, file or inline (inline
    /// ones by their logical path).
    children: BTreeMap<ModPath, BTreeSet<String>>,
    arrows: Vec<Arrow>,
    /// Files that could not be read or parsed.
    errors: Vec<String>,
    /// Every file module's syntax tree, to draw its arrows once all
    /// modules are known.
    parsed: Vec<(PathBuf, ModPath, syn::File)>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

fn line_of(span: proc_macro2::Span) -> usize {
    span.start().line
}

impl Crate {
    /// Reads the crate whose root is `root`, and every file module below.
    fn load(root: &Path) -> Crate {
        let mut krate = Crate::default();
        let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
        krate.load_file(root, vec!["crate".to_owned()], &dir);
        for (file, path, ast) in std::mem::take(&mut krate.parsed) {
            let mut visitor = Paths {
                krate: &krate,
                file,
                module: path.clone(),
                logical: path,
                found: Vec::new(),
            };
            visitor.visit_file(&ast);
            let found = visitor.found;
            krate.arrows.extend(found);
        }
        krate
    }

    /// Reads the file module `file` at `path`; its children's files are in
    /// `child_dir`.
    fn load_file(&mut self, file: &Path, path: ModPath, child_dir: &Path) {
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| syn::parse_file(&text).map_err(|e| e.to_string()));
        let mut ast = match parsed {
            Ok(ast) => ast,
            Err(err) => {
                self.errors.push(format!("{}: {err}", file.display()));
                return;
            }
        };
        ast.items = with_macro_bodies(ast.items);
        self.modules.insert(path.clone(), file.to_path_buf());
        self.collect_children(&ast.items, &path);
        for (name, attrs) in file_mods(&ast.items) {
            if is_cfg_test(attrs) {
                continue;
            }
            let mut child = path.clone();
            child.push(name.clone());
            let flat = child_dir.join(format!("{name}.rs"));
            let nested = child_dir.join(&name).join("mod.rs");
            let (child_file, grandchild_dir) = if flat.exists() {
                (flat, child_dir.join(&name))
            } else {
                (nested, child_dir.join(&name))
            };
            self.load_file(&child_file, child, &grandchild_dir);
        }
        self.parsed.push((file.to_path_buf(), path, ast));
    }

    /// Records the children (file and inline) of `path`, recursively
    /// through inline modules.
    fn collect_children(&mut self, items: &[syn::Item], path: &ModPath) {
        for item in items {
            if let syn::Item::Mod(m) = item {
                if is_cfg_test(&m.attrs) {
                    continue;
                }
                let name = m.ident.to_string();
                self.children
                    .entry(path.clone())
                    .or_default()
                    .insert(name.clone());
                if let Some((_, inner)) = &m.content {
                    let mut inline = path.clone();
                    inline.push(name);
                    self.collect_children(inner, &inline);
                }
            }
        }
    }

    /// The file module that the absolute path `abs` names, or that holds
    /// what it names: its longest prefix that is a file module.
    fn module_of(&self, abs: &[String]) -> Option<ModPath> {
        (1..=abs.len())
            .rev()
            .map(|n| abs[..n].to_vec())
            .find(|prefix| self.modules.contains_key(prefix))
    }
}

/// `items`, with the body of every item macro that parses as items in its
/// place (`cfg_if!`-like wrappers of `mod` and `use` items), recursively,
/// and the same inside inline modules.
fn with_macro_bodies(items: Vec<syn::Item>) -> Vec<syn::Item> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            syn::Item::Macro(m) => match syn::parse2::<syn::File>(m.mac.tokens.clone()) {
                Ok(body) if !body.items.is_empty() => out.extend(with_macro_bodies(body.items)),
                _ => out.push(syn::Item::Macro(m)),
            },
            syn::Item::Mod(mut m) => {
                if let Some((brace, inner)) = m.content.take() {
                    m.content = Some((brace, with_macro_bodies(inner)));
                }
                out.push(syn::Item::Mod(m));
            }
            other => out.push(other),
        }
    }
    out
}

/// The `mod name;` items (without a body) of a file.
fn file_mods(items: &[syn::Item]) -> Vec<(String, &[syn::Attribute])> {
    items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() => {
                Some((m.ident.to_string(), m.attrs.as_slice()))
            }
            _ => None,
        })
        .collect()
}

/// Collects the arrows of one file.
struct Paths<'a> {
    krate: &'a Crate,
    file: PathBuf,
    /// The file module.
    module: ModPath,
    /// Where the visitor stands, inline modules included.
    logical: ModPath,
    found: Vec<Arrow>,
}

impl Paths<'_> {
    /// The absolute path that `segments`, written in the current module,
    /// names; `None` if it names nothing of this crate's modules.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut abs = match first.as_str() {
            "crate" => vec!["crate".to_owned()],
            "self" => self.logical.clone(),
            "super" => {
                let mut base = self.logical.clone();
                let supers = segments.iter().take_while(|s| *s == "super").count();
                for _ in 0..supers {
                    if base.len() > 1 {
                        base.pop();
                    }
                }
                base.extend(segments[supers..].iter().cloned());
                return Some(base);
            }
            name if self
                .krate
                .children
                .get(&self.logical)
                .is_some_and(|c| c.contains(name)) =>
            {
                let mut base = self.logical.clone();
                base.push(name.to_owned());
                base
            }
            _ => return None,
        };
        abs.extend(segments[1..].iter().cloned());
        Some(abs)
    }

    fn arrow(&mut self, segments: &[String], line: usize) {
        let Some(abs) = self.resolve(segments) else {
            return;
        };
        let Some(to) = self.krate.module_of(&abs) else {
            return;
        };
        if to != self.module {
            self.found.push(Arrow {
                from: self.module.clone(),
                to,
                file: self.file.clone(),
                line,
            });
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                self.arrow(&prefix.clone(), line);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.arrow(&prefix.clone(), line);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => self.arrow(&prefix.clone(), line),
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(tree, prefix, line);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Paths<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            syn::Item::Trait(t) => &t.attrs,
            syn::Item::Type(t) => &t.attrs,
            syn::Item::Macro(m) => &m.attrs,
            _ => &[],
        };
        if is_cfg_test(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        match &m.content {
            None => {
                let mut child = self.logical.clone();
                child.push(name);
                if self.krate.modules.contains_key(&child) {
                    self.found.push(Arrow {
                        from: self.module.clone(),
                        to: child,
                        file: self.file.clone(),
                        line: line_of(m.span()),
                    });
                }
            }
            Some((_, items)) => {
                self.logical.push(name);
                for item in items {
                    self.visit_item(item);
                }
                self.logical.pop();
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let line = line_of(u.span());
        let mut prefix = Vec::new();
        if u.leading_colon.is_none() {
            self.use_tree(&u.tree, &mut prefix, line);
        }
    }

    /// A macro's arguments are tokens to syn; those that parse as
    /// expressions separated by commas (`format!`, `assert!`, `vec!`...)
    /// are visited as such, so that a path inside them is seen too.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            for arg in &args {
                self.visit_expr(arg);
            }
        }
    }

    /// `pub(crate)`, `pub(super)`, `pub(in path)` restrict who may see an
    /// item: they do not use the module they name.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.arrow(&segments, line_of(path.span()));
        }
        syn::visit::visit_path(self, path);
    }
}

/// A module of a named crate, for printing.
struct Shown<'a>(&'a str, &'a [String]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for segment in &self.1[1..] {
            write!(f, "::{segment}")?;
        }
        Ok(())
    }
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(nodes: &[ModPath], edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        on_stack: BTreeSet<ModPath>,
        next: usize,
        found: Vec<Vec<ModPath>>,
    }
    fn connect(s: &mut State<'_>, v: &ModPath) {
        s.index.insert(v.clone(), s.next);
        s.low.insert(v.clone(), s.next);
        s.next += 1;
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        let targets: Vec<ModPath> = s
            .edges
            .get(v)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        for w in targets {
            if !s.index.contains_key(&w) {
                connect(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.clone(), low);
            } else if s.on_stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = w == *v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in nodes {
        if !s.index.contains_key(v) {
            connect(&mut s, v);
        }
    }
    s.found
}

/// A shortest way from `start` back to itself inside `component`.
fn loop_through(
    start: &ModPath,
    component: &BTreeSet<ModPath>,
    edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
) -> Vec<ModPath> {
    let mut came_from: BTreeMap<ModPath, ModPath> = BTreeMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(v) = queue.pop_front() {
        for w in edges.get(&v).into_iter().flatten() {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut way = vec![v.clone()];
                let mut at = v.clone();
                while let Some(prev) = came_from.get(&at) {
                    way.push(prev.clone());
                    at = prev.clone();
                }
                way.reverse();
                return way;
            }
            if !came_from.contains_key(w) && w != start {
                came_from.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    vec![start.clone()]
}

/// Checks one crate; prints its cycles and returns how many there are.
fn check(name: &str, krate: &Crate) -> usize {
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    let mut first_arrow: BTreeMap<(ModPath, ModPath), &Arrow> = BTreeMap::new();
    for arrow in &krate.arrows {
        edges
            .entry(arrow.from.clone())
            .or_default()
            .insert(arrow.to.clone());
        first_arrow
            .entry((arrow.from.clone(), arrow.to.clone()))
            .or_insert(arrow);
    }
    let nodes: Vec<ModPath> = krate.modules.keys().cloned().collect();
    let found = cycles(&nodes, &edges);
    for (i, component) in found.iter().enumerate() {
        let members: BTreeSet<ModPath> = component.iter().cloned().collect();
        let way = loop_through(&component[0], &members, &edges);
        let names: Vec<String> = way
            .iter()
            .chain(std::iter::once(&component[0]))
            .map(|m| Shown(name, m).to_string())
            .collect();
        println!(
            "import cycle {} in {name} ({} modules tied): {}",
            i + 1,
            component.len(),
            names.join(" -> ")
        );
        let all: Vec<String> = component
            .iter()
            .map(|m| Shown(name, m).to_string())
            .collect();
        println!("  modules tied: {}", all.join(", "));
        for pair in way
            .iter()
            .zip(way.iter().skip(1).chain(std::iter::once(&component[0])))
        {
            if let Some(arrow) = first_arrow.get(&(pair.0.clone(), pair.1.clone())) {
                println!(
                    "  {}:{}  {} -> {}",
                    arrow.file.display(),
                    arrow.line,
                    Shown(name, &arrow.from),
                    Shown(name, &arrow.to)
                );
            }
        }
    }
    found.len()
}

/// The crate's name for messages: the directory holding `src/`.
fn crate_name(root: &Path) -> String {
    root.parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
}

fn main() -> ExitCode {
    let roots: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if roots.is_empty() {
        eprintln!(
            "usage: import-cycles CRATE_ROOT.rs...  (src/lib.rs or src/main.rs of each crate)"
        );
        return ExitCode::from(2);
    }
    let mut cycles_found = 0;
    let mut unreadable = 0;
    let mut modules = 0;
    for root in &roots {
        let krate = Crate::load(root);
        for err in &krate.errors {
            eprintln!("import-cycles: cannot read {err}");
        }
        unreadable += krate.errors.len();
        modules += krate.modules.len();
        cycles_found += check(&crate_name(root), &krate);
    }
    if unreadable > 0 {
        return ExitCode::from(2);
    }
    if cycles_found > 0 {
        println!("{cycles_found} import cycle(s) between modules");
        return ExitCode::FAILURE;
    }
    println!(
        "import-cycles: no import cycle between the {modules} modules of {} crates",
        roots.len()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crate written out into a temporary directory, from `(file, text)`.
    fn krate(files: &[(&str, &str)]) -> (PathBuf, Crate) {
        let dir = std::env::temp_dir().join(format!(
            "import-cycles-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (file, text) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let krate = Crate::load(&dir.join("src/lib.rs"));
        (dir, krate)
    }

    fn count(files: &[(&str, &str)]) -> usize {
        let (dir, krate) = krate(files);
        assert!(krate.errors.is_empty(), "{:?}", krate.errors);
        let n = check("test", &krate);
        std::fs::remove_dir_all(dir).unwrap();
        n
    }

    #[test]
    fn a_function_imported_from_a_module_that_imports_back_is_a_cycle() {
        let files = [
            ("src/lib.rs", "mod a; mod b;"),
            ("src/a.rs", "use crate::b::g; pub(crate) fn f() { g() }"),
            (
                "src/b.rs",
                "use crate::a::f; pub(crate) fn g() {} fn h() { f() }",
            ),
        ];
        assert_eq!(count(&files), 1);
    }

    #[test]
    fn inline_paths_and_re_exports_count() {
        // b calls a through a full path; a uses b's function re-exported
        // by the parent `p`, which declares b.
        let files = [
            ("src/lib.rs", "mod a; mod p;"),
            ("src/a.rs", "use crate::p::g; pub(crate) fn f() { g() }"),
            ("src/p/mod.rs", "mod b; pub(crate) use b::g;"),
            ("src/p/b.rs", "pub(crate) fn g() { crate::a::f() }"),
        ];
        assert_eq!(count(&files), 1);
    }

    #[test]
    fn a_child_using_its_parent_is_a_cycle_but_tests_and_inline_modules_are_not() {
        let child = [
            ("src/lib.rs", "mod p;"),
            ("src/p/mod.rs", "mod c; pub(crate) struct T;"),
            ("src/p/c.rs", "use super::T;"),
        ];
        assert_eq!(count(&child), 1);
        let fine = [
            ("src/lib.rs", "mod a; mod b;"),
            (
                "src/a.rs",
                "use crate::b::g; fn f() { g() } mod inner { use super::f; } \
                 #[cfg(test)] mod tests { use super::*; use crate::b; }",
            ),
            (
                "src/b.rs",
                "pub(crate) fn g() {} #[cfg(test)] fn t() { crate::a::f() }",
            ),
        ];
        assert_eq!(count(&fine), 0);
    }

    #[test]
    fn a_path_inside_a_macro_call_is_seen() {
        let files = [
            ("src/lib.rs", "mod a; mod b;"),
            (
                "src/a.rs",
                "use crate::b::g; pub(crate) const K: &str = \"k\"; fn f() { g() }",
            ),
            (
                "src/b.rs",
                "pub(crate) fn g() { let _ = format!(\"{}\", crate::a::K); }",
            ),
        ];
        assert_eq!(count(&files), 1);
    }

    #[test]
    fn modules_declared_inside_a_macro_are_seen() {
        let files = [
            (
                "src/lib.rs",
                "macro_rules! wrap { ($($i:item)*) => { $($i)* }; } wrap! { mod a; mod b; }",
            ),
            ("src/a.rs", "use crate::b::g; pub(crate) fn f() { g() }"),
            ("src/b.rs", "pub(crate) fn g() { crate::a::f() }"),
        ];
        assert_eq!(count(&files), 1);
    }

    #[test]
    fn paths_into_other_crates_draw_no_arrow() {
        let files = [
            ("src/lib.rs", "mod a; mod b;"),
            (
                "src/a.rs",
                "use std::sync::Mutex; use b_crate::x; fn f() { std::mem::drop(1) }",
            ),
            ("src/b.rs", "use crate::a; fn g() { ::a::f() }"),
        ];
        assert_eq!(count(&files), 0);
    }
}
