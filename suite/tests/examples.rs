//! Every example runs, prints what it promises, and, without privilege,
//! says what is missing and how to run it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const EXAMPLES: [&str; 9] = [
    "async_netns",
    "async_http_in_netns",
    "quickstart",
    "scoped_guard",
    "mount_ns",
    "spawn_in_ns",
    "bridge_ps",
    "http_in_netns",
    "cni",
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

/// Runs `cmd` with its output captured, under [`watchdog`]. Returns its
/// pid (for the names it made) and its output, `None` if it was killed.
fn run_with_watchdog(mut cmd: Command, limit: Duration) -> (u32, Option<Output>) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    (pid, watchdog(child, limit))
}

/// Waits for `child` and its output; if it has not ended after `limit`,
/// interrupts it (an example then removes what it made), and kills it 10 s
/// later. `None` if it had to be interrupted.
fn watchdog(child: std::process::Child, limit: Duration) -> Option<Output> {
    use nix::sys::signal::{kill, Signal};
    // Not reaped before the waiter returns: the pid stays the child's.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => Some(out.unwrap()),
        Err(_) => {
            let _ = kill(pid, Signal::SIGINT);
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                let _ = kill(pid, Signal::SIGKILL);
            }
            None
        }
    };
    waiter.join().unwrap();
    out
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
    let mut cmd = Command::new(example("bridge_ps"));
    cmd.env("BRIDGE_PS_CONTAINERS", "4")
        .env("BRIDGE_PS_FAIL_AT", "2");
    // A watchdog: the example used to hang here for ever.
    let (pid, out) = run_with_watchdog(cmd, Duration::from_secs(60));
    let bridge = format!("nsgbr{}", pid % 1_000_000);
    let left_behind = Command::new("ip")
        .args(["link", "show", &bridge])
        .output()
        .is_ok_and(|o| o.status.success());
    if left_behind {
        let _ = Command::new("ip")
            .args(["link", "delete", &bridge])
            .status();
    }
    let out = out.expect("bridge_ps hung after a lister failed (killed after 60 s)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
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
    assert!(
        stdout.contains("client by name    -> 200 OK hello from inside namespace A"),
        "{stdout}"
    );
    assert!(stdout.contains("threads left in A -> 0"), "{stdout}");
    assert!(stdout.contains("from the host      -> fails"), "{stdout}");
}

/// The names of the CNI-style example run as `pid` left in /run/netns and
/// among the host's links.
fn cni_leftovers(pid: u32) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.ends_with(&format!("-cni-{pid}")))
                .map(|name| format!("/run/netns/{name}"))
                .collect()
        })
        .unwrap_or_default();
    let links = [format!("cnih{pid}"), format!("cnic{pid}")];
    left.extend(
        nix::net::if_::if_nameindex()
            .unwrap()
            .iter()
            .map(|i| i.name().to_string_lossy().into_owned())
            .filter(|name| links.contains(name))
            .map(|name| format!("link {name}")),
    );
    left
}

/// The CNI-style example: on every cycle, with both libraries, the host
/// reaches the address made inside over rtnetlink; nothing of its names is
/// left in /run/netns or among the host's links, checked here too.
#[test]
fn cni_adds_and_deletes_with_rtnetlink_and_leaves_nothing() {
    let (pid, out) = run_with_watchdog(Command::new(example("cni")), Duration::from_secs(120));
    let left = cni_leftovers(pid);
    let out = out.expect("cni hung (interrupted after 120 s)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cni: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(left.is_empty(), "left behind: {left:?}");
    if let Some(skipped) = stdout.lines().find(|l| l.starts_with("skipped: ")) {
        eprintln!("{skipped}");
        return;
    }
    for library in ["nsguard ", "netns-rs "] {
        let lines = || stdout.lines().filter(|l| l.starts_with(library));
        let reached = lines()
            .filter(|l| l.contains(": ADD ") && l.contains(", the host reached "))
            .count();
        assert_eq!(reached, 3, "{library}: {stdout}");
        assert!(
            lines().any(|l| l.contains(" per ADD/DEL cycle ")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("\nDEL left nothing: "), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// Ctrl-C in the middle of the cycles: the example ends with 130 and
/// leaves nothing behind.
#[test]
fn cni_interrupted_leaves_nothing() {
    use std::io::BufRead;
    let mut child = Command::new(example("cni"))
        .env("CNI_CYCLES", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Read on until a cycle is done: the next is under way. The reader
    // lives until the example ends, so that its prints never fail.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(": ADD ") && stdout.read_line(&mut seen).unwrap() > 0 {}
    let skipped = seen.contains("skipped: ");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = watchdog(child, Duration::from_secs(60));
    drop(stdout);
    let left = cni_leftovers(pid);
    let out = out.expect("cni did not end after Ctrl-C");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(left.is_empty(), "left behind: {left:?}\n{seen}\n{stderr}");
    if skipped {
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{seen}\n{stderr}");
    assert!(stderr.contains("cni: interrupted by Ctrl-C"), "{stderr}");
}
