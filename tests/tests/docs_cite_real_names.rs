//! The design and the threat model name the code that keeps each invariant
//! and the tests that attack it. This test fails when `docs/design.md` or
//! `docs/threat-model.md` cites a function, type or test that does not
//! exist, and prints every such citation with its document and line: the
//! list is the to-do list. Each document has a test of its own, so that
//! their findings show apart. It reads files only; it needs no root.
//!
//! What counts as a citation: a whole inline code span (between backticks,
//! outside fenced blocks) of the form `a::b`, `a::b::c` and so on, made of
//! identifiers, optionally ending in `()`; its last segment may end in `*`
//! (`attack_cleanup::*`, `::preset_rlimit_*`: at least one name with that
//! prefix). A span `::name` is shorthand for the citation before it in the
//! same table cell, or the same paragraph or list item, with its last
//! segment replaced: after `attack_caller::a`, `::b` means `attack_caller::b`
//! (a citation of a type, such as `Reply::Failed`, in between is passed over).
//! Anything else (`CLONE_NEWNET`, `open_tree(OPEN_TREE_CLONE)`,
//! `/proc/self/ns/pid`, `cgroup = auto`) is not a citation.
//!
//! How a citation maps to files, by its first segment:
//! - a module of a crate: `helper/src/M.rs`, `frontend/src/M.rs`,
//!   `shared/src/M.rs` (or `M/mod.rs`); `main` is the binaries' `main.rs`.
//!   A crate name starts at the crate's root: `shared::wire::x` is
//!   `shared/src/wire.rs`, `shared::Reply` is `shared/src/lib.rs`.
//! - a test file: `tests/tests/M.rs`.
//! - a type (capitalised), `crate`/`self`/`super`, `std`/`core`/`alloc`,
//!   or a crate the workspace depends on (`nix`, `libc`, `caps`, ...: the
//!   names in `Cargo.lock` and the manifests' dependency keys): not ours,
//!   skipped.
//! - anything else is reported: a module that does not exist (yet).
//!
//! The middle segments are submodules (`x.rs` beside or below the file) or
//! a type defined in the file (`module::Type::method`). The last segment
//! must be defined in the file it leads to: `fn`, `struct`, `enum`,
//! `trait`, `type`, `union`, `const`, `static`, `mod` or `macro_rules!`
//! of that name, a variant of the enum named before it, or a submodule.
//! A two-segment citation `file::name` also holds when a `#[test]` function
//! `name` exists in any file under `tests/`: tests move between files, so
//! the file part of a test citation is not checked.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// The documents: inline code spans and the citations among them.

/// An inline code span, with the line it starts on and the cell, paragraph
/// or list item it belongs to (for the `::name` shorthand).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    line: usize,
    context: usize,
    text: String,
}

/// Finds the code spans of `text`, which starts on line `first_line`;
/// returns them with their line. A run of backticks closes at the next run
/// of the same length; an unclosed run is literal text.
fn spans_in(text: &str, first_line: usize, context: usize, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let run_at = |i: usize| bytes[i..].iter().take_while(|&&b| b == b'`').count();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let open = run_at(i);
        let start = i + open;
        let mut j = start;
        let mut close = None;
        while j < bytes.len() {
            if bytes[j] == b'`' {
                let n = run_at(j);
                if n == open {
                    close = Some(j);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                let line = first_line + text[..i].matches('\n').count();
                let inner = text[start..end].replace('\n', " ");
                out.push(Span { line, context, text: inner.trim().to_string() });
                i = end + open;
            }
            None => i = start,
        }
    }
}

fn is_list_item(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
}

