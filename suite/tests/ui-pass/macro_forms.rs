// Every accepted form compiles (they are not called: no privilege needed).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use nsguard::{in_namespace, Namespace, NsSet};

#[in_namespace(net = "/run/netns/blue")]
pub fn literal() -> std::io::Result<()> {
    Ok(())
}

#[in_namespace(net = a, uts = b, ipc = c, pid = d, cgroup = e, mnt = f)]
pub(crate) fn every_value_type(
    a: &str,
    b: String,
    c: &Path,
    d: PathBuf,
    e: Namespace,
    f: &Namespace,
) -> std::io::Result<()> {
    Ok(())
}

#[in_namespace(set = set)]
fn by_set(set: &NsSet) -> Result<u8, nsguard::Error> {
    Ok(1)
}

#[in_namespace(set = owned_set, net = "/run/netns/x")]
fn owned_set_and_override(owned_set: NsSet) -> std::io::Result<()> {
    Ok(())
}

/// An alias of `Result`, with an error type of the application's: the type
/// checker accepts it, whatever it is called.
#[derive(Debug)]
pub struct AppError(nsguard::Error);

impl From<nsguard::Error> for AppError {
    fn from(err: nsguard::Error) -> AppError {
        AppError(err)
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[in_namespace(net = "/run/netns/blue")]
fn alias_of_result() -> AppResult<()> {
    Ok(())
}

/// An alias with both parameters fixed, and an async body.
type Hostname = Result<String, AppError>;

#[in_namespace(net = path)]
async fn async_alias(path: &Path) -> Hostname {
    Ok(String::new())
}

/// Returns an iterator: the closure cannot name `impl Trait`.
#[in_namespace(net = "/run/netns/blue")]
fn returns_impl() -> std::io::Result<impl Iterator<Item = u8>> {
    Ok(vec![1_u8].into_iter())
}

/// async: the body's future is polled inside, one poll per handoff.
#[in_namespace(net = path)]
async fn async_body(path: &Path, n: u8) -> std::io::Result<u8> {
    let x: u8 = "1".parse().map_err(std::io::Error::other)?;
    Ok(x + n)
}

struct S {
    ns: Namespace,
}

impl S {
    #[in_namespace(net = &self.ns)]
    fn by_ref(&self) -> std::io::Result<()> {
        Ok(())
    }

    #[in_namespace(net = "/run/netns/blue")]
    fn by_mut(&mut self, x: u8) -> std::io::Result<u8> {
        Ok(x)
    }

    #[in_namespace(net = "/run/netns/blue")]
    fn by_value(self) -> std::io::Result<Namespace> {
        Ok(self.ns)
    }
}

fn main() {}
