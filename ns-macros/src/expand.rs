//! Generating the rewritten function.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::validate::{Config, Return};

/// The function with its body moved into a closure that runs on a worker
/// inside the namespaces:
///
/// ```text
/// fn f(args) -> Result<T, E> {
///     let __target = SetRef::from_set(set).with(&NsArg::ns_for(&(net_expr), NsKind::Net)?)...;
///     match __private::run(&__target, move || -> Result<T, E> { body }) {
///         Ok(value) => value,
///         // `Err(E::from(err))`; the type checker makes sure that the
///         // return type is a `Result` whose `E: From<nsguard::Error>`.
///         Err(err) => __private::into_error(err),
///     }
/// }
/// ```
pub(crate) fn expand(item: ItemFn, config: Config, ret: Return) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        // `default fn` and the like exist only on associated fns; syn
        // prints none for an item fn either.
        modifiers: _,
        sig,
        block,
    } = item;
    let krate = &config.krate;
    let private = quote!(#krate::__private);
    // Generated names are hygienic: invisible to the user's code, and the
    // user's names cannot capture them.
    let hygienic =
        |name: &str, at: Span| format_ident!("{}", name, span = Span::mixed_site().located_at(at));
    let site = Span::call_site();
    let target = hygienic("__nsguard_target", site);
    let outcome = hygienic("__nsguard_outcome", site);
    let label = syn::Lifetime::new("'__nsguard", Span::mixed_site());

    let mut resolve = Vec::new();
    let mut with = Vec::new();
    for (i, (variant, value)) in config.kinds.iter().enumerate() {
        // Located at the user's value, so that errors about it point there.
        let at = value.span();
        let val = hygienic(&format!("__nsguard_value{i}"), at);
        let local = hygienic(&format!("__nsguard_ns{i}"), at);
        let found = hygienic("__nsguard_found", at);
        let e = hygienic("__nsguard_e", at);
        // `let x = &(expr);` keeps a temporary alive for the whole call and
        // borrows an argument without moving it.
        resolve.push(quote_spanned! {at=>
            let #val = &(#value);
            let #local = match #private::NsArg::ns_for(#val, #private::NsKind::#variant) {
                ::core::result::Result::Ok(#found) => #found,
                ::core::result::Result::Err(#e) => break #label ::core::result::Result::Err(#e),
            };
        });
        with.push(quote!(.with(&*#local)));
    }
    let start = match &config.set {
        Some(set) => {
            let set_value = hygienic("__nsguard_set", set.span());
            resolve.push(quote_spanned! {set.span()=> let #set_value = &(#set); });
            quote_spanned! {set.span()=>
                #private::SetRef::from_set(#private::AsNsSet::as_ns_set(#set_value))
            }
        }
        None => quote!(#private::SetRef::new()),
    };
    let closure_ret = ret.closure_ty.as_ref().map(|ty| quote!(-> #ty));
    let body = quote_spanned! {block.span()=>
        move || #closure_ret #block
    };
    // async fn: the body's future is polled on workers inside, one poll
    // per handoff; naming the output types the block for `?`.
    let output = match &ret.closure_ty {
        Some(ty) => quote!(#ty),
        None => quote!(_),
    };
    let future = quote_spanned! {block.span()=> async move #block };
    // Spanned on the return type, parentheses included: a result that is
    // not `Send`, or an error type without `From<nsguard::Error>`, is
    // reported there. (An argument that is not `Send` is reported in the
    // body.)
    let run = if ret.is_async {
        let callee = respan(quote!(#private::run_future::<#output, _>), ret.span);
        let started = call(callee, quote!(&#target, #future), ret.span);
        quote!(#started.await)
    } else {
        call(
            respan(quote!(#private::run), ret.span),
            quote!(&#target, #body),
            ret.span,
        )
    };
    let value = hygienic("__nsguard_ok", site);
    let err = hygienic("__nsguard_err", ret.span);
    let convert = call(
        respan(quote!(#private::into_error), ret.span),
        quote!(#err),
        ret.span,
    );
    quote! {
        #(#attrs)*
        #vis #sig {
            let #outcome = #label: {
                #(#resolve)*
                let #target = #start #(#with)*;
                #run
            };
            match #outcome {
                ::core::result::Result::Ok(#value) => #value,
                ::core::result::Result::Err(#err) => #convert,
            }
        }
    }
}

/// `callee(args)`, with the parentheses spanned at `span`.
fn call(callee: TokenStream, args: TokenStream, span: Span) -> TokenStream {
    let mut group = proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, args);
    group.set_span(span);
    quote!(#callee #group)
}

/// `tokens` with every span replaced by `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}
