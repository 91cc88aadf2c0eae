//! Parsing `#[in_namespace(key = value, ...)]` into raw key/value pairs.
//! Nothing is judged here; `validate` does that, with every error at once.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, Token};

/// Every accepted key, for the messages of the parser and of `validate`.
pub(crate) const VALID_KEYS: &str =
    "expected one of: net, mnt, uts, ipc, pid, cgroup (each `= path or Namespace`), \
     set (`= &NsSet`), crate (`= \"path::to::nsguard\"`)";

/// One `key = value` (the value may be missing: `net` or `net =`).
pub(crate) struct Arg {
    pub(crate) key: Ident,
    pub(crate) eq: Option<Token![=]>,
    pub(crate) value: Option<Expr>,
}

/// Every argument, in order.
pub(crate) struct Args(pub(crate) Vec<Arg>);

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Args> {
        let mut args = Vec::new();
        while !input.is_empty() {
            // `crate` is a keyword; accept it as a key like any identifier.
            let key = Ident::parse_any(input).map_err(|e| {
                syn::Error::new(e.span(), format!("expected `key = value`, {VALID_KEYS}"))
            })?;
            let eq: Option<Token![=]> = input.parse()?;
            let value = if eq.is_some() && !input.is_empty() && !input.peek(Token![,]) {
                Some(input.parse::<Expr>()?)
            } else {
                None
            };
            args.push(Arg { key, eq, value });
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Args(args))
    }
}
