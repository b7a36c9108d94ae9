//! The error catalogue (shared/src/http/codes.rs) against the sources, `docs/errors.md` and
//! the answers.
//!
//! Codes are read from the sources the way they reach an answer: a string literal given as
//! the `code` parameter of any fn that has one (`ApiError::invalid`, `AuthFailure::forbidden`,
//! a handler's own field helper, ...), returned by a fn whose name says `code` (the payment
//! pipeline's `PaymentError::code`, a route's `Params::code`), or assigned to a `code` field.

use crate::support::{repo_root, spawn_app};
use payorders::http::ErrorCode;
use payorders::http::codes;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Code-shaped literals the scan finds that the API never answers, and why.
const NOT_ANSWERED: &[(&str, &str)] = &[(
    "INTERNAL",
    "PaymentError::code of a store or queue fault; the API answers those with the store's or queue's own code",
)];

/// The status each `ApiError` / `AuthFailure` constructor answers.
const CONSTRUCTOR_STATUS: &[(&str, u16)] = &[
    ("bad_request", 400),
    ("invalid", 400),
    ("unprocessable", 422),
    ("conflict", 409),
    ("unauthenticated", 401),
    ("forbidden", 403),
    ("unavailable", 503),
    ("rate_limited", 429),
];

// ------------------------------------------------------------------ a small Rust lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let push = |out: &mut Vec<Token>, tok, line| out.push(Token { tok, line });
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                line += (c[i] == '\n') as usize;
                i += 1;
            }
            i += 2;
        } else if ch == '"' || (ch == 'r' && raw_string_at(&c, i + 1)) {
            // A string: plain with escapes, or raw (`r#"…"#`).
            let start_line = line;
            let mut value = String::new();
            if ch == 'r' {
                let mut hashes = 0;
                i += 1;
                while c[i] == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                loop {
                    if c[i] == '"' && c[i + 1..].iter().take(hashes).all(|h| *h == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    line += (c[i] == '\n') as usize;
                    value.push(c[i]);
                    i += 1;
                }
            } else {
                i += 1;
                while c[i] != '"' {
                    if c[i] == '\\' {
                        value.push(c[i]);
                        i += 1;
                    }
                    line += (c[i] == '\n') as usize;
                    value.push(c[i]);
                    i += 1;
                }
                i += 1;
            }
            push(&mut out, Tok::Str(value), start_line);
        } else if ch == 'b' && c.get(i + 1) == Some(&'"') {
            i += 1; // a byte string: lexed as a string next round
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('static).
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let name: String = c[start..i].iter().collect();
                push(&mut out, Tok::Ident(format!("'{name}")), line);
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            push(&mut out, Tok::Ident(c[start..i].iter().collect()), line);
        } else {
            push(&mut out, Tok::Punct(ch), line);
            i += 1;
        }
    }
    out
}

/// Whether `r` followed by `c[i..]` opens a raw string (`r"`, `r#"`), not a raw ident.
fn raw_string_at(c: &[char], i: usize) -> bool {
    let hashes = c[i..].iter().take_while(|h| **h == '#').count();
    c.get(i + hashes) == Some(&'"')
}

fn is_punct(t: Option<&Token>, p: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(q), .. }) if *q == p)
}

fn is_ident(t: Option<&Token>, name: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(n), .. }) if n == name)
}

/// The index just past the bracket group opening at `open`.
fn group_end(t: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (j, tok) in t.iter().enumerate().skip(open) {
        match tok.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
    }
    t.len()
}

