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
/// (`std::io::Result<T>` and `anyhow::Result<T>` work): opening or entering
/// a namespace can fail, and that error is returned. Its arguments are moved
/// into the body, which runs on another thread, so they must be `Send`
/// (references to `Sync` data are), and so must `T` and `E`. Methods
/// (`&self`, `&mut self`), generics, `impl Trait` arguments and `unsafe fn`
/// work; `async fn`, `const fn` and `extern` fns do not yet.
///
/// # Equivalent code without the macro
///
/// ```no_run
/// # use std::path::Path;
/// fn hostname_in(netns: &Path, uts: &nsguard::Namespace) -> std::io::Result<String> {
///     let set = nsguard::NsSet::new()
///         .with(nsguard::Namespace::open(nsguard::NsKind::Net, netns)?)
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
