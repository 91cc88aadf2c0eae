//! Checking the arguments and the function, reporting every error at once.

use proc_macro2::Span;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, ItemFn, Lit, ReturnType, Type};

use crate::args::{Arg, Args, VALID_KEYS};

/// The namespace keys, with their `NsKind` variants.
const KINDS: [(&str, &str); 6] = [
    ("net", "Net"),
    ("mnt", "Mnt"),
    ("uts", "Uts"),
    ("ipc", "Ipc"),
    ("pid", "Pid"),
    ("cgroup", "Cgroup"),
];

/// What the attribute asks for, checked.
pub(crate) struct Config {
    /// `(NsKind variant, value)` in the order written.
    pub(crate) kinds: Vec<(Ident, Expr)>,
    pub(crate) set: Option<Expr>,
    pub(crate) krate: syn::Path,
}

/// Collects errors so that all of them are reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub(crate) fn error(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

pub(crate) fn config(args: Args, attr_span: Span, errors: &mut Errors) -> Option<Config> {
    let mut kinds: Vec<(Ident, Expr)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut set = None;
    let mut krate = None;
    for Arg { key, eq, value } in args.0 {
        let name = key.unraw().to_string();
        if seen.contains(&name) {
            errors.error(
                key.span(),
                format!("duplicate key `{name}`: each key may appear once"),
            );
            continue;
        }
        seen.push(name.clone());
        let Some(value) = value else {
            let at = eq.map_or(key.span(), |eq| eq.span());
            errors.error(
                at,
                format!(
                    "missing value for `{name}`: write `{name} = {}`",
                    example(&name)
                ),
            );
            continue;
        };
        match name.as_str() {
            "set" => set = Some(value),
            "crate" => match &value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => match s.parse::<syn::Path>() {
                    Ok(path) => krate = Some(path),
                    Err(_) => errors.error(s.span(), "`crate` must name a path, like `crate = \"::nsguard\"`"),
                },
                other => errors.error(other.span(), "`crate` takes a string: `crate = \"path::to::nsguard\"`"),
            },
            "user" => errors.error(
                key.span(),
                "`user` cannot be entered by a thread: the kernel refuses setns(CLONE_NEWUSER) with \
                 EINVAL in a process with more than one thread; spawn a process into the set instead",
            ),
            "time" => errors.error(
                key.span(),
                "`time` cannot be entered by a thread: the kernel refuses setns(CLONE_NEWTIME) with \
                 EUSERS in a process with more than one thread; spawn a process into the set instead",
            ),
            _ => match KINDS.iter().find(|(k, _)| *k == name) {
                Some((_, variant)) => kinds.push((Ident::new(variant, key.span()), value)),
                None => errors.error(key.span(), format!("unknown key `{name}`; {VALID_KEYS}")),
            },
        }
    }
    if seen.is_empty() {
        errors.error(
            attr_span,
            "name the namespaces to run in, e.g. `#[in_namespace(net = \"/run/netns/blue\")]`",
        );
    }
    let krate = krate.unwrap_or_else(|| syn::parse_quote!(::nsguard));
    Some(Config { kinds, set, krate })
}

fn example(key: &str) -> &'static str {
    match key {
        "set" => "&my_set",
        "crate" => "\"::nsguard\"",
        "net" => "\"/run/netns/NAME\"",
        _ => "path_or_namespace",
    }
}

/// What the expansion needs to know about the function's return type.
pub(crate) struct Return {
    /// The type to annotate the body's closure with; `None` when it cannot
    /// be written there (it contains `impl Trait`).
    pub(crate) closure_ty: Option<Type>,
    /// Where the return type is written: errors about it (not `Send`, no
    /// `From<nsguard::Error>`) are reported there.
    pub(crate) span: Span,
    /// Whether the function is `async`: its body's future is then polled on
    /// workers, one poll at a time.
    pub(crate) is_async: bool,
}

pub(crate) fn function(item: &ItemFn, errors: &mut Errors) -> Option<Return> {
    let sig = &item.sig;
    if let Some(constness) = sig.constness {
        errors.error(
            constness.span(),
            "a `const fn` cannot switch namespaces: namespaces exist only at run time; remove `const`",
        );
    }
    if let Some(abi) = &sig.abi {
        errors.error(
            abi.span(),
            "an `extern` fn cannot be #[in_namespace]: foreign callers cannot receive its namespace \
             errors; put the attribute on a Rust fn and call that from the extern fn",
        );
    }
    let ty = match &sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            errors.error(
                sig.paren_token.span.close(),
                format!(
                    "an #[in_namespace] fn must return `Result<T, E>` with `E: From<nsguard::Error>`, \
                     so that namespace errors can be returned: write `fn {}(...) -> std::io::Result<()>`",
                    sig.ident
                ),
            );
            return None;
        }
    };
    // Whether `ty` is a `Result` (under any name: an alias works) whose
    // error type converts from nsguard's is left to the type checker: the
    // expansion needs `ty: __private::ReturnsResult`, whose message says
    // what to write.
    let has_impl = ty
        .to_token_stream()
        .into_iter()
        .any(|t| t.to_string() == "impl");
    Some(Return {
        closure_ty: (!has_impl).then(|| (**ty).clone()),
        span: ty.span(),
        is_async: sig.asyncness.is_some(),
    })
}