/// The top-level comma-separated items of the group opening at `open`.
fn items(t: &[Token], open: usize) -> Vec<&[Token]> {
    let end = group_end(t, open) - 1;
    let (mut out, mut depth, mut start) = (Vec::new(), 0, open + 1);
    for j in open + 1..end {
        match t[j].tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                out.push(&t[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    if start < end {
        out.push(&t[start..end]);
    }
    out
}

/// The tokens of a file without its `#[cfg(test)] mod … { … }` blocks.
fn shipped(t: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let cfg_test = is_punct(t.get(i), '#')
            && is_punct(t.get(i + 1), '[')
            && is_ident(t.get(i + 2), "cfg")
            && is_punct(t.get(i + 3), '(')
            && is_ident(t.get(i + 4), "test")
            && is_punct(t.get(i + 5), ')')
            && is_punct(t.get(i + 6), ']')
            && is_ident(t.get(i + 7), "mod");
        if cfg_test && is_punct(t.get(i + 9), '{') {
            i = group_end(&t, i + 9);
        } else {
            out.push(t[i].clone());
            i += 1;
        }
    }
    out
}

fn code_shaped(s: &str) -> bool {
    s.len() >= 4
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn literals(t: &[Token]) -> impl Iterator<Item = (&str, usize)> {
    t.iter().filter_map(|t| match &t.tok {
        Tok::Str(s) if code_shaped(s) => Some((s.as_str(), t.line)),
        _ => None,
    })
}

// ------------------------------------------------------------------ the scan

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && !p.file_stem().is_some_and(|s| s == "tests" || s == "test")
        {
            out.push(p);
        }
    }
}

/// The shipped sources that can answer errors: the domain crate, every function crate,
/// the local host. Each with its tokens (tests left out).
fn sources() -> Vec<(String, Vec<Token>)> {
    let root = repo_root();
    let mut files = Vec::new();
    rs_files(&root.join("shared/src"), &mut files);
    rs_files(&root.join("infra/local/src"), &mut files);
    for e in std::fs::read_dir(root.join("functions")).unwrap() {
        let dir = e.unwrap().path().join("src");
        if dir.is_dir() {
            rs_files(&dir, &mut files);
        }
    }
    files
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let toks = shipped(lex(&std::fs::read_to_string(&f).unwrap()));
            (rel, toks)
        })
        .collect()
}

/// A code found in the sources: where, and the status its constructor gives, if it says.
#[derive(Debug)]
struct Use {
    at: String,
    status: Option<u16>,
}

fn codes_in_sources() -> BTreeMap<String, Vec<Use>> {
    let files = sources();
    // Every fn with a `code: &'static str` parameter: its name and the parameter's index
    // among the call's arguments (`self` is the receiver, not an argument).
    let mut takes_code: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (_, t) in &files {
        for i in 0..t.len() {
            if !(is_ident(t.get(i), "fn") && is_punct(t.get(i + 2), '(')) {
                continue;
            }
            let Tok::Ident(name) = &t[i + 1].tok else {
                continue;
            };
            let params: Vec<_> = items(t, i + 2)
                .into_iter()
                .filter(|p| !p.iter().any(|t| t.tok == Tok::Ident("self".into())))
                .collect();
            for (k, p) in params.iter().enumerate() {
                let text: Vec<&Tok> = p.iter().map(|t| &t.tok).collect();
                if text
                    == [
                        &Tok::Ident("code".into()),
                        &Tok::Punct(':'),
                        &Tok::Punct('&'),
                        &Tok::Ident("'static".into()),
                        &Tok::Ident("str".into()),
                    ]
                {
                    takes_code.entry(name.clone()).or_default().insert(k);
                }
            }
        }
    }
    let mut found: BTreeMap<String, Vec<Use>> = BTreeMap::new();
    let mut add = |code: &str, file: &str, line: usize, status: Option<u16>| {
        found.entry(code.to_owned()).or_default().push(Use {
            at: format!("{file}:{line}"),
            status,
        });
    };
    for (file, t) in &files {
        for i in 0..t.len() {
            let Tok::Ident(name) = &t[i].tok else {
                continue;
            };
            let defines = i > 0 && is_ident(t.get(i - 1), "fn");
            if defines && name.contains("code") && is_punct(t.get(i + 1), '(') {
                // A fn that returns codes: every code-shaped literal of its body.
                let after = group_end(t, i + 1);
                let Some(open) = (after..t.len()).find(|&j| is_punct(t.get(j), '{')) else {
                    continue;
                };
                let returns_str = t[after..open]
                    .iter()
                    .any(|t| t.tok == Tok::Ident("str".into()));
                if returns_str {
                    for (code, line) in literals(&t[open..group_end(t, open)]) {
                        add(code, file, line, None);
                    }
                }
            } else if !defines && is_punct(t.get(i + 1), '(') {
                // A call of a fn that takes a code.
                let Some(indexes) = takes_code.get(name) else {
                    continue;
                };
                let args = items(t, i + 1);
                let status = match name.as_str() {
                    "new" => args.first().and_then(|a| match a {
                        [
                            Token {
                                tok: Tok::Ident(n), ..
                            },
                        ] => n.parse().ok(),
                        _ => None,
                    }),
                    other => CONSTRUCTOR_STATUS
                        .iter()
                        .find(|(c, _)| *c == other)
                        .map(|(_, s)| *s),
                };
                for k in indexes {
                    for (code, line) in args.get(*k).into_iter().flat_map(|a| literals(a)) {
                        add(code, file, line, status);
                    }
                }
            } else if name == "code"
                && (is_punct(t.get(i + 1), '=') || is_punct(t.get(i + 1), ':'))
                && !is_punct(t.get(i + 2), '=')
                && !is_punct(t.get(i + 2), ':')
            {
                // `e.code = "…"`, `Foo { code: "…" }`.
                if let Some(Token {
                    tok: Tok::Str(s),
                    line,
                }) = t.get(i + 2)
                    && code_shaped(s)
                {
                    add(s, file, *line, None);
                }
            }
        }
    }
    found
}

