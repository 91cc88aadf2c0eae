//! Sockets made inside a set's namespaces, for use anywhere.
//!
//! A socket keeps the network namespace it was created in for its whole
//! life, whichever thread uses it later: "create inside, use anywhere" is
//! how servers and clients work with namespaces. Each helper makes the
//! socket with one call on a (warm) worker and hands it back.

use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::errno::Errno;
use crate::error::{Error, Result};
use crate::handle::set::NsSet;
use crate::sys;

impl NsSet {
    /// A TCP listener bound to `addr` inside the set's namespaces, usable
    /// from any thread: connections it accepts are those made to `addr` in
    /// the set's network namespace. A name in `addr` is resolved inside.
    ///
    /// # Errors
    ///
    /// The errors of [`run`](Self::run); [`Error::Socket`] naming the
    /// address and the namespaces if the bind fails (`EADDRINUSE`, an
    /// address the namespace does not have: `EADDRNOTAVAIL`…).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::process::Command;
    /// use nsguard::{CommandExt, NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let ns = NsSet::unshare(NsKind::Net)?;
    /// // A new network namespace has its loopback down.
    /// Command::new("ip").args(["link", "set", "lo", "up"]).spawn_in(&ns)?.wait()?;
    /// let listener = ns.bind_tcp("127.0.0.1:0")?;   // in `ns`, used from here
    /// let addr = listener.local_addr()?;
    /// let mut client = ns.connect_tcp(addr, None)?;   // made in `ns` too
    /// client.write_all(b"hi")?;
    /// let (mut conn, _) = listener.accept()?;
    /// let mut buf = [0; 2];
    /// conn.read_exact(&mut buf)?;
    /// // From the host's own loopback, nobody listens there:
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind_tcp<A>(&self, addr: A) -> Result<TcpListener>
    where
        A: ToSocketAddrs + fmt::Debug + Send,
    {
        let shown = format!("{addr:?}");
        self.run(move || TcpListener::bind(addr))?
            .map_err(|e| self.socket_error("binding a TCP listener to", shown, &e))
    }

    /// A TCP stream connected to `addr` from inside the set's namespaces
    /// (with a timeout, if given, for each address `addr` resolves to).
    ///
    /// # Errors
    ///
    /// The errors of [`run`](Self::run); [`Error::Socket`] naming the
    /// address and the namespaces if the connection fails
    /// (`ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`…).
    pub fn connect_tcp<A>(&self, addr: A, timeout: Option<Duration>) -> Result<TcpStream>
    where
        A: ToSocketAddrs + fmt::Debug + Send,
    {
        let shown = format!("{addr:?}");
        self.run(move || connect(addr, timeout))?
            .map_err(|e| self.socket_error("connecting a TCP stream to", shown, &e))
    }

    /// A UDP socket bound to `addr` inside the set's namespaces.
    ///
    /// # Errors
    ///
    /// As for [`bind_tcp`](Self::bind_tcp).
    pub fn bind_udp<A>(&self, addr: A) -> Result<UdpSocket>
    where
        A: ToSocketAddrs + fmt::Debug + Send,
    {
        let shown = format!("{addr:?}");
        self.run(move || UdpSocket::bind(addr))?
            .map_err(|e| self.socket_error("binding a UDP socket to", shown, &e))
    }

    /// A socket of any kind, `socket(domain, ty, protocol)`, made inside the
    /// set's namespaces (close-on-exec): a netlink socket (`AF_NETLINK`,
    /// `NETLINK_ROUTE`) for rtnetlink or neli, a raw or packet socket. A
    /// netlink socket talks to the kernel of the namespace it was made in,
    /// whichever thread uses it.
    ///
    /// # Errors
    ///
    /// The errors of [`run`](Self::run); [`Error::Socket`] if `socket(2)`
    /// fails (`EAFNOSUPPORT`, `EPROTONOSUPPORT`, `EACCES`…).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsguard::{NsKind, NsSet};
    ///
    /// # if !nix::unistd::geteuid().is_root() { return Ok(()); }
    /// let ns = NsSet::unshare(NsKind::Net)?;
    /// let rtnl = ns.socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    /// // hand `rtnl` to a netlink library: it speaks to `ns`'s kernel
    /// # Ok::<(), nsguard::Error>(())
    /// ```
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd> {
        self.run(move || sys::socket(domain, ty, protocol))?
            .map_err(|errno| {
                let e = io::Error::from(errno);
                self.socket_error(
                    "making a socket",
                    format!("(domain {domain}, type {ty}, protocol {protocol})"),
                    &e,
                )
            })
    }

