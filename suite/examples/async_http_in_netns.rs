//! An async HTTP client and server in a network namespace, with hyper on
//! tokio: the server's listener and the client's connections are made
//! inside netns A by nsguard (`bind_tcp_async`, `connect_tcp_async`: one
//! call on a worker inside, then the socket is registered with the
//! caller's runtime, which never blocks); hyper then runs on the caller's
//! runtime as usual. The same request from the host is refused: nothing
//! listens there.
//!
//! ```text
//! cargo run -p nsguard-suite --example async_http_in_netns
//! ```
//!
//! Only loopback inside A is used; A dies with its handle.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nsguard::{CommandExt, NsKind, NsSet};

fn main() -> ExitCode {
    common::main("async_http_in_netns", || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(run())
    })
}

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from(
        "hello from inside namespace A",
    ))))
}

/// One GET over a connection `set` dials inside its namespaces.
async fn get_from_inside(set: &NsSet, addr: SocketAddr) -> Result<String, common::BoxError> {
    let stream = set
        .connect_tcp_async(addr, Some(Duration::from_secs(3)))
        .await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(format!("http://{addr}/"))
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(format!("{status} {}", String::from_utf8_lossy(&body)))
}

async fn run() -> Result<(), common::BoxError> {
    let a = NsSet::unshare(NsKind::Net)?;
    let id = a.get(NsKind::Net).ok_or("no netns")?.id();
    if !Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .spawn_in(&a)?
        .wait()?
        .success()
    {
        return Err("could not bring lo up inside A".into());
    }

    // The server: its listener lives in A; hyper serves on this runtime.
    let listener = a.bind_tcp_async("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("hyper server listening on {addr} inside {id}");
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
            .await?;
        Ok::<(), common::BoxError>(())
    });

    // The client: its connection is dialled inside A.
    let answer = get_from_inside(&a, addr).await?;
    println!("dialled inside A  -> {answer}");
    server.await.map_err(|e| e.to_string())??;

    // The host has no such server.
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => return Err(format!("{addr} answered from the host").into()),
        Err(err) => println!("from the host      -> fails: {err}"),
    }
    Ok(())
}