// ------------------------------------------------------------------ the tests

#[test]
fn every_error_code_in_the_sources_is_catalogued_with_its_status() {
    let found = codes_in_sources();
    // The scan must keep seeing each way a code is given, or it proves nothing.
    for (code, how) in [
        ("INVALID_AMOUNT", "ApiError::invalid"),
        ("MISSING_API_KEY", "AuthFailure::unauthenticated"),
        ("INTERNAL_ERROR", "ApiError::new"),
        ("TX_BEFORE_ORDER", "a fn code()"),
        ("ROUTE_NOT_FOUND", "an assignment to .code"),
        ("INVALID_CONFIRMATIONS", "a handler helper taking a code"),
    ] {
        assert!(
            found.contains_key(code),
            "the scan no longer finds {code} (given through {how}): fix the scan"
        );
    }
    assert!(found.len() >= 60, "only {} codes found", found.len());
    let mut wrong = Vec::new();
    for (code, uses) in &found {
        if NOT_ANSWERED.iter().any(|(c, _)| c == code) {
            continue;
        }
        let Some(c) = ErrorCode::parse(code) else {
            let at: Vec<&str> = uses.iter().map(|u| u.at.as_str()).collect();
            wrong.push(format!(
                "{code} (at {}) is not in the catalogue: add it to shared/src/http/codes.rs",
                at.join(", ")
            ));
            continue;
        };
        for u in uses {
            if let Some(s) = u.status.filter(|s| !c.statuses().contains(s)) {
                wrong.push(format!(
                    "{code} is answered with {s} at {}, the catalogue says {:?}",
                    u.at,
                    c.statuses()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_catalogued_code_is_still_answered() {
    // A catalogue entry no source names any more documents an answer that cannot happen.
    let mut named = BTreeSet::new();
    for (file, t) in sources() {
        if file.ends_with("http/codes.rs") {
            continue;
        }
        named.extend(literals(&t).map(|(s, _)| s.to_owned()));
    }
    let stale: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !named.contains(*c))
        .collect();
    assert!(
        stale.is_empty(),
        "catalogued but named nowhere in the sources (remove them from shared/src/http/codes.rs): {stale:?}"
    );
}

#[test]
fn docs_errors_md_is_generated_from_the_catalogue() {
    let have = crate::support::generated_file("docs/errors.md", &codes::markdown(), "errors");
    for c in ErrorCode::ALL {
        assert!(have.contains(&format!("<a id=\"{c}\"></a>`{c}`")), "{c}");
    }
}

#[tokio::test]
async fn error_answers_link_their_entry_in_the_error_reference() {
    let app = spawn_app().await;
    // No key: the authorizer's refusal, answered by the function.
    let r = app
        .send("GET", "/pay-orders", Default::default(), None)
        .await;
    r.assert_error(401, "MISSING_API_KEY");
    assert_eq!(
        r.body["error"]["documentation_url"],
        format!("{}/errors#MISSING_API_KEY", codes::docs_url())
    );
    // No route: the host's own answer.
    let r = app.get(&app.a, "/no-such-route").await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    // A validation error.
    let r = app
        .post(
            &app.a,
            "/pay-orders",
            Some(&serde_json::json!({"mode": "DEPOSIT", "amount": "-1"})),
        )
        .await;
    assert!(r.status == 400 || r.status == 401, "{}", r.text);
    let code = r.body["error"]["code"].as_str().unwrap();
    assert!(ErrorCode::parse(code).is_some(), "{code} is not catalogued");
    assert_eq!(
        r.body["error"]["documentation_url"],
        codes::documentation_url(code)
    );
}
