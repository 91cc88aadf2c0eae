//! What every example shares: running `main`, and saying what privilege is
//! missing when it is.
#![allow(dead_code)]

use std::process::ExitCode;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs an example's body; on error prints it with its causes (an
/// `nsguard::Error` that another error caused returns it from `source()`)
/// and, for a missing privilege, how to run the example; returns the exit
/// code.
pub fn main(name: &str, run: impl FnOnce() -> Result<(), BoxError>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut message = format!("{name}: {err}");
            let mut cause = err.source();
            while let Some(e) = cause {
                message = format!("{message}: {e}");
                cause = e.source();
            }
            eprintln!("{message}");
            if is_permission_problem(&*err) {
                let run = run_command(name);
                eprintln!(
                    "\n{name} needs CAP_SYS_ADMIN to create and enter namespaces.\n\
                     Run it as root:\n    sudo {run}\n\
                     or in a user namespace of its own:\n    unshare -Urn {run}"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// The command that runs the example from the workspace root: the light
/// examples belong to the `nsguard` package itself, the others (with heavy
/// dependencies: tokio, hyper, ureq) to the unpublished `nsguard-suite`.
pub fn run_command(name: &str) -> String {
    match env!("CARGO_PKG_NAME") {
        "nsguard" => format!("cargo run --example {name}"),
        package => format!("cargo run -p {package} --example {name}"),
    }
}

fn is_permission_problem(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(ns) = e.downcast_ref::<nsguard::Error>() {
            return matches!(ns, nsguard::Error::PermissionDenied { .. });
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// The interfaces of the calling thread's network namespace (netlink
/// follows the thread; /sys/class/net does not).
pub fn interfaces() -> nix::Result<Vec<String>> {
    Ok(nix::net::if_::if_nameindex()?
        .iter()
        .map(|i| i.name().to_string_lossy().into_owned())
        .collect())
}

/// Two columns, side by side.
pub fn side_by_side(left_title: &str, left: &[String], right_title: &str, right: &[String]) {
    println!("{left_title:<28} {right_title}");
    for row in 0..left.len().max(right.len()) {
        let cell = |list: &[String]| list.get(row).cloned().unwrap_or_default();
        println!("{:<28} {}", cell(left), cell(right));
    }
}
