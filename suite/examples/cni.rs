//! A CNI plugin's ADD and DEL, with the real `rtnetlink` crate, the way a
//! Rust CNI plugin would write them with nsguard, timed beside the same
//! steps with netns-rs.
//!
//! ADD: a named network namespace (`/run/netns/NAME`, as `ip netns add`);
//! on the host, over a netlink connection made there, a veth pair, one end
//! moved into the namespace, the host end given 198.18.X.1/24 and brought
//! up; inside, over a netlink connection made *inside*, `lo` and the moved
//! end brought up (renamed `eth0`, as CNI_IFNAME asks), 198.18.X.2/24 on
//! it and a default route via the host end. The host then connects to a
//! listener made inside, through the veth pair. DEL: the host end deleted
//! (its peer goes with it), then the namespace. After every DEL nothing of
//! this process's names is left in `/run/netns` or among the host's links.
//!
//! ```text
//! cargo run -p nsguard-suite --example cni            # as root: 3 cycles per library
//! cargo run -p nsguard-suite --example cni -- 50      # or CNI_CYCLES=50
//! ```
//!
//! The netlink connection inside is made by a future polled inside
//! ([`NsSet::run_future`]): rtnetlink's socket is created there and keeps
//! that namespace for good, while its connection task runs on the caller's
//! runtime like any other task (the socket's I/O is driven by the set's
//! runtime, at home, while the program holds a handle to the namespace). The time per ADD/DEL cycle is the median
//! over the cycles, nsguard and netns-rs taking turns; beside it, the time
//! in the library's own calls (making and deleting the namespace, making
//! the connection inside). The rest, creating and deleting the veth pair
//! above all, is the kernel's, the same for both.
//!
//! Names carry the pid (`nsguard-cni-PID`, `netns-rs-cni-PID`, veth
//! `cnihPID`/`cnicPID`; addresses in 198.18.0.0/15, the range RFC 2544
//! keeps for tests). Everything is removed also on an error, a panic or
//! Ctrl-C (which cancels the run at its next await): the namespaces by
//! their guards, and whatever else of this process's names is left by a
//! guard that sweeps them when `main` ends.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::BoxError;
use futures_util::TryStreamExt;
use nsguard::{netns, NsSet};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

const DEFAULT_CYCLES: usize = 3;
const PREFIX_LEN: u8 = 24;
/// How long the host may take to reach the listener inside.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Set when Ctrl-C ended the run: the exit code is then 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let code = common::main("cni", || {
        let cycles = match std::env::args()
            .nth(1)
            .or_else(|| std::env::var("CNI_CYCLES").ok())
        {
            Some(n) => n.parse::<usize>().ok().filter(|&n| n > 0).ok_or(format!(
                "the number of cycles must be a positive number, not {n:?}"
            ))?,
            None => DEFAULT_CYCLES,
        };
        let names = Names::of(std::process::id());
        // Removes what is left on every way out: errors, panics, Ctrl-C.
        let _sweep = Sweep(names.clone());
        // Ctrl-C cancels the run at its next await: the guards of what it
        // made then delete it, and nothing new is made meanwhile.
        let ctrl_c = Arc::new(tokio::sync::Notify::new());
        let notify = Arc::clone(&ctrl_c);
        ctrlc::set_handler(move || notify.notify_one())?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let done = runtime.block_on(async {
            tokio::select! {
                done = run(&names, cycles) => done,
                () = ctrl_c.notified() => {
                    INTERRUPTED.store(true, Ordering::Relaxed);
                    Err("interrupted by Ctrl-C".into())
                }
            }
        });
        match done {
            Err(err) if err.is::<Skipped>() => {
                println!("skipped: cni: {err}");
                Ok(())
            }
            done => done,
        }
    });
    if INTERRUPTED.load(Ordering::Relaxed) {
        ExitCode::from(130)
    } else {
        code
    }
}

