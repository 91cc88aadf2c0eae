//! The `#[in_namespace(...)]` attribute of [nsguard](https://docs.rs/nsguard).
//!
//! Depend on `nsguard`, which re-exports the attribute; this crate is an
//! implementation detail. Its generated code refers to the runtime only
//! through `::nsguard::__private` (or `<crate = "...">::__private`).

#![forbid(unsafe_code)]

mod args;
mod expand;
mod validate;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Runs the function's body on a worker thread inside namespaces.
///
/// ```no_run
/// use std::path::Path;
///
/// #[nsguard::in_namespace(net = "/run/netns/blue")]
/// fn links() -> std::io::Result<Vec<String>> {
///     // on a worker thread that is in /run/netns/blue
///     Ok(nix::net::if_::if_nameindex()?
///         .iter()
///         .map(|i| i.name().to_string_lossy().into_owned())
///         .collect())
/// }
///
/// // Values are expressions, evaluated at each call; they may use the arguments.
/// #[nsguard::in_namespace(net = netns, uts = uts)]
/// fn hostname_in(netns: &Path, uts: &nsguard::Namespace) -> std::io::Result<String> {
///     Ok(nix::unistd::gethostname()?.to_string_lossy().into_owned())
/// }
/// ```
///
/// # Arguments
///
/// - `net`, `mnt`, `uts`, `ipc`, `pid`, `cgroup` `= value`: a namespace of
///   that kind, named by a path (`&str`, `String`, `&Path`, `PathBuf`) or
///   given as a `Namespace` / `&Namespace`;
/// - `set = value`: an `NsSet` / `&NsSet`; keys given besides override its
///   namespaces of their kind;
/// - `crate = "path"`: where nsguard is, if not `::nsguard`.
///
/// `user` and `time` are compile errors: no thread of a multithreaded
/// process can enter them; spawn a process instead.
///
/// # The function
///
/// It must return `Result<T, E>` with `E: From<nsguard::Error>`
/// (`std::io::Result<T>`, `anyhow::Result<T>` and aliases of `Result` such
/// as `type AppResult<T> = Result<T, AppError>` work: the type checker
/// decides, not how the type is spelled): opening or entering a namespace
/// can fail, and that error is returned. Its arguments are moved
/// into the body, which runs on another thread, so they must be `Send`
/// (references to `Sync` data are), and so must `T` and `E`. Methods
/// (`&self`, `&mut self`), generics, `impl Trait` arguments and `unsafe fn`
/// work; `const fn` and `extern` fns are refused.
///
/// # `async fn`
///
/// The body's future is polled on workers inside the namespaces, one poll
/// per handoff, so every poll runs inside (the future must be `Send`). With
/// nsguard's `tokio` feature the caller's tokio runtime is entered on the
/// worker during each poll, so `tokio::net` sockets created in the body
/// register with the caller's reactor and keep the namespace they were
/// created in. Without it, runtime-independent futures work.
///
/// ```no_run
/// #[nsguard::in_namespace(net = "/run/netns/blue")]
/// async fn listen() -> std::io::Result<std::net::TcpListener> {
///     std::net::TcpListener::bind("127.0.0.1:8080")
/// }
/// ```
///
/// # Equivalent code without the macro
///
/// ```no_run
/// # use std::path::Path;
/// fn hostname_in(netns: &Path, uts: &nsguard::Namespace) -> std::io::Result<String> {
///     let set = nsguard::NsSet::new()
///         .with(nsguard::Namespace::open(netns, nsguard::NsKind::Net)?)
///         .with(uts.try_clone()?);
///     set.run(move || -> std::io::Result<String> {
///         Ok(nix::unistd::gethostname()?.to_string_lossy().into_owned())
///     })?
/// }
/// ```
///
/// (The macro borrows `uts` instead of duplicating its fd.) The body runs on
/// a pinned worker of [`nsguard::Executor::global`]; a panic in it is
/// re-raised in the caller; the caller's thread is never switched.
///
/// [`nsguard::Executor::global`]: https://docs.rs/nsguard/latest/nsguard/struct.Executor.html#method.global
#[proc_macro_attribute]
pub fn in_namespace(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = proc_macro2::TokenStream::from(attr);
    let item = proc_macro2::TokenStream::from(item);
    match rewrite(attr, item.clone()) {
        Ok(tokens) => tokens.into(),
        // The original item stays, so that the errors do not cascade into
        // "cannot find function" at every call site, and IDEs keep working.
        Err(err) => {
            let mut out = item;
            out.extend(err.into_compile_error());
            out.into()
        }
    }
}

fn rewrite(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    use syn::spanned::Spanned;
    let attr_span = attr.span();
    let mut errors = validate::Errors::default();
    let args = match syn::parse2::<args::Args>(attr) {
        Ok(args) => Some(args),
        Err(err) => {
            errors.push(err);
            None
        }
    };
    let item_fn = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(f)) => Some(f),
        Ok(other) => {
            errors.error(
                item_span(&other),
                "#[in_namespace] applies to functions and methods with a body only",
            );
            None
        }
        Err(_) => {
            errors.error(
                item.span(),
                "#[in_namespace] applies to functions and methods with a body only",
            );
            None
        }
    };
    let config = args.and_then(|args| validate::config(args, attr_span, &mut errors));
    let ret = item_fn
        .as_ref()
        .and_then(|f| validate::function(f, &mut errors));
    errors.finish()?;
    match (item_fn, config, ret) {
        (Some(f), Some(config), Some(ret)) => Ok(expand::expand(f, config, ret)),
        _ => Err(syn::Error::new(attr_span, "invalid #[in_namespace] use")),
    }
}