    fn socket_error(&self, op: &'static str, addr: String, err: &io::Error) -> Error {
        Error::Socket {
            op,
            addr,
            namespaces: self.describe(),
            errno: Errno::from_raw(err.raw_os_error().unwrap_or(libc::EINVAL)),
            reason: err.to_string(),
        }
    }

    /// The set's namespaces for messages: `net:[…] (/path), uts:[…]`.
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .iter()
            .map(|ns| match ns.path() {
                Some(path) => format!("{} ({})", ns.id(), path.display()),
                None => ns.id().to_string(),
            })
            .collect();
        if parts.is_empty() {
            "the executor's home namespaces".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `TcpStream::connect`, or `connect_timeout` on each resolved address.
fn connect(addr: impl ToSocketAddrs, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let Some(timeout) = timeout else {
        return TcpStream::connect(addr);
    };
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to");
    for one in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&one, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use std::fmt;
    use std::io;
    use std::net::ToSocketAddrs;
    use std::time::Duration;

    use crate::error::Result;
    use crate::handle::set::NsSet;

    /// A std socket that can be switched to non-blocking mode.
    trait Nonblocking {
        fn set_nonblocking(&self, on: bool) -> io::Result<()>;
    }

    macro_rules! nonblocking {
        ($($t:ty),*) => {$(
            impl Nonblocking for $t {
                fn set_nonblocking(&self, on: bool) -> io::Result<()> {
                    <$t>::set_nonblocking(self, on)
                }
            }
        )*};
    }
    nonblocking!(
        std::net::TcpListener,
        std::net::TcpStream,
        std::net::UdpSocket
    );

    impl NsSet {
        /// Makes a std socket on a worker inside (the runtime is not
        /// blocked), then registers it with the caller's runtime.
        async fn made_inside<S, T>(
            &self,
            op: &'static str,
            shown: String,
            make: impl FnOnce() -> io::Result<S> + Send + 'static,
            register: impl FnOnce(S) -> io::Result<T>,
        ) -> Result<T>
        where
            S: Nonblocking + Send + 'static,
        {
            let std = self
                .run_async(make)
                .await?
                .map_err(|e| self.socket_error(op, shown.clone(), &e))?;
            std.set_nonblocking(true)
                .and_then(|()| register(std))
                .map_err(|e| self.socket_error(op, shown, &e))
        }

        /// [`bind_tcp`](Self::bind_tcp) for tokio: the listener is made on a
        /// worker without blocking the runtime, and registered with the
        /// caller's runtime (call it from within one).
        ///
        /// # Errors
        ///
        /// As for [`bind_tcp`](Self::bind_tcp); [`Error::Socket`](crate::Error::Socket)
        /// if the socket cannot be registered with the runtime.
        #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
        pub async fn bind_tcp_async<A>(&self, addr: A) -> Result<tokio::net::TcpListener>
        where
            A: ToSocketAddrs + fmt::Debug + Send + 'static,
        {
            let shown = format!("{addr:?}");
            self.made_inside(
                "binding a TCP listener to",
                shown,
                move || std::net::TcpListener::bind(addr),
                tokio::net::TcpListener::from_std,
            )
            .await
        }

        /// [`connect_tcp`](Self::connect_tcp) for tokio: connects on a
        /// worker inside (the runtime is not blocked), then registers the
        /// stream with the caller's runtime.
        ///
        /// # Errors
        ///
        /// As for [`connect_tcp`](Self::connect_tcp).
        #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
        pub async fn connect_tcp_async<A>(
            &self,
            addr: A,
            timeout: Option<Duration>,
        ) -> Result<tokio::net::TcpStream>
        where
            A: ToSocketAddrs + fmt::Debug + Send + 'static,
        {
            let shown = format!("{addr:?}");
            self.made_inside(
                "connecting a TCP stream to",
                shown,
                move || super::connect(addr, timeout),
                tokio::net::TcpStream::from_std,
            )
            .await
        }

        /// [`bind_udp`](Self::bind_udp) for tokio.
        ///
        /// # Errors
        ///
        /// As for [`bind_udp`](Self::bind_udp).
        #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
        pub async fn bind_udp_async<A>(&self, addr: A) -> Result<tokio::net::UdpSocket>
        where
            A: ToSocketAddrs + fmt::Debug + Send + 'static,
        {
            let shown = format!("{addr:?}");
            self.made_inside(
                "binding a UDP socket to",
                shown,
                move || std::net::UdpSocket::bind(addr),
                tokio::net::UdpSocket::from_std,
            )
            .await
        }
    }
}
