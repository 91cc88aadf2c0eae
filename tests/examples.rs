//! The examples run, and say what they need when they lack privilege.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path: PathBuf = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{path:?} is missing: run the tests with `cargo test`, which builds the examples"
    );
    Command::new(path)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn quickstart_shows_the_interfaces_inside_and_outside() {
    let out = example("quickstart").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains("entered net:[") && stdout.contains("restored to net:["),
        "{stdout}"
    );
    let table = stdout
        .lines()
        .skip_while(|l| !l.starts_with("outside"))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(
        table.split_whitespace().collect::<Vec<_>>(),
        ["lo", "lo"],
        "{stdout}"
    );
}

#[test]
fn quickstart_without_cap_sys_admin_says_how_to_run_it() {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"]);
    cmd.arg(example("quickstart").get_program());
    let out = cmd.output().expect("setpriv (util-linux)");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("CAP_SYS_ADMIN") && stderr.contains("unshare -Urn"),
        "{stderr}"
    );
}
