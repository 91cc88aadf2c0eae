//! The guard: switch THIS thread into namespaces for a scope, nest guards,
//! and see the compiler stop a guard from leaving its thread.
//!
//! ```text
//! cargo run --example scoped_guard
//! ```

mod common;

use std::process::ExitCode;

use nsguard::{Namespace, NsKind, NsSet};

fn show(label: &str) -> nsguard::Result<()> {
    let net = Namespace::current(NsKind::Net)?;
    let interfaces = common::interfaces().unwrap_or_default().len();
    println!("{label:<28} {}  ({interfaces} interfaces)", net.id());
    Ok(())
}

fn main() -> ExitCode {
    common::main("scoped_guard", || {
        // Two network namespaces. (Net, because a guard must be able to
        // switch back: under `unshare -Urn` the host's uts namespace belongs
        // to a user namespace this process has no power in, so a guard that
        // would leave it is refused before it switches anything.)
        let outer = NsSet::unshare(NsKind::Net)?;
        let inner = NsSet::unshare(NsKind::Net)?;

        show("before")?;
        {
            let _outer = outer.enter()?; // this thread is in `outer` until the end of the scope
            show("in the outer guard")?;
            {
                let guard = inner.enter()?; // nested: another netns
                show("in the inner guard")?;
                guard.restore()?; // or just let it drop; restore() returns errors as values
            }
            show("back in the outer guard")?;
        }
        show("after")?;

        // A guard cannot leave its thread. This does not compile:
        //
        //     let guard = outer.enter()?;
        //     std::thread::spawn(move || drop(guard));
        //
        // error[E0277]: `*const ()` cannot be sent between threads safely
        //   |     std::thread::spawn(move || drop(guard));
        //   |     ------------------ ^^^^^^^^^^^^^^^^^^^ `*const ()` cannot be sent between threads safely
        //   = note: required because it appears within the type `NsGuard`
        //
        // and a future holding one across `.await` is not `Send` either, so
        // tokio::spawn refuses it: "future cannot be sent between threads
        // safely ... has type `NsGuard` which is not `Send`".
        println!("\nguards restored in order; this thread is where it started");
        Ok(())
    })
}