/// Every code span of a Markdown document outside fenced blocks. Each table
/// cell, paragraph and list item is a context of its own; a span may wrap
/// across the lines of a paragraph, not across a table row.
fn code_spans(doc: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut context = 0;
    let mut fence: Option<&str> = None;
    let mut para = String::new();
    let mut para_line = 0;
    let flush = |para: &mut String, para_line: usize, spans: &mut Vec<Span>, ctx: &mut usize| {
        if !para.is_empty() {
            *ctx += 1;
            spans_in(para, para_line, *ctx, spans);
            para.clear();
        }
    };
    for (n, line) in doc.lines().enumerate() {
        let line_no = n + 1;
        let t = line.trim_start();
        if let Some(marker) = fence {
            if t.starts_with(marker) {
                fence = None;
            }
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") {
            flush(&mut para, para_line, &mut spans, &mut context);
            fence = Some(&t[..3]);
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            flush(&mut para, para_line, &mut spans, &mut context);
            continue;
        }
        if t.starts_with('|') {
            flush(&mut para, para_line, &mut spans, &mut context);
            for cell in t.split('|') {
                context += 1;
                spans_in(cell, line_no, context, &mut spans);
            }
            continue;
        }
        if is_list_item(line) {
            flush(&mut para, para_line, &mut spans, &mut context);
        }
        if para.is_empty() {
            para_line = line_no;
        } else {
            para.push('\n');
        }
        para.push_str(line);
    }
    flush(&mut para, para_line, &mut spans, &mut context);
    spans
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A code span read as a citation: its segments, and whether it is the
/// `::name` shorthand. `None`: not a citation.
fn parse_citation(span: &str) -> Option<(bool, Vec<String>)> {
    let s = span.strip_suffix("()").unwrap_or(span);
    let (short, body) = match s.strip_prefix("::") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let segments: Vec<String> = body.split("::").map(str::to_string).collect();
    if segments.len() < if short { 1 } else { 2 } {
        return None;
    }
    let (last, head) = segments.split_last()?;
    let last_ok = match last.strip_suffix('*') {
        Some("") => !short || segments.len() > 1,
        Some(prefix) => is_ident(prefix),
        None => is_ident(last),
    };
    (last_ok && head.iter().all(|s| is_ident(s))).then_some((short, segments))
}

/// A citation found in a document, shorthand resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Citation {
    line: usize,
    /// As written.
    written: String,
    segments: Vec<String>,
}

/// The citations of a document, or a problem for a shorthand with nothing
/// before it.
fn citations(doc: &str) -> (Vec<Citation>, Vec<(usize, String)>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut last: Option<(usize, Vec<String>)> = None;
    for span in code_spans(doc) {
        let Some((short, segments)) = parse_citation(&span.text) else {
            continue;
        };
        let segments = if short {
            match &last {
                Some((ctx, prev)) if *ctx == span.context => {
                    let mut full = prev[..prev.len() - 1].to_vec();
                    full.extend(segments);
                    full
                }
                _ => {
                    problems.push((
                        span.line,
                        format!(
                            "`{}`: shorthand with no citation before it in the same cell or paragraph",
                            span.text
                        ),
                    ));
                    continue;
                }
            }
        } else {
            segments
        };
        // `Type::name` is not a file: a shorthand after it still means the
        // file before it.
        if !segments[0].starts_with(|c: char| c.is_ascii_uppercase()) {
            last = Some((span.context, segments.clone()));
        }
        found.push(Citation { line: span.line, written: span.text, segments });
    }
    (found, problems)
}

// ---------------------------------------------------------------------------
// The sources: what each file defines.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
}

/// Rust source as identifiers and punctuation: comments, strings and
/// character literals left out, so that a word in them defines nothing.
fn tokens(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_string = |mut i: usize| {
        // `i` is just past the opening quote.
        while i < c.len() && c[i] != '"' {
            i += if c[i] == '\\' { 2 } else { 1 };
        }
        i + 1
    };
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(i + 1);
        } else if ch == '\'' {
            // A character literal ('a', '\n', '\u{..}'), or a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_ascii_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            // Raw strings: r"..", r#".."#, br"..", cr"..".
            if matches!(word.as_str(), "r" | "br" | "cr") && matches!(c.get(i), Some('"' | '#')) {
                let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + hashes) == Some(&'"') {
                    i += hashes + 1;
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"'
                            && c[i + 1..].iter().take_while(|&&h| h == '#').count() >= hashes
                        {
                            i += 1 + hashes;
                            break;
                        }
                        i += 1;
                    }
                    continue;
                }
            }
            out.push(Tok::Ident(word));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// What one source file defines.
