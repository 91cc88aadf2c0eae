//! An HTTP request made from inside a network namespace, the problem Go's
//! net/http makes hard: goroutines dial on whatever OS thread they get.
//!
//! A server listens inside network namespace A. A ureq client whose
//! connections are dialled by nsguard (a custom connector) reaches it; the
//! same request from the host finds nothing there. The sockets are created
//! inside A and used from ordinary threads: a socket keeps the namespace it
//! was created in.
//!
//! ```text
//! cargo run -p nsguard-suite --example http_in_netns
//! ```
//!
//! Only loopback addresses inside A (and on the host, for the failing
//! request) are used. Nothing is left behind: A dies with its handle.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use nsguard::{CommandExt, NsKind, NsSet};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// A ureq connector that dials every connection inside a set of namespaces.
#[derive(Debug)]
struct InNamespace(Arc<NsSet>);

impl<In: Transport> Connector<In> for InNamespace {
    type Out = NsTcp;

    fn connect(
        &self,
        details: &ConnectionDetails<'_>,
        _chained: Option<In>,
    ) -> Result<Option<NsTcp>, ureq::Error> {
        let addr: SocketAddr = *details.addrs.first().ok_or(ureq::Error::ConnectionFailed)?;
        // The socket is created (and connected) on a worker inside the
        // namespaces, then used from this thread.
        let stream = self
            .0
            .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
            .map_err(std::io::Error::from)??;
        let config = details.config;
        let buffers = LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        Ok(Some(NsTcp { stream, buffers }))
    }
}

/// HTTP/1.1 over a TCP stream that was connected inside the namespaces.
struct NsTcp {
    stream: TcpStream,
    buffers: LazyBuffers,
}

impl Transport for NsTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream
            .set_write_timeout(timeout.for_write().not_zero().map(|t| *t))?;
        self.stream.write_all(&self.buffers.output()[..amount])?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream
            .set_read_timeout(timeout.for_read().not_zero().map(|t| *t))?;
        let n = self.stream.read(self.buffers.input_append_buf())?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    /// Not reused: every request dials afresh inside the namespaces.
    fn is_open(&mut self) -> bool {
        false
    }
}

impl fmt::Debug for NsTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsTcp")
            .field("stream", &self.stream)
            .finish()
    }
}

fn serve_one(listener: TcpListener) -> std::io::Result<()> {
    let (mut stream, peer) = listener.accept()?;
    let mut request = String::new();
    BufReader::new(&stream).read_line(&mut request)?;
    let body = format!("hello from inside namespace A (you are {peer})\n");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn main() -> ExitCode {
    common::main("http_in_netns", || {
        let a = Arc::new(NsSet::unshare(NsKind::Net)?);
        let status = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .spawn_in(&a)?
            .wait()?;
        if !status.success() {
            return Err("could not bring lo up inside A".into());
        }
        // Created inside A, served from an ordinary thread.
        let listener = a.run(|| TcpListener::bind("127.0.0.1:0"))??;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}/");
        println!(
            "server listening on {addr} inside {}",
            a.get(NsKind::Net).ok_or("no netns")?.id()
        );
        let server = std::thread::spawn(move || serve_one(listener));

        let agent = ureq::Agent::with_parts(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .build(),
            InNamespace(Arc::clone(&a)),
            DefaultResolver::default(),
        );
        let inside = agent.get(&url).call()?.body_mut().read_to_string()?;
        println!("GET {url} dialled inside A  -> {}", inside.trim());
        server.join().map_err(|_| "the server panicked")??;

        let from_host = ureq::Agent::new_with_defaults().get(&url).call();
        match &from_host {
            Ok(_) => {
                return Err(format!(
                    "GET {url} from the host succeeded: something on the host listens there"
                )
                .into())
            }
            Err(err) => println!("GET {url} from the host      -> fails: {err}"),
        }
        println!("\nthe request reached the server only from inside A");
        Ok(())
    })
}