async fn run(names: &Names, cycles: usize) -> Result<(), BoxError> {
    // The host's connection, made first, on the host: a netlink socket
    // keeps the namespace it was made in, whichever thread uses it later
    // (netns-rs's `run` below switches this very thread in and out).
    let host = Netlink::host()?;
    println!(
        "{cycles} ADD/DEL cycles per library: veth {} {}/{PREFIX_LEN} on the host <-> eth0 \
         {}/{PREFIX_LEN} inside",
        names.host_end, names.host_ip, names.inside_ip
    );
    let (mut nsguard, mut netns_rs) = (Vec::new(), Vec::new());
    for i in 1..=cycles {
        nsguard.push(add_del::<WithNsguard>(&host, names, i).await?);
        netns_rs.push(add_del::<WithNetnsRs>(&host, names, i).await?);
    }
    println!("\nmedian of {cycles} cycles:");
    for (library, cycles) in [
        (WithNsguard::LIBRARY, &nsguard),
        (WithNetnsRs::LIBRARY, &netns_rs),
    ] {
        println!(
            "{library:<10} {} per ADD/DEL cycle (ADD {}, DEL {}; {} in {library})",
            ms(median(cycles.iter().map(|c| c.add + c.del))),
            ms(median(cycles.iter().map(|c| c.add))),
            ms(median(cycles.iter().map(|c| c.del))),
            ms(median(cycles.iter().map(|c| c.own))),
        );
    }
    println!(
        "DEL left nothing: no {} or {} in {}, no link {} or {}",
        names.netns(WithNsguard::LIBRARY),
        names.netns(WithNetnsRs::LIBRARY),
        netns::RUN_DIR,
        names.host_end,
        names.peer
    );
    Ok(())
}

/// One ADD/DEL cycle's times.
struct Cycle {
    add: Duration,
    del: Duration,
    /// In the library's own calls: making and deleting the namespace,
    /// making the netlink connection inside (the rest is the kernel's and
    /// rtnetlink's, the same for both).
    own: Duration,
}

