//! Every example runs, prints what it promises, and, without privilege,
//! says what is missing and how to run it.

use std::path::PathBuf;
use std::process::{Command, Output};

const EXAMPLES: [&str; 8] = [
    "async_netns",
    "async_http_in_netns",
    "quickstart",
    "scoped_guard",
    "mount_ns",
    "spawn_in_ns",
    "bridge_ps",
    "http_in_netns",
];

/// The examples of the `nsguard` package itself (light: nothing beyond
/// nsguard and nix); the others belong to `nsguard-suite`.
const ROOT_EXAMPLES: [&str; 4] = ["quickstart", "scoped_guard", "mount_ns", "spawn_in_ns"];

/// The command that runs an example from the workspace root.
fn run_command(name: &str) -> String {
    if ROOT_EXAMPLES.contains(&name) {
        format!("cargo run --example {name}")
    } else {
        format!("cargo run -p nsguard-suite --example {name}")
    }
}

/// `cargo test --workspace` builds the examples of both packages next to
/// the test binaries.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{path:?} is missing: run the tests with `cargo test --workspace`, which builds \
         the examples of both packages"
    );
    path
}

fn run(name: &str) -> (Output, String, String) {
    let out = Command::new(example(name)).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{name}: {}\n{stdout}\n{stderr}",
        out.status
    );
    (out, stdout, stderr)
}

#[test]
fn quickstart_shows_the_interfaces_inside_and_outside() {
    let (_, stdout, _) = run("quickstart");
    assert!(
        stdout.contains("ran interfaces_in() on a worker inside net:["),
        "{stdout}"
    );
    let first_row = stdout
        .lines()
        .skip_while(|l| !l.starts_with("outside"))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(
        first_row.split_whitespace().collect::<Vec<_>>(),
        ["lo", "lo"],
        "{stdout}"
    );
}

#[test]
fn scoped_guard_nests_and_restores() {
    let (_, stdout, _) = run("scoped_guard");
    // The namespace on each line, not its interface count: tests running
    // meanwhile (bridge_ps) add and remove interfaces in the host's.
    let ids = |label: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l[label.len()..].split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(ids("before"), ids("after"), "{stdout}");
    assert_eq!(
        ids("in the outer guard"),
        ids("back in the outer guard"),
        "{stdout}"
    );
    let inner = ids("in the inner guard").unwrap();
    assert_ne!(Some(&inner), ids("in the outer guard").as_ref(), "{stdout}");
    assert_ne!(Some(&inner), ids("before").as_ref(), "{stdout}");
}

#[test]
fn mount_ns_shows_the_tmpfs_inside_only() {
    let (_, stdout, _) = run("mount_ns");
    assert!(
        stdout.contains("inside : written inside the mount namespace"),
        "{stdout}"
    );
    assert!(stdout.contains("outside: <No such file"), "{stdout}");
}

#[test]
fn spawn_in_ns_runs_ip_and_hostname_inside() {
    let (_, stdout, _) = run("spawn_in_ns");
    assert!(stdout.contains("inside-the-set"), "{stdout}");
    assert!(
        stdout.contains("1: lo:") && !stdout.contains("eth0"),
        "{stdout}"
    );
}

#[test]
fn bridge_ps_never_loses_the_bridge() {
    let (_, stdout, _) = run("bridge_ps");
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "none failed", "{stdout}");
    let summary = stdout.lines().rev().nth(1).unwrap_or_default();
    assert!(
        summary.starts_with("1000 namespace calls") && summary.ends_with(", 0 failed"),
        "{summary}"
    );
}

#[test]
fn bridge_ps_ends_and_cleans_up_when_a_lister_fails() {
    let mut child = Command::new(example("bridge_ps"))
        .env("BRIDGE_PS_CONTAINERS", "4")
        .env("BRIDGE_PS_FAIL_AT", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bridge = format!("nsgbr{}", child.id() % 1_000_000);
    let bridge_exists = || {
        Command::new("ip")
            .args(["link", "show", &bridge])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // A watchdog: the example used to hang here for ever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let left_behind = bridge_exists();
    if left_behind {
        let _ = Command::new("ip")
            .args(["link", "delete", &bridge])
            .status();
    }
    let status = status.expect("bridge_ps hung after a lister failed (killed after 60 s)");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("bridge-ps-absent"), "{stderr}");
    assert!(!left_behind, "bridge {bridge} was left behind");
}

#[test]
fn http_in_netns_reaches_the_server_only_from_inside() {
    let (_, stdout, _) = run("http_in_netns");
    assert!(
        stdout.contains("dialled inside A  -> hello from inside namespace A"),
        "{stdout}"
    );
    assert!(
        stdout.contains("client by name    -> 200 OK hello from inside namespace A"),
        "{stdout}"
    );
    assert!(stdout.contains("threads left in A -> 0"), "{stdout}");
    assert!(stdout.contains("from the host      -> fails"), "{stdout}");
}

/// A program that cannot be started: the example says which, and why (the
/// io::Error that nsguard::Error::Spawn carries as its source).
#[test]
fn a_program_that_cannot_start_is_named_with_the_cause() {
    let out = Command::new(example("spawn_in_ns"))
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("spawn_in_ns: spawning `ip` failed: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn without_cap_sys_admin_every_example_says_how_to_run_it() {
    for name in EXAMPLES {
        let out = Command::new("setpriv")
            .args(["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"])
            .arg(example(name))
            .output()
            .expect("setpriv (util-linux)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("CAP_SYS_ADMIN")
                && stderr.contains(&format!("unshare -Urn {}", run_command(name))),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn async_netns_serves_inside_only() {
    let (_, stdout, _) = run("async_netns");
    assert!(
        stdout.contains("client inside A  -> pong to 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("client on the host -> fails"), "{stdout}");
    assert!(
        stdout.contains("interfaces inside A (run_async): lo"),
        "{stdout}"
    );
}

#[test]
fn async_http_in_netns_serves_inside_only() {
    let (_, stdout, _) = run("async_http_in_netns");
    assert!(
        stdout.contains("dialled inside A  -> 200 OK hello from inside namespace A"),
        "{stdout}"
    );
    assert!(stdout.contains("from the host      -> fails"), "{stdout}");
}
