//! The scenario that broke Weave Net ("Cannot find weave bridge: Link not
//! found"): a bridge on the host, 100 containers attached to it by veth
//! pairs, and several threads listing every container's addresses, ten
//! rounds, while another thread keeps looking the bridge up on the host.
//!
//! With Go's libraries, a goroutine switched into a container's netns could
//! leave its OS thread there, and host code later scheduled on that thread
//! failed to find the bridge. Here the bodies run on nsguard's workers and
//! no host thread is ever switched: every lookup must succeed, and every
//! container must show exactly its own address.
//!
//! ```text
//! cargo run -p nsguard-suite --example bridge_ps            # as root
//! BRIDGE_PS_CONTAINERS=20 cargo run -p nsguard-suite --example bridge_ps
//! BRIDGE_PS_FAIL_AT=3 cargo run -p nsguard-suite --example bridge_ps   # a lister fails at container 3
//! ```
//!
//! Everything is removed at the end, on error and on Ctrl-C: the containers'
//! namespaces (and their veths) die with their handles; the bridge is
//! deleted by a guard and by the Ctrl-C handler. An error in any thread
//! stops every other one first, so the example never hangs.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nsguard::{in_namespace, CommandExt, Namespace, NsKind, NsSet};

const THREADS: usize = 4;

/// What one container shows: its interfaces' IPv4 addresses.
type Addresses = Vec<(String, IpAddr)>;
/// One row of the final table: container index, netns id, addresses.
type Row = (usize, String, Addresses);
const ROUNDS: usize = 10;

/// The IPv4 addresses of the calling thread's network namespace, by
/// interface, from getifaddrs (netlink: it follows the thread).
#[in_namespace(net = netns)]
fn addresses_in(netns: &Namespace) -> std::io::Result<Addresses> {
    let addrs = nix::ifaddrs::getifaddrs()?;
    Ok(addrs
        .filter_map(|a| {
            let ip = a.address?.as_sockaddr_in()?.ip();
            Some((a.interface_name, IpAddr::V4(ip)))
        })
        .collect())
}

/// Sets the flag when dropped: on every way out of a scope, `?` and panics
/// included, so that threads polling it end and the scope can join them.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Deletes the bridge when dropped.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

fn ip_batch(commands: &str, set: Option<&NsSet>) -> Result<(), common::BoxError> {
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"]).stdin(Stdio::piped());
    let mut child = match set {
        Some(set) => cmd.spawn_in(set)?,
        None => cmd.spawn()?,
    };
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(commands.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("ip -batch failed ({status}) on:\n{commands}").into());
    }
    Ok(())
}

fn address_of(i: usize) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(
        10,
        213,
        (i / 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

fn main() -> ExitCode {
    common::main("bridge_ps", run)
}

fn run() -> Result<(), common::BoxError> {
    let count: usize = std::env::var("BRIDGE_PS_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // A container whose lister fails: to show that an error ends the run
    // cleanly (it asks for a network namespace name that does not exist).
    let fail_at: Option<usize> = std::env::var("BRIDGE_PS_FAIL_AT")
        .ok()
        .and_then(|v| v.parse().ok());
    let pid = std::process::id();
    let name = format!("nsgbr{}", pid % 1_000_000);

    // Make sure we may before touching the host.
    let containers: Vec<NsSet> = (0..count)
        .map(|_| NsSet::unshare(NsKind::Net))
        .collect::<Result<_, _>>()?;

    let added = Command::new("ip")
        .args(["link", "add", "name", &name, "type", "bridge"])
        .status()?;
    if !added.success() {
        return Err(format!("ip link add {name} type bridge: {added}").into());
    }
    let bridge = Bridge(name.clone());
    let on_ctrl_c = name.clone();
    ctrlc::set_handler(move || {
        let _ = Command::new("ip")
            .args(["link", "delete", &on_ctrl_c])
            .status();
        std::process::exit(130);
    })?;
    ip_batch(&format!("link set {name} up\n"), None)?;

    // Each container: eth0 with its address, the peer end on the host.
    let mut host_side = String::new();
    for (i, set) in containers.iter().enumerate() {
        let veth = format!("v{}x{i}", pid % 100_000);
        ip_batch(
            &format!(
                "link add eth0 type veth peer name {veth} netns {pid}\n\
                 addr add {}/16 dev eth0\nlink set eth0 up\nlink set lo up\n",
                address_of(i)
            ),
            Some(set),
        )?;
        host_side.push_str(&format!("link set {veth} master {name} up\n"));
    }
    ip_batch(&host_side, None)?;
    println!("bridge {name} on the host, {count} containers attached\n");

    let stop = AtomicBool::new(false);
    let (lookups, failures, calls, wrong) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let mut table: Vec<Option<(String, Addresses)>> = vec![None; count];
    std::thread::scope(|s| -> Result<(), common::BoxError> {
        // Stops the host thread however this scope is left.
        let _stop = StopOnDrop(&stop);
        // The host thread: the bridge must always be there.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                match nix::net::if_::if_nametoindex(name.as_str()) {
                    Ok(_) => lookups.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        let listers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (containers, calls, wrong) = (&containers, &calls, &wrong);
                s.spawn(move || -> std::io::Result<Vec<Row>> {
                    let mut last = Vec::new();
                    for round in 0..ROUNDS {
                        for i in (t..containers.len()).step_by(THREADS) {
                            let netns = containers[i].get(NsKind::Net).expect("a net namespace");
                            if fail_at == Some(i) {
                                Namespace::named(&format!("bridge-ps-absent-{pid}"))?;
                            }
                            let addrs = addresses_in(netns)?;
                            calls.fetch_add(1, Ordering::Relaxed);
                            let mine = addrs
                                .iter()
                                .any(|(ifname, ip)| ifname == "eth0" && *ip == address_of(i));
                            if !mine || addrs.len() != 2 {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                            if round == ROUNDS - 1 {
                                last.push((i, netns.id().to_string(), addrs));
                            }
                        }
                    }
                    Ok(last)
                })
            })
            .collect();
        // Every lister is joined before any error is returned.
        let results: Vec<_> = listers.into_iter().map(|l| l.join()).collect();
        for result in results {
            for (i, id, addrs) in result.map_err(|_| "a lister panicked")?? {
                table[i] = Some((id, addrs));
            }
        }
        Ok(())
    })?;

    println!("{:<10} {:<20} addresses", "container", "netns");
    for (i, row) in table.iter().enumerate() {
        if let Some((id, addrs)) = row {
            let shown: Vec<String> = addrs
                .iter()
                .map(|(ifname, ip)| format!("{ifname} {ip}"))
                .collect();
            println!("{:<10} {:<20} {}", format!("c{i}"), id, shown.join(", "));
        }
    }
    drop(containers);
    drop(bridge);

    let (lookups, failures) = (lookups.into_inner(), failures.into_inner());
    let (calls, wrong) = (calls.into_inner(), wrong.into_inner());
    println!(
        "\n{calls} namespace calls from {THREADS} threads ({ROUNDS} rounds), {wrong} saw wrong addresses; \
         {lookups} lookups of bridge {name} on the host, {failures} failed"
    );
    if failures > 0 || wrong > 0 {
        return Err("a host thread lost the bridge, or a call ran in the wrong namespace".into());
    }
    println!("none failed");
    Ok(())
}
