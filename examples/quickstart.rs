//! nsguard in one minute: make a private network namespace, switch this
//! thread into it with a guard, list the interfaces seen inside and
//! outside, and switch back.
//!
//! Needs CAP_SYS_ADMIN: run as root, or in a user namespace of its own:
//!
//! ```text
//! cargo run --example quickstart
//! unshare -Urn cargo run --example quickstart
//! ```
//!
//! Nothing is mounted or left behind: the namespace lives only as long as
//! the handle to it.

use std::process::ExitCode;

use nix::errno::Errno;
use nsguard::{Error, Namespace, NsKind, NsSet};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quickstart: {err}");
            if is_permission_problem(&*err) {
                eprintln!(
                    "\nquickstart needs CAP_SYS_ADMIN to create and enter a network namespace.\n\
                     Run it as root:\n    sudo cargo run --example quickstart\n\
                     or in a user namespace of its own:\n    unshare -Urn cargo run --example quickstart"
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), BoxError> {
    let private = new_network_namespace()?;
    let host = Namespace::current(NsKind::Net)?;
    println!("this thread is in {}; created {}", host.id(), private.id());

    let outside = interfaces()?;
    let inside = {
        let guard = NsSet::from(private.try_clone()?).enter()?;
        let now = Namespace::current(NsKind::Net)?;
        println!("entered {} (switched: {})", now.id(), guard.switched());
        assert_eq!(now, private);
        let inside = interfaces()?;
        guard.restore()?;
        inside
    };
    let back = Namespace::current(NsKind::Net)?;
    println!("restored to {}\n", back.id());
    assert_eq!(back, host);

    println!(
        "{:<24} {:<24}",
        format!("outside {}", host.id()),
        format!("inside {}", private.id())
    );
    for row in 0..outside.len().max(inside.len()) {
        let cell = |list: &[String]| list.get(row).cloned().unwrap_or_default();
        println!("{:<24} {:<24}", cell(&outside), cell(&inside));
    }
    Ok(())
}

/// A new network namespace, created without switching this thread, and
/// held by an fd only.
fn new_network_namespace() -> Result<Namespace, BoxError> {
    let set = NsSet::unshare(NsKind::Net)?;
    Ok(set
        .get(NsKind::Net)
        .ok_or("no netns was created")?
        .try_clone()?)
}

/// The interfaces of the calling thread's network namespace (netlink follows
/// the thread, unlike /sys/class/net).
fn interfaces() -> Result<Vec<String>, Errno> {
    let list = nix::net::if_::if_nameindex()?;
    Ok(list
        .iter()
        .map(|i| i.name().to_string_lossy().into_owned())
        .collect())
}

fn is_permission_problem(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        err.downcast_ref::<Error>(),
        Some(Error::PermissionDenied { .. })
    )
}
