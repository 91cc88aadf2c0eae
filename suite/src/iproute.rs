//! iproute2 (`ip`), what nsguard must interoperate with and what tests
//! set up links with.

use std::process::Command;

use nsguard::{CommandExt, NsSet};

/// Runs `ip` (iproute2) and returns its output.
///
/// # Panics
///
/// If `ip` cannot be run or fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Brings loopback up in the network namespace of `set` (a new network
/// namespace has `lo` down) with `ip link set lo up`, spawned into `set`.
///
/// # Panics
///
/// If `ip` cannot be spawned into `set` or fails.
pub fn lo_up(set: &NsSet) {
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .spawn_in(set)
        .unwrap()
        .wait()
        .unwrap();
    assert!(status.success());
}
