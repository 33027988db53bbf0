//! Starts a server on a transport and connects a client to it.

use arbor_merkledb::Db;
use arbor_sync::{RootAnnouncer, ServerConfig, StateSyncService, pb};
use tonic::transport::{Channel, Endpoint};

/// How the client reaches the server.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    /// TCP on 127.0.0.1, ephemeral port.
    Socket,
    /// An in-memory duplex pipe.
    InProcess,
}

pub(crate) type Client = pb::state_sync_client::StateSyncClient<Channel>;

/// A running server and a client of it. Dropping it stops the server.
pub(crate) struct Harness {
    pub(crate) client: Client,
    /// The client's connection, for other services on the same server (health).
    pub(crate) channel: Channel,
    pub(crate) announcer: RootAnnouncer,
    pub(crate) addr: Option<std::net::SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub(crate) async fn start(transport: Transport, db: Db, config: ServerConfig) -> Self {
        let service = StateSyncService::new(db, config);
        let announcer = service.announcer();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        match transport {
            Transport::Socket => {
                let (listener, addr) = arbor_sync::bind("127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("bind");
                let server = tokio::spawn(async move {
                    arbor_sync::serve(service, listener, shutdown)
                        .await
                        .expect("serve");
                });
                let channel = Endpoint::try_from(format!("http://{addr}"))
                    .expect("endpoint")
                    .connect()
                    .await
                    .expect("connect");
                let client = Client::new(channel.clone()).max_decoding_message_size(8 << 20);
                Self {
                    client,
                    channel,
                    announcer,
                    addr: Some(addr),
                    stop: Some(stop),
                    server: Some(server),
                }
            }
            Transport::InProcess => {
                let (client_io, server_io) = tokio::io::duplex(1 << 20);
                // The production assembly (`serve_incoming`, health service included) over one
                // in-memory connection, then an incoming stream that stays open: an ended stream
                // would make the server drop the connection.
                let incoming = futures::StreamExt::chain(
                    tokio_stream::once(Ok::<_, std::io::Error>(server_io)),
                    futures::stream::pending(),
                );
                let server = tokio::spawn(async move {
                    arbor_sync::serve_incoming(service, incoming, shutdown)
                        .await
                        .expect("serve");
                });
                let mut client_io = Some(client_io);
                let channel = Endpoint::try_from("http://in-process.invalid")
                    .expect("endpoint")
                    .connect_with_connector(tower::service_fn(move |_| {
                        let io = client_io.take();
                        async move {
                            io.map(hyper_util::rt::TokioIo::new)
                                .ok_or_else(|| std::io::Error::other("one connection only"))
                        }
                    }))
                    .await
                    .expect("connect");
                let client = Client::new(channel.clone()).max_decoding_message_size(8 << 20);
                Self {
                    client,
                    channel,
                    announcer,
                    addr: None,
                    stop: Some(stop),
                    server: Some(server),
                }
            }
        }
    }

    /// Stops the server gracefully and waits for it (at most 10 s; returns whether it stopped).
    pub(crate) async fn stop(mut self) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => {
                drop(self.client);
                drop(self.channel);
                tokio::time::timeout(std::time::Duration::from_secs(10), server)
                    .await
                    .is_ok()
            }
            None => true,
        }
    }
}