/// The span of an item's leading keyword and name, for "not a fn" errors.
fn item_span(item: &syn::Item) -> proc_macro2::Span {
    let tokens = item.to_token_stream();
    let mut iter = tokens
        .into_iter()
        .skip_while(|t| matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == '#'));
    iter.next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span())
}

#[cfg(test)]
mod fuzz {
    //! The attribute never panics, whatever tokens it is given: it expands,
    //! or it reports a compile error.

    use proc_macro2::{
        Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree,
    };

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const IDENTS: [&str; 24] = [
        "net", "mnt", "uts", "ipc", "pid", "cgroup", "user", "time", "set", "crate", "foo", "self",
        "fn", "async", "const", "unsafe", "extern", "pub", "Result", "io", "std", "impl", "where",
        "r#net",
    ];
    const PUNCT: [char; 12] = ['=', ',', ':', '&', '*', '?', '!', '#', '.', '<', '>', '-'];

    fn tree(rng: &mut Rng, depth: usize) -> TokenTree {
        match rng.below(if depth > 3 { 3 } else { 4 }) {
            0 => {
                let name = IDENTS[rng.below(IDENTS.len())];
                match name.strip_prefix("r#") {
                    Some(raw) => TokenTree::Ident(Ident::new_raw(raw, Span::call_site())),
                    None => TokenTree::Ident(Ident::new(name, Span::call_site())),
                }
            }
            1 => {
                let spacing = if rng.below(2) == 0 {
                    Spacing::Alone
                } else {
                    Spacing::Joint
                };
                TokenTree::Punct(Punct::new(PUNCT[rng.below(PUNCT.len())], spacing))
            }
            2 => TokenTree::Literal(match rng.below(3) {
                0 => Literal::string(["/run/netns/x", "::nsguard", "", "a b"][rng.below(4)]),
                1 => Literal::u32_unsuffixed(rng.below(100) as u32),
                _ => Literal::character('c'),
            }),
            _ => {
                let delim = [
                    Delimiter::Parenthesis,
                    Delimiter::Bracket,
                    Delimiter::Brace,
                    Delimiter::None,
                ][rng.below(4)];
                TokenTree::Group(Group::new(delim, stream(rng, depth + 1, 6)))
            }
        }
    }

    fn stream(rng: &mut Rng, depth: usize, max: usize) -> TokenStream {
        (0..rng.below(max + 1)).map(|_| tree(rng, depth)).collect()
    }

    /// `key = value, ...` with keys valid and not, values of every shape.
    fn structured(rng: &mut Rng) -> TokenStream {
        let keys = [
            "net", "uts", "ipc", "pid", "cgroup", "mnt", "set", "crate", "user", "time", "nett",
            "r#net",
        ];
        let values = [
            "p",
            "\"/run/netns/x\"",
            "&self.ns",
            "format!(\"{}\", p)",
            "42",
            "\"::nsguard\"",
            "a.b()?",
            "",
            "=",
            "x,",
        ];
        let mut text = String::new();
        for i in 0..rng.below(4) + 1 {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(keys[rng.below(keys.len())]);
            if rng.below(8) != 0 {
                text.push_str(" = ");
                text.push_str(values[rng.below(values.len())]);
            }
        }
        text.parse().unwrap_or_default()
    }

    /// Items worth feeding: real functions, sometimes mangled.
    fn item(rng: &mut Rng) -> TokenStream {
        let forms = [
            "fn f(p: &std::path::Path) -> std::io::Result<()> { Ok(()) }",
            "pub async fn f() -> Result<u8, E> { Ok(1) }",
            "const fn f() -> Result<(), E> { Ok(()) }",
            "fn f(&self, x: impl Send) -> io::Result<Vec<u8>> where Self: Sync { todo!() }",
            "unsafe extern \"C\" fn f() -> Result<(), E> { Ok(()) }",
            "fn f() {}",
            "fn f() -> u32 { 1 }",
            "struct S;",
            "fn f();",
        ];
        let base: TokenStream = forms[rng.below(forms.len())].parse().expect("valid item");
        if rng.below(4) == 0 {
            // Splice random tokens in.
            let mut tokens: Vec<TokenTree> = base.into_iter().collect();
            let at = rng.below(tokens.len() + 1);
            tokens.splice(at..at, stream(rng, 0, 4));
            tokens.into_iter().collect()
        } else {
            base
        }
    }

    #[test]
    fn random_arguments_and_items_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut expanded, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let attr = if rng.below(2) == 0 {
                structured(&mut rng)
            } else {
                stream(&mut rng, 0, 10)
            };
            let item = item(&mut rng);
            let shown = format!("#[in_namespace({attr})] {item}");
            match std::panic::catch_unwind(|| super::rewrite(attr, item)) {
                Ok(Ok(_)) => expanded += 1,
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("panicked on: {shown}"),
            }
        }
        assert!(
            expanded > 0 && refused > 0,
            "{expanded} expanded, {refused} refused"
        );
    }

    #[test]
    fn well_formed_arguments_expand() {
        let attr: TokenStream =
            "net = path, uts = \"/proc/1/ns/uts\", set = &s, crate = \"::nsguard\""
                .parse()
                .unwrap();
        let item: TokenStream = "fn f(path: &Path, s: &NsSet) -> std::io::Result<()> { Ok(()) }"
            .parse()
            .unwrap();
        let out = super::rewrite(attr, item).expect("expands").to_string();
        assert!(
            out.contains("__private") && out.contains("Net") && out.contains("Uts"),
            "{out}"
        );
    }
}
