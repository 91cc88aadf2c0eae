//! An async HTTP client and server in a network namespace, with hyper on
//! tokio: the server's listener and the client's connections are made
//! inside netns A by nsguard (`bind_tcp_async`, `connect_tcp_async`: one
//! call on a worker inside, then the socket is registered with the
//! caller's runtime, which never blocks); hyper then runs on the caller's
//! runtime as usual. Then hyper's pooled client, with its connector wrapped
//! in `nsguard::ServiceInside`, asks `localhost` by name: the name is
//! resolved inside (on a blocking thread that lives in A) and the
//! connection dialled there; afterwards no thread but nsguard's own is
//! left in A. The same request from the host is refused: nothing listens
//! there.
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
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::rt::TokioIo;
use nsguard::{CommandExt, NsKind, NsSet, ServiceInside, ThreadOwner};

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
        for _ in 0..2 {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello)),
            );
        }
        Ok::<(), common::BoxError>(())
    });

    // The client: its connection is dialled inside A.
    let answer = get_from_inside(&a, addr).await?;
    println!("dialled inside A  -> {answer}");

    // hyper's pooled client: one line makes every connection it dials,
    // name resolution included, happen inside A.
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(ServiceInside::new(a.try_clone()?, HttpConnector::new()));
    let url = format!("http://localhost:{}/", addr.port());
    let response = client.get(url.parse()?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "client by name    -> {status} {}",
        String::from_utf8_lossy(&body)
    );
    server.await.map_err(|e| e.to_string())??;
    drop(client);
    let strays: Vec<_> = nsguard::stray_threads()?
        .into_iter()
        .filter(|t| t.owner == ThreadOwner::None)
        .collect();
    println!("threads left in A -> {}", strays.len());
    if !strays.is_empty() {
        return Err(format!("threads left inside: {strays:?}").into());
    }

    // The host has no such server.
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => return Err(format!("{addr} answered from the host").into()),
        Err(err) => println!("from the host      -> fails: {err}"),
    }
    Ok(())
}
