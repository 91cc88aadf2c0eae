//! Processes inside a set: `ip addr` and `hostname` run in new network and
//! UTS namespaces.
//!
//! ```text
//! cargo run --example spawn_in_ns
//! ```

mod common;

use std::process::{Command, ExitCode};

use nsguard::{CommandExt, NsKind, NsSet};

fn run(cmd: &mut Command, set: &NsSet) -> Result<String, common::BoxError> {
    let out = cmd.spawn_in(set)?.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", out.status).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() -> ExitCode {
    common::main("spawn_in_ns", || {
        let set = NsSet::unshare(NsKind::Net | NsKind::Uts)?;
        set.run(|| nix::unistd::sethostname("inside-the-set"))??;
        for ns in &set {
            println!("created {}", ns.id());
        }
        let mut ip = Command::new("ip");
        ip.arg("addr");
        let mut hostname = Command::new("hostname");
        for cmd in [&mut ip, &mut hostname] {
            cmd.stdout(std::process::Stdio::piped());
            println!("\n$ {cmd:?}   (inside)");
            print!("{}", run(cmd, &set)?);
        }
        println!("\n$ hostname   (outside)");
        print!(
            "{}",
            String::from_utf8_lossy(&Command::new("hostname").output()?.stdout)
        );
        Ok(())
    })
}
