//! The emulated link against real sockets: it adds its latency, holds a transfer to its
//! bandwidth, delivers every byte in order, and cuts connections on demand. Timing is asserted
//! as lower bounds only (a link can be slower on a busy machine, never faster).

use std::{net::SocketAddr, time::Duration};

use arbor_linkemu::{Link, LinkConfig};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::Instant,
};

/// A server that echoes everything back, on 127.0.0.1.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn link(upstream: SocketAddr, config: LinkConfig) -> Link {
    Link::start("127.0.0.1:0".parse().expect("addr"), upstream, config)
        .await
        .expect("link")
}

#[tokio::test]
async fn a_round_trip_pays_the_latency_both_ways() {
    let server = echo_server().await;
    let config = LinkConfig {
        one_way_latency: Duration::from_millis(40),
        ..LinkConfig::default()
    };
    let link = link(server, config).await;
    let mut stream = TcpStream::connect(link.addr()).await.expect("connect");
    for round in 0..3u8 {
        let start = Instant::now();
        stream.write_all(&[round]).await.expect("write");
        let mut byte = [0u8];
        stream.read_exact(&mut byte).await.expect("read");
        assert_eq!(byte[0], round);
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn a_capped_link_carries_every_byte_in_order_at_its_rate() {
    let server = echo_server().await;
    let config = LinkConfig {
        bandwidth_bytes_per_sec: Some(1_000_000),
        queue_bytes: 64 << 10,
        ..LinkConfig::default()
    };
    let link = link(server, config).await;
    let stream = TcpStream::connect(link.addr()).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let sent = data.clone();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        write.write_all(&sent).await.expect("write");
        write.shutdown().await.expect("shutdown");
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.expect("read");
    writer.await.expect("writer");
    assert!(back == data, "bytes changed on the way");
    // 300 kB through a 1 MB/s link (each way, pipelined): at least 0.3 s.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_cut_drops_open_connections_and_new_ones_work() {
    let server = echo_server().await;
    let link = link(server, LinkConfig::default()).await;
    let mut stream = TcpStream::connect(link.addr()).await.expect("connect");
    stream.write_all(b"x").await.expect("write");
    let mut byte = [0u8];
    stream.read_exact(&mut byte).await.expect("read");
    link.cut();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the cut connection stayed open");
    let mut again = TcpStream::connect(link.addr()).await.expect("reconnect");
    again.write_all(b"y").await.expect("write");
    again.read_exact(&mut byte).await.expect("read");
    assert_eq!(&byte, b"y");
}
