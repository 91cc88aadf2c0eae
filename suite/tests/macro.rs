//! `#[in_namespace]` on the forms it accepts, against real namespaces.

use std::path::{Path, PathBuf};

use nsguard::{in_namespace, Namespace, NsKind, NsSet};
use nsguard_suite::{main_thread_ino, thread_ino, tid, TempNs};

#[in_namespace(net = path)]
fn net_ino_at(path: &Path) -> std::io::Result<(u64, i32)> {
    Ok((thread_ino(NsKind::Net), tid()))
}

#[test]
fn a_path_argument_names_the_namespace() {
    let temp = TempNs::new(NsKind::Net);
    let (ino, worker) = net_ino_at(temp.path()).unwrap();
    assert_eq!(ino, temp.ino());
    assert_ne!(worker, tid());
    assert_eq!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
}

#[in_namespace(net = format!("{dir}/net"), uts = uts, ipc = &ipc)]
fn three_kinds(dir: String, uts: &Namespace, ipc: PathBuf) -> std::io::Result<[u64; 3]> {
    Ok([
        thread_ino(NsKind::Net),
        thread_ino(NsKind::Uts),
        thread_ino(NsKind::Ipc),
    ])
}

#[test]
fn values_are_expressions_over_the_arguments() {
    let (net, uts, ipc) = (
        TempNs::new(NsKind::Net),
        TempNs::new(NsKind::Uts),
        TempNs::new(NsKind::Ipc),
    );
    let dir = net.path().parent().unwrap().display().to_string();
    let uts_ns = Namespace::open(uts.path(), NsKind::Uts).unwrap();
    let seen = three_kinds(dir, &uts_ns, ipc.path().to_path_buf()).unwrap();
    assert_eq!(seen, [net.ino(), uts.ino(), ipc.ino()]);
}

#[in_namespace(set = set, uts = uts_path)]
fn with_a_set(set: &NsSet, uts_path: &str) -> std::io::Result<(u64, u64)> {
    Ok((thread_ino(NsKind::Net), thread_ino(NsKind::Uts)))
}

#[test]
fn a_set_with_an_overriding_key() {
    let (net, uts_a, uts_b) = (
        TempNs::new(NsKind::Net),
        TempNs::new(NsKind::Uts),
        TempNs::new(NsKind::Uts),
    );
    let set = NsSet::new()
        .with(Namespace::open(net.path(), NsKind::Net).unwrap())
        .with(Namespace::open(uts_a.path(), NsKind::Uts).unwrap());
    let seen = with_a_set(&set, uts_b.path().to_str().unwrap()).unwrap();
    assert_eq!(
        seen,
        (net.ino(), uts_b.ino()),
        "the key overrides the set's uts"
    );
}

struct Device {
    netns: Namespace,
    calls: u32,
}

impl Device {
    /// Docs and other attributes stay on the function.
    #[in_namespace(net = &self.netns)]
    #[inline]
    pub fn read(&self) -> std::io::Result<u64> {
        Ok(thread_ino(NsKind::Net))
    }

    #[in_namespace(net = self.netns.try_clone()?)]
    fn bump(&mut self, by: u32) -> std::io::Result<u32> {
        self.calls += by;
        assert_ne!(thread_ino(NsKind::Net), main_thread_ino(NsKind::Net));
        Ok(self.calls)
    }
}

#[test]
fn methods_with_self_and_mut_self() {
    let temp = TempNs::new(NsKind::Net);
    let mut dev = Device {
        netns: Namespace::open(temp.path(), NsKind::Net).unwrap(),
        calls: 0,
    };
    assert_eq!(dev.read().unwrap(), temp.ino());
    assert_eq!(dev.bump(2).unwrap(), 2);
    assert_eq!(dev.bump(3).unwrap(), 5);
    assert_eq!(dev.calls, 5);
}

#[in_namespace(uts = ns)]
fn generic<T, U: AsRef<str> + Send>(
    ns: &Namespace,
    items: Vec<T>,
    tag: U,
    extra: impl Into<u64> + Send,
) -> std::io::Result<String>
where
    T: std::fmt::Debug + Send,
{
    Ok(format!(
        "{}:{:?}:{}:{}",
        tag.as_ref(),
        items,
        extra.into(),
        thread_ino(NsKind::Uts)
    ))
}

#[test]
fn generics_where_clauses_and_impl_trait_arguments() {
    let temp = TempNs::new(NsKind::Uts);
    let ns = Namespace::open(temp.path(), NsKind::Uts).unwrap();
    let out = generic(&ns, vec![1, 2], "t", 7_u8).unwrap();
    assert_eq!(out, format!("t:[1, 2]:7:{}", temp.ino()));
}

/// # Safety
///
/// `addr` must be the address of a live `u8`.
#[in_namespace(ipc = path)]
unsafe fn read_raw(path: &Path, addr: usize) -> std::io::Result<(u8, u64)> {
    // SAFETY: the caller promises `addr` is valid for reads, and blocks
    // until the body has returned.
    Ok((unsafe { *(addr as *const u8) }, thread_ino(NsKind::Ipc)))
}

