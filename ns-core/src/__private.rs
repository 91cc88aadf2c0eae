//! The runtime of `#[in_namespace]`'s expansion. Not public API: the
//! generated code reaches it as `::nsguard::__private`, and it may change in
//! any release.

use std::ffi::{OsStr, OsString};
use std::ops::Deref;
use std::path::{Path, PathBuf};

pub use crate::error::Error;
use crate::error::Result;
pub use crate::executor::SetRef;
use crate::executor::{Executor, RunFuture};
use crate::handle::namespace::Namespace;
use crate::handle::set::NsSet;
pub use crate::kind::NsKind;

/// A namespace named by a macro argument: opened from a path, or borrowed.
pub enum Resolved<'a> {
    /// Opened from a path for this call.
    Owned(Namespace),
    /// A handle the caller passed.
    Borrowed(&'a Namespace),
}

impl Deref for Resolved<'_> {
    type Target = Namespace;

    fn deref(&self) -> &Namespace {
        match self {
            Resolved::Owned(ns) => ns,
            Resolved::Borrowed(ns) => ns,
        }
    }
}

/// A value that names a namespace of a given kind.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a namespace",
    label = "expected a path or a namespace handle",
    note = "a namespace is named by a path (`&str`, `String`, `&Path`, `PathBuf`, `&OsStr`) \
            or by a `nsguard::Namespace` / `&Namespace`; use `set = ...` for an `NsSet`"
)]
pub trait NsArg {
    /// The namespace of `kind` this value names.
    fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>>;
}

impl NsArg for Path {
    fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>> {
        Namespace::open(self, kind).map(Resolved::Owned)
    }
}

macro_rules! path_like {
    ($($t:ty),*) => {$(
        impl NsArg for $t {
            fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>> {
                Path::new(self).ns_for(kind)
            }
        }
    )*};
}
path_like!(str, String, PathBuf, OsStr, OsString);

impl NsArg for Namespace {
    fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>> {
        if self.kind() != kind {
            return Err(Error::WrongKind {
                path: self
                    .path()
                    .map_or_else(|| PathBuf::from(self.id().to_string()), Path::to_path_buf),
                expected: kind,
                found: self.kind(),
            });
        }
        Ok(Resolved::Borrowed(self))
    }
}

impl<T: NsArg + ?Sized> NsArg for &T {
    fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>> {
        (**self).ns_for(kind)
    }
}

impl<T: NsArg + ?Sized> NsArg for &mut T {
    fn ns_for(&self, kind: NsKind) -> Result<Resolved<'_>> {
        (**self).ns_for(kind)
    }
}

/// A value that is, or refers to, an [`NsSet`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `NsSet`",
    label = "`set = ...` takes an `NsSet` or `&NsSet`"
)]
pub trait AsNsSet {
    /// The set.
    fn as_ns_set(&self) -> &NsSet;
}

impl AsNsSet for NsSet {
    fn as_ns_set(&self) -> &NsSet {
        self
    }
}

impl<T: AsNsSet + ?Sized> AsNsSet for &T {
    fn as_ns_set(&self) -> &NsSet {
        (**self).as_ns_set()
    }
}

/// Runs `f` on the global executor inside `target`.
pub fn run<'a, R, F>(target: &SetRef<'a>, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'a,
    R: Send + 'a,
{
    Executor::global()?.run_target(target, f)
}

/// What an `#[in_namespace]` fn may return: a `Result`, under any name
/// (`std::io::Result<T>`, `anyhow::Result<T>`, an alias of the user's). The
/// type checker decides, not the spelling of the return type.
#[diagnostic::on_unimplemented(
    message = "an #[in_namespace] fn must return `Result<T, E>` with `E: From<nsguard::Error>`, \
               so that namespace errors can be returned; `{Self}` is not a `Result`",
    label = "not a `Result`",
    note = "write `std::io::Result<{Self}>`, `anyhow::Result<{Self}>`, or `Result<{Self}, E>` \
            with `E: From<nsguard::Error>`; aliases of `Result` work too"
)]
pub trait ReturnsResult {
    /// The `E` of `Result<T, E>`.
    type Error;
    /// `Err(err)`.
    fn from_error(err: Self::Error) -> Self;
}

impl<T, E> ReturnsResult for std::result::Result<T, E> {
    type Error = E;

    fn from_error(err: E) -> Self {
        Err(err)
    }
}

/// `Err(E::from(err))` as the function's return type `R`, inferred: the
/// return type must be a `Result` ([`ReturnsResult`]) whose error type
/// converts from nsguard's. A generic function, so that `E =
/// nsguard::Error` raises no lint in the user's crate.
pub fn into_error<R>(err: Error) -> R
where
    R: ReturnsResult,
    R::Error: FromNsError,
{
    R::from_error(FromNsError::from_ns_error(err))
}

/// `From<nsguard::Error>`, with a message for `#[in_namespace]` fns.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of an #[in_namespace] fn cannot hold a namespace error: \
               it needs `From<nsguard::Error>`",
    label = "`{Self}` needs `impl From<nsguard::Error>`",
    note = "implement `From<nsguard::Error> for {Self}`, or return `std::io::Result<T>` or \
            `anyhow::Result<T>`"
)]
pub trait FromNsError {
    /// `Self::from(err)`.
    fn from_ns_error(err: Error) -> Self;
}

impl<E: From<Error>> FromNsError for E {
    fn from_ns_error(err: Error) -> E {
        E::from(err)
    }
}

/// Polls `fut` on workers inside `target`, one poll per handoff: the body of
/// an `#[in_namespace] async fn`. The `T` parameter types the body's async
/// block, so that `?` inside it infers its error type.
pub fn run_future<'a, T, F>(
    target: &SetRef<'a>,
    fut: F,
) -> impl std::future::Future<Output = Result<T>> + 'a
where
    F: std::future::Future<Output = T> + Send + 'a,
    T: Send + 'a,
{
    RunFuture::new(None, *target, fut)
}