/// One ADD, the check that the host reaches the address inside, one DEL,
/// then the check that DEL left nothing; prints a line.
async fn add_del<N: Netns>(host: &Netlink, names: &Names, cycle: usize) -> Result<Cycle, BoxError> {
    let name = names.netns(N::LIBRARY);
    let start = Instant::now();
    // ADD, on the host: the namespace, the veth pair, one end moved inside,
    // the host end's address.
    let ns = N::add(&name)?;
    let mut own = start.elapsed();
    let links = host.handle.link();
    links
        .add(LinkVeth::new(&names.host_end, &names.peer).build())
        .execute()
        .await
        .map_err(|e| match netlink_errno(&e) {
            Some(libc::EOPNOTSUPP) => Skipped("needs veth interfaces (CONFIG_VETH)").into(),
            _ => context(format!("adding the veth pair {}", names.host_end), e),
        })?;
    let peer = index_of(host, &names.peer).await?;
    links
        .set(
            LinkUnspec::new_with_index(peer)
                .setns_by_fd(ns.fd().as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| context(format!("moving {} into {name}", names.peer), e))?;
    let host_end = index_of(host, &names.host_end).await?;
    host.handle
        .address()
        .add(host_end, names.host_ip.into(), PREFIX_LEN)
        .execute()
        .await
        .map_err(|e| context(format!("adding {} to {}", names.host_ip, names.host_end), e))?;
    links
        .set(LinkUnspec::new_with_index(host_end).up().build())
        .execute()
        .await
        .map_err(|e| context(format!("bringing {} up", names.host_end), e))?;

    // ADD, inside, over a connection made inside.
    let t = Instant::now();
    let inside = ns.netlink_inside().await?;
    own += t.elapsed();
    let lo = index_of(&inside, "lo").await?;
    inside
        .handle
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .map_err(|e| context("bringing lo up inside", e))?;
    let eth0 = index_of(&inside, &names.peer).await?;
    inside
        .handle
        .link()
        .set(LinkUnspec::new_with_index(eth0).name("eth0").up().build())
        .execute()
        .await
        .map_err(|e| {
            context(
                format!("renaming {} eth0 and bringing it up", names.peer),
                e,
            )
        })?;
    inside
        .handle
        .address()
        .add(eth0, names.inside_ip.into(), PREFIX_LEN)
        .execute()
        .await
        .map_err(|e| context(format!("adding {} to eth0 inside", names.inside_ip), e))?;
    inside
        .handle
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(names.host_ip)
                .output_interface(eth0)
                .build(),
        )
        .execute()
        .await
        .map_err(|e| context(format!("adding the default route via {}", names.host_ip), e))?;
    let add = start.elapsed();

    // The host reaches the address inside, through the veth pair.
    let listener = ns.listen_inside((names.inside_ip, 0).into()).await?;
    let to = listener.local_addr()?;
    let reached = async { tokio::try_join!(tokio::net::TcpStream::connect(to), listener.accept()) };
    let (_, (_, from)) = tokio::time::timeout(CONNECT_TIMEOUT, reached)
        .await
        .map_err(|_| format!("the host did not reach {to} in {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| context(format!("connecting from the host to {to}"), e))?;
    if from.ip() != names.host_ip {
        return Err(format!("{to} was reached from {from}, not from {}", names.host_ip).into());
    }
    drop(listener);

    // DEL: the host end (its peer goes with it), the connection inside,
    // the namespace.
    let start = Instant::now();
    links
        .del(host_end)
        .execute()
        .await
        .map_err(|e| context(format!("deleting {}", names.host_end), e))?;
    drop(inside);
    let t = Instant::now();
    ns.delete()?;
    own += t.elapsed();
    let del = start.elapsed();

    let left = leftovers(host, names).await?;
    if !left.is_empty() {
        return Err(format!("DEL left {}", left.join(", ")).into());
    }
    println!(
        "{:<10} #{cycle}: ADD {}, the host reached {to} inside (from {from}), DEL {} \
         ({} in {})",
        N::LIBRARY,
        ms(add),
        ms(del),
        ms(own),
        N::LIBRARY
    );
    Ok(Cycle { add, del, own })
}

/// What differs between the two libraries: how the named namespace is made
/// and deleted, and how a netlink connection and a listener are made in it.
trait Netns: Sized {
    const LIBRARY: &'static str;
    fn add(name: &str) -> Result<Self, BoxError>;
    /// For `IFLA_NET_NS_FD`: where the host moves a link to.
    fn fd(&self) -> BorrowedFd<'_>;
    async fn netlink_inside(&self) -> Result<Netlink, BoxError>;
    async fn listen_inside(&self, addr: SocketAddr) -> Result<tokio::net::TcpListener, BoxError>;
    fn delete(self) -> Result<(), BoxError>;
}

/// nsguard: a named namespace deleted when dropped, and a set of it to run
/// code and make sockets in.
struct WithNsguard {
    set: NsSet,
    scoped: netns::Scoped,
}

impl Netns for WithNsguard {
    const LIBRARY: &'static str = "nsguard";

    fn add(name: &str) -> Result<Self, BoxError> {
        let scoped = netns::Scoped::add(name)?;
        Ok(WithNsguard {
            set: scoped.set()?,
            scoped,
        })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.scoped
            .namespace()
            .expect("deleted only by delete(self)")
            .as_fd()
    }

    async fn netlink_inside(&self) -> Result<Netlink, BoxError> {
        // The body runs on a worker inside the namespace, in the context of
        // the set's runtime (the `tokio` feature): rtnetlink's socket is
        // made inside, for good, and registers with that runtime's reactor,
        // which nsguard drives at home for as long as the socket is open. The connection is spawned here, on the
        // caller's runtime. (In async code that makes more than a socket,
        // `self.set.run_future(async { .. })` polls it all inside.)
        let (connection, handle, _) = self.set.run(rtnetlink::new_connection)??;
        Ok(Netlink::spawn(connection, handle))
    }

    async fn listen_inside(&self, addr: SocketAddr) -> Result<tokio::net::TcpListener, BoxError> {
        Ok(self.set.bind_tcp_async(addr).await?)
    }

    fn delete(self) -> Result<(), BoxError> {
        let WithNsguard { set, scoped } = self;
        drop(set);
        Ok(scoped.delete()?)
    }
}

/// netns-rs: `NetNs::new` makes `/var/run/netns/NAME`, which nothing
/// deletes when the `NetNs` is dropped: this guard does.
struct WithNetnsRs(Option<netns_rs::NetNs>);

impl WithNetnsRs {
    fn ns(&self) -> &netns_rs::NetNs {
        self.0.as_ref().expect("deleted only by delete(self)")
    }
}

impl Drop for WithNetnsRs {
    fn drop(&mut self) {
        if let Some(ns) = self.0.take() {
            let _ = ns.remove();
        }
    }
}

impl Netns for WithNetnsRs {
    const LIBRARY: &'static str = "netns-rs";

    fn add(name: &str) -> Result<Self, BoxError> {
        Ok(WithNetnsRs(Some(netns_rs::NetNs::new(name)?)))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.ns().file().as_fd()
    }

    async fn netlink_inside(&self) -> Result<Netlink, BoxError> {
        // `run` switches the calling thread (the runtime's, here) into the
        // namespace and back: rtnetlink's socket is made inside.
        let (connection, handle, _) = self.ns().run(|_| rtnetlink::new_connection())??;
        Ok(Netlink::spawn(connection, handle))
    }

    async fn listen_inside(&self, addr: SocketAddr) -> Result<tokio::net::TcpListener, BoxError> {
        let listener = self.ns().run(|_| std::net::TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        Ok(tokio::net::TcpListener::from_std(listener)?)
    }

    fn delete(mut self) -> Result<(), BoxError> {
        match self.0.take() {
            Some(ns) => Ok(ns.remove()?),
            None => Ok(()),
        }
    }
}

type Connection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// An rtnetlink handle and the task, on the caller's runtime, that drives
/// its connection. Dropping it ends the task, which closes the socket (and
/// lets go of the namespace the socket was made in).
struct Netlink {
    handle: rtnetlink::Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Netlink {
    fn spawn(connection: Connection, handle: rtnetlink::Handle) -> Netlink {
        Netlink {
            handle,
            connection: tokio::spawn(connection),
        }
    }

    /// A connection in the calling thread's network namespace.
    fn host() -> std::io::Result<Netlink> {
        let (connection, handle, _) = rtnetlink::new_connection()?;
        Ok(Netlink::spawn(connection, handle))
    }
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The index of the link called `name`, in the connection's namespace.
async fn index_of(netlink: &Netlink, name: &str) -> Result<u32, BoxError> {
    let found = netlink
        .handle
        .link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
        .map_err(|e| context(format!("looking {name} up"), e))?;
    Ok(found.ok_or(format!("no link {name}"))?.header.index)
}

/// Every link of the connection's namespace: index and name (`ip link`).
async fn links(netlink: &Netlink) -> Result<Vec<(u32, String)>, BoxError> {
    let name = |link: &LinkMessage| {
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
    };
    let all: Vec<LinkMessage> = netlink
        .handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| context("listing the links", e))?;
    Ok(all
        .iter()
        .map(|link| (link.header.index, name(link).unwrap_or_default()))
        .collect())
}

/// What of this process's names is still there: links on the host, names
/// in `/run/netns`.
async fn leftovers(host: &Netlink, names: &Names) -> Result<Vec<String>, BoxError> {
    let mut left: Vec<String> = links(host)
        .await?
        .into_iter()
        .filter(|(_, name)| names.is_link(name))
        .map(|(_, name)| format!("link {name}"))
        .collect();
    left.extend(
        netns::list()?
            .into_iter()
            .filter(|name| names.is_netns(name))
            .map(|name| format!("{}/{name}", netns::RUN_DIR)),
    );
    Ok(left)
}

/// This process's names and addresses.
#[derive(Clone, Debug)]
struct Names {
    pid: u32,
    /// The veth end that stays on the host.
    host_end: String,
    /// The end moved inside (renamed `eth0` there).
    peer: String,
    host_ip: Ipv4Addr,
    inside_ip: Ipv4Addr,
}

impl Names {
    fn of(pid: u32) -> Names {
        // 198.18.0.0/15 has 512 /24s: one for each pid modulo 512.
        let net = |host| Ipv4Addr::new(198, 18 + ((pid >> 8) & 1) as u8, pid as u8, host);
        Names {
            pid,
            host_end: format!("cnih{pid}"),
            peer: format!("cnic{pid}"),
            host_ip: net(1),
            inside_ip: net(2),
        }
    }

    /// The name under `/run/netns` of the library's namespace.
    fn netns(&self, library: &str) -> String {
        format!("{library}-cni-{}", self.pid)
    }

    fn is_netns(&self, name: &str) -> bool {
        [WithNsguard::LIBRARY, WithNetnsRs::LIBRARY]
            .iter()
            .any(|library| name == self.netns(library))
    }

    fn is_link(&self, name: &str) -> bool {
        name == self.host_end || name == self.peer
    }

    /// Removes whatever of these names is left, and says what it removed:
    /// the host's links (a veth's peer goes with it), then the namespaces
    /// (with them, a peer moved inside). Synchronous, for a destructor:
    /// its netlink connection runs on a runtime of its own, on a thread of
    /// its own.
    fn sweep(&self) -> Vec<String> {
        let names = self.clone();
        let links_removed = std::thread::spawn(move || -> Result<Vec<String>, BoxError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            runtime.block_on(async {
                let host = Netlink::host()?;
                let mut removed = Vec::new();
                for (index, name) in links(&host).await? {
                    if names.is_link(&name) && host.handle.link().del(index).execute().await.is_ok()
                    {
                        removed.push(format!("link {name}"));
                    }
                }
                Ok(removed)
            })
        })
        .join();
        let mut removed = match links_removed {
            Ok(Ok(removed)) => removed,
            Ok(Err(err)) => vec![format!("(links not listed: {err})")],
            Err(_) => vec!["(links not listed: the thread panicked)".to_owned()],
        };
        let ours = self.netns(WithNsguard::LIBRARY);
        if netns::delete(&ours).is_ok() {
            removed.push(format!("{}/{ours}", netns::RUN_DIR));
        }
        let theirs = self.netns(WithNetnsRs::LIBRARY);
        if let Ok(ns) = netns_rs::NetNs::get(&theirs) {
            if ns.remove().is_ok() {
                removed.push(format!("/var/run/netns/{theirs}"));
            }
        }
        removed
    }
}

/// Sweeps this process's names when dropped.
struct Sweep(Names);

impl Drop for Sweep {
    fn drop(&mut self) {
        let removed = self.0.sweep();
        if !removed.is_empty() {
            eprintln!("cni: removed what was left: {}", removed.join(", "));
        }
    }
}

/// The kernel cannot do what the example needs: it says so and ends well.
#[derive(Debug)]
struct Skipped(&'static str);

impl Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Skipped {}

/// The errno of a netlink error answer.
fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(-msg.raw_code()),
        _ => None,
    }
}

/// `err`, saying what failed (rtnetlink's errors name neither the request
/// nor the link).
fn context(what: impl Display, err: impl Display) -> BoxError {
    format!("{what}: {err}").into()
}

fn median(times: impl Iterator<Item = Duration>) -> Duration {
    let mut times: Vec<Duration> = times.collect();
    times.sort();
    match times.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => times[n / 2],
        n => (times[n / 2 - 1] + times[n / 2]) / 2,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