#[test]
fn unsafe_fns() {
    let temp = TempNs::new(NsKind::Ipc);
    let byte = 42_u8;
    // SAFETY: `byte` lives across the call.
    let out = unsafe { read_raw(temp.path(), &byte as *const u8 as usize) }.unwrap();
    assert_eq!(out, (42, temp.ino()));
}

#[derive(Debug)]
enum AppError {
    Ns(nsguard::Error),
    App(&'static str),
}

impl From<nsguard::Error> for AppError {
    fn from(e: nsguard::Error) -> Self {
        AppError::Ns(e)
    }
}

#[in_namespace(net = path)]
fn fallible(path: &Path, fail: bool) -> Result<u64, AppError> {
    if fail {
        return Err(AppError::App("the body failed"));
    }
    Ok(thread_ino(NsKind::Net))
}

#[test]
fn errors_flow_through_the_functions_error_type() {
    let temp = TempNs::new(NsKind::Net);
    assert_eq!(fallible(temp.path(), false).unwrap(), temp.ino());
    assert!(matches!(
        fallible(temp.path(), true),
        Err(AppError::App("the body failed"))
    ));
    let missing = temp.path().with_file_name("missing");
    match fallible(&missing, false) {
        Err(AppError::Ns(nsguard::Error::NotFound { path, .. })) => assert_eq!(path, missing),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let err = net_ino_at(Path::new("/etc/hostname")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("not a namespace"), "{err}");
    let uts = TempNs::new(NsKind::Uts);
    match fallible(uts.path(), false) {
        Err(AppError::Ns(nsguard::Error::WrongKind {
            expected: NsKind::Net,
            found: NsKind::Uts,
            ..
        })) => {}
        other => panic!("expected WrongKind, got {other:?}"),
    }
}

#[in_namespace(net = path)]
fn panics(path: &Path) -> std::io::Result<()> {
    panic!("from the body")
}

#[test]
fn a_panic_reaches_the_caller_and_later_calls_work() {
    let temp = TempNs::new(NsKind::Net);
    let panic = std::panic::catch_unwind(|| panics(temp.path())).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"from the body"));
    assert_eq!(net_ino_at(temp.path()).unwrap().0, temp.ino());
}

#[in_namespace(net = outer)]
fn nested(outer: &Path, inner: &Path) -> std::io::Result<(u64, u64, u64)> {
    let here = thread_ino(NsKind::Net);
    let (same, _) = net_ino_at(outer)?;
    let (other, _) = net_ino_at(inner)?;
    Ok((here, same, other))
}

#[test]
fn nested_calls() {
    let (a, b) = (TempNs::new(NsKind::Net), TempNs::new(NsKind::Net));
    assert_eq!(
        nested(a.path(), b.path()).unwrap(),
        (a.ino(), a.ino(), b.ino())
    );
}

mod renamed {
    use ::nsguard as ng;

    #[ng::in_namespace(crate = "ng", net = path)]
    pub fn through_rename(path: &std::path::Path) -> std::io::Result<u64> {
        Ok(super::thread_ino(ng::NsKind::Net))
    }
}

#[test]
fn the_crate_path_can_be_overridden() {
    let temp = TempNs::new(NsKind::Net);
    assert_eq!(renamed::through_rename(temp.path()).unwrap(), temp.ino());
}

/// The expansion must not depend on names the user's module may shadow.
#[allow(dead_code, non_camel_case_types)]
mod shadowing {
    mod core {}
    mod std {}
    mod nsguard {}
    struct From;
    struct Ok;
    struct Err;
    struct __private;
    struct value;
    struct err;

    #[::nsguard::in_namespace(net = path)]
    pub fn absolute(path: &::std::path::Path) -> ::std::io::Result<u64> {
        ::std::io::Result::Ok(super::thread_ino(::nsguard::NsKind::Net))
    }
}

#[test]
fn the_expansion_uses_absolute_paths() {
    let temp = TempNs::new(NsKind::Net);
    assert_eq!(shadowing::absolute(temp.path()).unwrap(), temp.ino());
}

/// nsguard's own `Result`: no conversion lint fires in the user's crate
/// (this file is linted by clippy with -D warnings).
#[in_namespace(net = path)]
fn own_result(path: &Path) -> nsguard::Result<u64> {
    Ok(thread_ino(NsKind::Net))
}

#[test]
fn nsguards_own_result_type() {
    let temp = TempNs::new(NsKind::Net);
    assert_eq!(own_result(temp.path()).unwrap(), temp.ino());
    assert!(matches!(
        own_result(Path::new("/nonexistent")),
        Err(nsguard::Error::NotFound { .. })
    ));
}

#[in_namespace(uts = path)]
fn with_anyhow(path: &Path) -> anyhow::Result<u64> {
    Ok(thread_ino(NsKind::Uts))
}

#[test]
fn anyhow_result_works() {
    let temp = TempNs::new(NsKind::Uts);
    assert_eq!(with_anyhow(temp.path()).unwrap(), temp.ino());
    let err = with_anyhow(Path::new("/nonexistent")).unwrap_err();
    assert!(matches!(
        err.downcast_ref::<nsguard::Error>(),
        Some(nsguard::Error::NotFound { .. })
    ));
}
