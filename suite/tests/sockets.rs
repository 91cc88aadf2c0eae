//! Sockets made inside a namespace and used from anywhere.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nsguard::{Error, NsKind, NsSet};
use nsguard_suite::{lo_up, net_set, TempNs};

/// The set of `temp`, with its loopback up (a new network namespace has
/// `lo` down).
fn net_set_with_lo_up(temp: &TempNs) -> NsSet {
    let set = net_set(temp);
    lo_up(&set);
    set
}

#[test]
fn a_listener_made_inside_accepts_clients_made_inside_and_not_the_hosts() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set_with_lo_up(&a);
    let listener = set.bind_tcp("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A client made in A, used from this (host) thread, reaches it: the
    // connection waits in the listener's backlog until it is accepted.
    let mut client = set
        .connect_tcp(addr, Some(std::time::Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"ping!").unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping!");
    conn.write_all(b"pong!").unwrap();
    let mut reply = [0u8; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"pong!");
    // The host's own loopback has no listener there.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // UDP too.
    let udp = set.bind_udp("127.0.0.1:0").unwrap();
    let to = udp.local_addr().unwrap();
    let sender = set.bind_udp("127.0.0.1:0").unwrap();
    sender.send_to(b"dgram", to).unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"dgram");
}

#[test]
fn errors_name_the_namespace_and_the_address() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set_with_lo_up(&a);
    // A fresh namespace has only lo: this address is not there.
    let err = set.bind_tcp("10.99.99.99:0").unwrap_err();
    assert!(matches!(err, Error::Socket { .. }), "{err:?}");
    assert_eq!(err.errno(), Some(nsguard::Errno::EADDRNOTAVAIL));
    let msg = err.to_string();
    assert!(msg.contains("10.99.99.99:0"), "{msg}");
    assert!(msg.contains(&format!("net:[{}]", a.ino())), "{msg}");
    assert!(msg.contains(&a.path().display().to_string()), "{msg}");
    let err = set.socket(-1, libc::SOCK_RAW, 0).unwrap_err();
    assert_eq!(err.errno(), Some(nsguard::Errno::EAFNOSUPPORT), "{err}");
}

/// The names of the links a NETLINK_ROUTE socket's kernel reports.
fn links(rtnl: &OwnedFd) -> Vec<String> {
    let fd = rtnl.as_raw_fd();
    // nlmsghdr (16) + ifinfomsg (16): RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP.
    let mut req = [0u8; 32];
    req[0..4].copy_from_slice(&32u32.to_ne_bytes());
    req[4..6].copy_from_slice(&(libc::RTM_GETLINK).to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: send(2) from a live buffer of that length.
    let sent = unsafe { libc::send(fd, req.as_ptr().cast(), req.len(), 0) };
    assert_eq!(sent, 32);
    let mut names = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: recv(2) into a live buffer of that length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert!(n > 0, "recv: {}", std::io::Error::last_os_error());
        let mut off = 0;
        while off + 16 <= n as usize {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            if ty == libc::NLMSG_DONE as u16 {
                return names;
            }
            if ty == libc::RTM_NEWLINK {
                let mut a = off + 32;
                while a + 4 <= off + len {
                    let alen = u16::from_ne_bytes(buf[a..a + 2].try_into().unwrap()) as usize;
                    let aty = u16::from_ne_bytes(buf[a + 2..a + 4].try_into().unwrap());
                    if alen < 4 {
                        break;
                    }
                    if aty == libc::IFLA_IFNAME {
                        let raw = &buf[a + 4..a + alen];
                        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                        names.push(String::from_utf8_lossy(&raw[..end]).into_owned());
                    }
                    a += (alen + 3) & !3;
                }
            }
            off += (len + 3) & !3;
        }
    }
}

#[test]
fn a_netlink_socket_made_inside_lists_the_namespaces_links() {
    let a = TempNs::new(NsKind::Net);
    let set = net_set_with_lo_up(&a);
    let rtnl = set
        .socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
        .unwrap();
    // Used from this (host) thread, it still speaks to A's kernel.
    assert_eq!(links(&rtnl), ["lo"]);
    let host = NsSet::new()
        .socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
        .unwrap();
    let host_links = links(&host);
    assert!(host_links.contains(&"lo".to_string()));
    // A veth end created on the host shows on the host's list only.
    let name = format!("sk{}", std::process::id() % 100_000);
    nsguard_suite::ip(&[
        "link",
        "add",
        &name,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{name}p"),
    ]);
    let after = links(&host);
    let inside = links(&rtnl);
    nsguard_suite::ip(&["link", "del", &name]);
    assert!(after.contains(&name), "{after:?}");
    assert_eq!(inside, ["lo"]);
}

#[test]
fn async_sockets_register_with_the_callers_runtime() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = TempNs::new(NsKind::Net);
    let set = net_set_with_lo_up(&a);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = set.bind_tcp_async("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).await.unwrap();
            buf
        });
        let mut client = set.connect_tcp_async(addr, None).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"ping");
        // The host cannot reach the listener: it was made inside A.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        // (Whether a connect after the listener's drop fails is not tested:
        // a process forked meanwhile by another test holds a copy of every
        // fd until it execs, the listener's too, which then still listens.)
    });
}