#[derive(Debug, Default)]
struct Items {
    /// Every item name: functions, types, constants, statics, modules, macros.
    names: BTreeSet<String>,
    /// Types only (a middle segment must be one of these).
    types: BTreeSet<String>,
    /// Enums and their variants.
    enums: HashMap<String, BTreeSet<String>>,
    /// Functions with a `#[test]` attribute.
    tests: BTreeSet<String>,
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// Index just past the bracket that closes the one at `open`.
fn matching(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    while i < toks.len() {
        match toks[i] {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    toks.len()
}

/// The variants of the enum whose body opens at `open` (`{`).
fn variants(toks: &[Tok], open: usize) -> BTreeSet<String> {
    let end = matching(toks, open);
    let mut out = BTreeSet::new();
    let mut expect = true;
    let mut i = open + 1;
    while i < end.saturating_sub(1) {
        match &toks[i] {
            Tok::Punct('(' | '[' | '{') => {
                i = matching(toks, i);
                continue;
            }
            Tok::Punct(',') => expect = true,
            Tok::Ident(name) if expect => {
                out.insert(name.clone());
                expect = false;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn items_of(src: &str) -> Items {
    let toks = tokens(src);
    let mut items = Items::default();
    let mut pending_test = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('#') => {
                // An attribute: `#[path ...]` or `#![...]`.
                let mut open = i + 1;
                if toks.get(open) == Some(&Tok::Punct('!')) {
                    open += 1;
                }
                if toks.get(open) == Some(&Tok::Punct('[')) {
                    let end = matching(&toks, open);
                    let mut path = Vec::new();
                    for t in &toks[open + 1..end] {
                        match t {
                            Tok::Ident(s) => path.push(s.as_str()),
                            Tok::Punct(':') => {}
                            _ => break,
                        }
                    }
                    if path.last() == Some(&"test") {
                        pending_test = true;
                    }
                    i = end;
                    continue;
                }
            }
            Tok::Punct(';' | '{' | '}') => pending_test = false,
            Tok::Ident(kw) => {
                let mut name = ident(toks.get(i + 1));
                if kw == "static" && name == Some("mut") {
                    name = ident(toks.get(i + 2));
                }
                if kw == "macro_rules" && toks.get(i + 1) == Some(&Tok::Punct('!')) {
                    name = ident(toks.get(i + 2));
                }
                let defines = matches!(
                    kw.as_str(),
                    "fn" | "struct"
                        | "enum"
                        | "trait"
                        | "type"
                        | "union"
                        | "const"
                        | "static"
                        | "mod"
                        | "macro_rules"
                );
                if let (true, Some(name)) = (defines, name) {
                    if name != "fn" {
                        items.names.insert(name.to_string());
                    }
                    if kw == "fn" {
                        if pending_test {
                            items.tests.insert(name.to_string());
                        }
                        pending_test = false;
                    }
                    if matches!(kw.as_str(), "struct" | "enum" | "trait" | "type" | "union") {
                        items.types.insert(name.to_string());
                    }
                    if kw == "enum" {
                        let open = (i + 2..toks.len()).find(|&j| toks[j] == Tok::Punct('{'));
                        if let Some(open) = open {
                            items.enums.insert(name.to_string(), variants(&toks, open));
                        }
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    items
}

// ---------------------------------------------------------------------------
// The tree: where a citation leads.

struct Tree {
    root: PathBuf,
    /// First segment → the files it may name (crate modules, test files,
    /// crate roots).
    modules: HashMap<String, Vec<PathBuf>>,
    /// Crates that are not ours, whose citations are skipped.
    external: BTreeSet<String>,
    /// `#[test]` functions anywhere under `tests/`.
    tests: BTreeSet<String>,
    items: HashMap<PathBuf, Items>,
    /// What a file that was not read defines: nothing.
    none: Items,
}

const CRATE_DIRS: &[&str] = &["helper/src", "frontend/src", "shared/src"];

fn rust_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module files directly in `dir`, by name: `x.rs` and `x/mod.rs`.
fn modules_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for path in entries.flatten().map(|e| e.path()) {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.is_dir() && path.join("mod.rs").is_file() {
            out.push((stem.to_string(), path.join("mod.rs")));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((stem.to_string(), path));
        }
    }
    out
}

/// Names of the crates the workspace uses: Cargo.lock's packages and the
/// dependency keys of the manifests (renamed dependencies).
fn external_crates(root: &Path) -> BTreeSet<String> {
    let mut out: BTreeSet<String> =
        ["std", "core", "alloc", "proc_macro", "test"].into_iter().map(String::from).collect();
    let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    for line in lock.lines() {
        if let Some(name) = line.strip_prefix("name = ") {
            out.insert(name.trim_matches('"').replace('-', "_"));
        }
    }
    let mut manifests = vec![root.join("Cargo.toml")];
    if let Ok(entries) = fs::read_dir(root) {
        manifests.extend(entries.flatten().map(|e| e.path().join("Cargo.toml")));
    }
    for manifest in manifests {
        let text = fs::read_to_string(manifest).unwrap_or_default();
        let mut in_deps = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.contains("dependencies");
                if let Some(dep) =
                    line.trim_matches(|c| c == '[' || c == ']').split_once("dependencies.")
                {
                    out.insert(dep.1.replace('-', "_"));
                }
            } else if in_deps {
                if let Some((key, _)) = line.split_once('=') {
                    out.insert(key.trim().replace('-', "_"));
                }
            }
        }
    }
    out
}

impl Tree {
    fn load(root: &Path) -> Tree {
        let mut modules: HashMap<String, Vec<PathBuf>> = HashMap::new();
        let mut files = Vec::new();
        for dir in CRATE_DIRS {
            for (name, path) in modules_in(&root.join(dir)) {
                files.push(path.clone());
                modules.entry(name).or_default().push(path);
            }
        }
        for (name, path) in modules_in(&root.join("tests/tests")) {
            modules.entry(name).or_default().push(path);
        }
        let roots = [
            ("shared", &["shared/src/lib.rs"][..]),
            ("safeexec_shared", &["shared/src/lib.rs"][..]),
            ("helper", &["helper/src/main.rs"][..]),
            ("frontend", &["frontend/src/lib.rs", "frontend/src/main.rs"][..]),
            ("safeexec", &["frontend/src/lib.rs", "frontend/src/main.rs"][..]),
        ];
        for (name, paths) in roots {
            for path in paths {
                let path = root.join(path);
                if path.is_file() {
                    modules.entry(name.to_string()).or_default().push(path);
                }
            }
        }
        let mut test_files = Vec::new();
        rust_files_under(&root.join("tests"), &mut test_files);
        files.extend(test_files.iter().cloned());
        let mut items = HashMap::new();
        for path in files {
            let src = fs::read_to_string(&path).unwrap_or_default();
            items.insert(path, items_of(&src));
        }
        let tests = test_files.iter().flat_map(|p| items[p].tests.iter().cloned()).collect();
        Tree {
            root: root.to_path_buf(),
            modules,
            external: external_crates(root),
            tests,
            items,
            none: Items::default(),
        }
    }

    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    fn items(&self, path: &Path) -> &Items {
        self.items.get(path).unwrap_or(&self.none)
    }

    /// The submodule `name` of the module in `file`, if it has one.
    fn submodule(&self, file: &Path, name: &str) -> Option<PathBuf> {
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("lib.rs" | "main.rs" | "mod.rs") => file.parent()?.to_path_buf(),
            _ => file.with_extension(""),
        };
        [dir.join(format!("{name}.rs")), dir.join(name).join("mod.rs")]
            .into_iter()
            .find(|p| self.items.contains_key(p))
    }

    /// Follows `rest` (the segments after the first) from `file`. On
    /// failure: how many segments it got past, and why it stopped.
    fn walk(&self, file: &Path, rest: &[String]) -> Result<(), (usize, String)> {
        let mut file = file.to_path_buf();
        let mut in_type: Option<&str> = None;
        let Some((last, middle)) = rest.split_last() else {
            return Ok(());
        };
        for (depth, seg) in middle.iter().enumerate() {
            if in_type.is_some() {
                let why = format!("`{seg}` follows a type in {}", self.show(&file));
                return Err((depth, why));
            }
            if let Some(sub) = self.submodule(&file, seg) {
                file = sub;
            } else if self.items(&file).types.contains(seg) {
                in_type = Some(seg);
            } else {
                let why = format!("no module or type `{seg}` in {}", self.show(&file));
                return Err((depth, why));
            }
        }
        let items = self.items(&file);
        let variants = in_type.and_then(|t| items.enums.get(t));
        let matches = |name: &str| match last.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == last,
        };
        let found = items.names.iter().any(|n| matches(n))
            || variants.is_some_and(|v| v.iter().any(|n| matches(n)))
            || (in_type.is_none() && !last.ends_with('*') && self.submodule(&file, last).is_some())
            || last == "*";
        if found {
            return Ok(());
        }
        let what = match in_type {
            Some(t) if items.enums.contains_key(t) => format!("no variant or fn `{last}` of `{t}`"),
            Some(t) => format!("no fn `{last}` for `{t}`"),
            None => format!("no fn, type, const or module `{last}`"),
        };
        Err((middle.len(), format!("{what} in {}", self.show(&file))))
    }

    /// Whether a `#[test]` function under `tests/` matches `name` (which
    /// may end in `*`).
    fn has_test(&self, name: &str) -> bool {
        match name.strip_suffix('*') {
            Some(prefix) => self.tests.iter().any(|t| t.starts_with(prefix)),
            None => self.tests.contains(name),
        }
    }

    /// `Ok(true)`: the citation holds; `Ok(false)`: not ours, skipped;
    /// `Err`: why it does not hold.
    fn check(&self, segments: &[String]) -> Result<bool, String> {
        let first = segments[0].as_str();
        if first.starts_with(|c: char| c.is_ascii_uppercase())
            || matches!(first, "crate" | "self" | "super")
        {
            return Ok(false);
        }
        let candidates = self.modules.get(first).map_or(&[][..], Vec::as_slice);
        if candidates.is_empty() && self.external.contains(first) {
            return Ok(false);
        }
        if segments.len() == 2 && segments[1] != "*" && self.has_test(&segments[1]) {
            return Ok(true);
        }
        if candidates.is_empty() {
            let mut why = format!(
                "no module `{first}` in {}, no such test file and no such crate",
                CRATE_DIRS.join(", ")
            );
            if segments.len() == 2 {
                let _ = write!(why, "; no test `{}` under tests/", segments[1]);
            }
            return Err(why);
        }
        // Of the files the first segment may name, those that led furthest
        // explain best.
        let mut failures = Vec::new();
        for file in candidates {
            match self.walk(file, &segments[1..]) {
                Ok(()) => return Ok(true),
                Err(e) => failures.push(e),
            }
        }
        let furthest = failures.iter().map(|f| f.0).max().unwrap_or(0);
        let mut why: Vec<String> =
            failures.into_iter().filter(|f| f.0 == furthest).map(|f| f.1).collect();
        let in_a_crate =
            |file: &PathBuf| CRATE_DIRS.iter().any(|d| file.starts_with(self.root.join(d)));
        if !candidates.iter().any(in_a_crate) {
            why.insert(0, format!("no module `{first}` in {}", CRATE_DIRS.join(", ")));
        }
        if segments.len() == 2 {
            why.push(format!("no test `{}` under tests/", segments[1]));
        }
        Err(why.join("; "))
    }
}

// ---------------------------------------------------------------------------
// The checks.

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Every problem of one document as `doc:line: citation: why`, and how many
/// citations were checked.
fn problems_of(tree: &Tree, doc_name: &str, doc: &str) -> (Vec<String>, usize) {
    let (found, shorthand) = citations(doc);
    let mut out: Vec<(usize, String)> = shorthand;
    let mut checked = 0;
    for cite in &found {
        match tree.check(&cite.segments) {
            Ok(true) => checked += 1,
            Ok(false) => {}
            Err(why) => {
                checked += 1;
                let shown = if cite.written.starts_with("::") {
                    format!("`{}` (= `{}`)", cite.written, cite.segments.join("::"))
                } else {
                    format!("`{}`", cite.written)
                };
                out.push((cite.line, format!("{shown}: {why}")));
            }
        }
    }
    out.sort();
    let lines = out.into_iter().map(|(line, msg)| format!("{doc_name}:{line}: {msg}")).collect();
    (lines, checked)
}

fn check_doc(doc_name: &str) {
    let root = repo_root();
    let doc = fs::read_to_string(root.join(doc_name))
        .unwrap_or_else(|e| panic!("cannot read {doc_name}: {e}"));
    let tree = Tree::load(&root);
    let (problems, checked) = problems_of(&tree, doc_name, &doc);
    // A parser that finds nothing would pass anything.
    assert!(checked >= 10, "{doc_name}: only {checked} citations found; is the parser broken?");
    assert!(
        problems.is_empty(),
        "{doc_name} cites {} name(s) that do not exist:\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn threat_model_cites_only_real_names() {
    check_doc("docs/threat-model.md");
}

#[test]
fn design_cites_only_real_names() {
    check_doc("docs/design.md");
}

// ---------------------------------------------------------------------------
// The checker itself.

fn texts(doc: &str) -> Vec<String> {
    let (found, _) = citations(doc);
    found.into_iter().map(|c| c.segments.join("::")).collect()
}

#[test]
fn only_paths_of_identifiers_are_citations() {
    let doc = "Not: `CLONE_NEWNET`, `open_tree(OPEN_TREE_CLONE)`, `PR_SET_PDEATHSIG`,\n\
               `/proc/self/ns/pid`, `cgroup = auto`, `a :: b`, `x::y z`, `::`.\n\
               Yes: `policy::load`, `policy::Policy::check()`, `attack_cleanup::*`.\n";
    assert_eq!(texts(doc), ["policy::load", "policy::Policy::check", "attack_cleanup::*"]);
}

#[test]
fn shorthand_takes_the_prefix_of_the_citation_before_it_in_its_cell() {
    let doc = "| 1 | `a::b::c`, `::d` | `::e` |\n\
               | 2 | `t::x`, `T::u`, `::y`, `::z_*` |\n\
               \n\
               A `m::f` and, wrapped\n\
               over a line, `::g`.\n\
               \n\
               - `::h` has nothing before it\n";
    let (found, problems) = citations(doc);
    let got: Vec<_> = found.iter().map(|c| (c.line, c.segments.join("::"))).collect();
    let want = [
        (1, "a::b::c"),
        (1, "a::b::d"),
        (2, "t::x"),
        (2, "T::u"),
        (2, "t::y"),
        (2, "t::z_*"),
        (4, "m::f"),
        (5, "m::g"),
    ];
    assert_eq!(got, want.map(|(l, s)| (l, s.to_string())).to_vec(), "{problems:?}");
    assert_eq!(problems.len(), 2, "{problems:?}"); // `::e` and `::h`
}

#[test]
fn spans_wrap_across_lines_and_fenced_blocks_are_skipped() {
    let doc = "one `4754\nroot:x` then `p::q`\n\n```\n`r::s`\n```\n`u::v`\n";
    let spans = code_spans(doc);
    let got: Vec<_> = spans.iter().map(|s| (s.line, s.text.as_str())).collect();
    assert_eq!(got, [(1, "4754 root:x"), (2, "p::q"), (7, "u::v")]);
}

#[test]
fn definitions_are_found_and_words_in_strings_and_comments_are_not() {
    let src = r##"
        // fn in_a_comment() {}
        /* fn in_a_block /* nested */ comment */
        const S: &str = "fn in_a_string()";
        const R: &str = r#"fn in_a_raw_string "quoted""#;
        const C: char = '"';
        pub(crate) const fn konst<'a>(x: &'a str) -> &'a str { x }
        static mut COUNTER: u32 = 0;
        pub enum ToRun { Cgroups(Vec<i32>), #[allow(dead_code)] Go, Stop { now: bool } }
        impl Thing { pub fn method(&self) {} }
        #[cfg(test)]
        fn not_a_test() {}
        #[test] #[ignore = "slow"]
        fn a_test() {}
        macro_rules! mac { () => {} }
    "##;
    let items = items_of(src);
    for name in ["konst", "COUNTER", "ToRun", "method", "a_test", "mac", "S"] {
        assert!(items.names.contains(name), "{name}: {items:?}");
    }
    for name in ["in_a_comment", "in_a_block", "in_a_string", "in_a_raw_string"] {
        assert!(!items.names.contains(name), "{name}: {items:?}");
    }
    let variants: Vec<_> = items.enums["ToRun"].iter().cloned().collect();
    assert_eq!(variants, ["Cgroups", "Go", "Stop"]);
    assert_eq!(items.tests.iter().collect::<Vec<_>>(), ["a_test"]);
}

#[test]
fn a_name_that_does_not_exist_is_reported_with_its_line() {
    let tree = Tree::load(&repo_root());
    let doc = "| a | `policy::load`, `::no_such_function` |\n\
               \n\
               `protocol::truncated_frame_is_refused`, `::no_such_test`,\n\
               `shared::wire::no_such_fn`, `policy::Policy::no_such_method`,\n\
               `no_such_module::thing`, `std::process::exit`, `nix::unistd::setsid`,\n\
               `shared::limits::Limit::Cpu`, `shared::limits::Limit::Nope`, `cleanup::*`.\n";
    let (problems, _) = problems_of(&tree, "doc.md", doc);
    let expect = [
        ("doc.md:1", "no_such_function"),
        ("doc.md:3", "no_such_test"),
        ("doc.md:4", "shared::wire::no_such_fn"),
        ("doc.md:4", "policy::Policy::no_such_method"),
        ("doc.md:5", "no_such_module::thing"),
        ("doc.md:6", "shared::limits::Limit::Nope"),
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    for (at, name) in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(&format!("{at}: ")) && p.contains(name)),
            "{at} {name} not reported: {problems:#?}"
        );
    }
}
