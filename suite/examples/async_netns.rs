//! Async code inside a network namespace, with tokio: an `async fn` under
//! `#[in_namespace]` binds a tokio listener inside netns A (every poll of
//! its body runs on a worker inside A, with the caller's runtime entered,
//! so the socket registers with the caller's reactor); a client inside A
//! reaches it; the host does not. `run_async` does blocking work inside
//! without blocking the runtime.
//!
//! ```text
//! cargo run -p nsguard-suite --example async_netns
//! ```
//!
//! (tokio support is the `tokio` feature of nsguard.) Only loopback inside A
//! is used; A dies with its handle.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::{Command, ExitCode};

use nsguard::{in_namespace, CommandExt, Namespace, NsKind, NsSet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[in_namespace(net = netns)]
async fn listen_inside(netns: &Namespace) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await
}

#[in_namespace(net = netns)]
async fn ask_from_inside(netns: &Namespace, addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"ping").await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

fn main() -> ExitCode {
    common::main("async_netns", || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(run())
    })
}

async fn run() -> Result<(), common::BoxError> {
    let a = NsSet::unshare(NsKind::Net)?;
    let netns = a.get(NsKind::Net).ok_or("no netns")?;
    if !Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .spawn_in(&a)?
        .wait()?
        .success()
    {
        return Err("could not bring lo up inside A".into());
    }

    let listener = listen_inside(netns).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr} inside {}", netns.id());
    let server = tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await?;
        let mut request = [0u8; 4];
        stream.read_exact(&mut request).await?;
        stream
            .write_all(format!("pong to {peer}").as_bytes())
            .await?;
        std::io::Result::Ok(())
    });

    let answer = ask_from_inside(netns, addr).await?;
    println!("client inside A  -> {answer}");
    server.await??;

    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => return Err(format!("{addr} answered from the host").into()),
        Err(err) => println!("client on the host -> fails: {err}"),
    }

    // Blocking work inside A, awaited without blocking the runtime.
    let interfaces = a.run_async(common::interfaces).await??;
    println!("interfaces inside A (run_async): {}", interfaces.join(", "));
    Ok(())
}
