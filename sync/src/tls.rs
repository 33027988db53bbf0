//! TLS for the gRPC transport (rustls, with the `ring` provider): a server certificate that can
//! be replaced while the server runs, optional client certificates (mutual TLS), and the client
//! side's trust settings.
//!
//! * [`ServerTls`] holds the certificate and key read from PEM files and a verifier of client
//!   certificates when a client CA is given. [`ServerTls::reload`] rereads the files: new
//!   handshakes get the new certificate, connections already open keep theirs, so requests in
//!   flight are not dropped. A reload that fails (a half-written file, a key that does not match
//!   the certificate) keeps the old certificate and reports why.
//! * [`serve_tls`] is [`crate::server::serve_incoming`] over TLS connections accepted from a TCP
//!   listener; each handshake runs on its own task with a deadline, so a slow or failing client
//!   never holds up the others. A client without an acceptable certificate fails at the handshake.
//! * [`ClientTls`]: the CA to check servers against (the system roots when none is given) and a
//!   client certificate for mutual TLS, applied to `https://` peers by
//!   [`GrpcClient`](crate::client::GrpcClient).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use futures::Stream;
use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

use crate::server::{StateSyncService, serve_incoming};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("{0}")]
    Rustls(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in the PEM file at `path` (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate found".into()));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        what: format!("no usable private key: {e}"),
    })
}

/// The certificates of `path` as a root store.
fn root_store(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: format!("unusable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// rustls with *ring*: it builds with the C compiler RocksDB already needs, where aws-lc-rs
/// (rustls's default) also needs cmake and a long C build. rustls deprecates *ring*'s provider
/// because it offers no post-quantum key exchange; connections use TLS 1.3 with X25519.
#[allow(
    deprecated,
    reason = "ring's provider, chosen above, lacks only post-quantum key exchange"
)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server's TLS settings: its certificate (reloadable) and, for mutual TLS, the CA whose
/// client certificates it accepts.
#[derive(Debug)]
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    client_ca: Option<PathBuf>,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// When the files were last read (their modification times).
    loaded: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ServerTls {
    /// Reads the certificate chain and key (PEM); `client_ca` (PEM) turns on mutual TLS.
    pub fn load(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Arc<Self>, TlsError> {
        let (cert_path, key_path) = (cert.into(), key.into());
        let provider = provider();
        let stamps = stamps(&cert_path, &key_path);
        let current = certified_key(&cert_path, &key_path, &provider)?;
        if let Some(ca) = &client_ca {
            root_store(ca)?;
        }
        Ok(Arc::new(Self {
            cert_path,
            key_path,
            client_ca,
            provider,
            current: RwLock::new(current),
            loaded: RwLock::new(stamps),
        }))
    }

    /// Rereads the certificate and key. On failure the current ones stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.cert_path, &self.key_path);
        let fresh = certified_key(&self.cert_path, &self.key_path, &self.provider)?;
        if let Ok(mut current) = self.current.write() {
            *current = fresh;
        }
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = stamps;
        }
        Ok(())
    }

    /// True when the certificate or key file changed since it was last read.
    pub fn files_changed(&self) -> bool {
        let now = stamps(&self.cert_path, &self.key_path);
        self.loaded.read().is_ok_and(|loaded| *loaded != now)
    }

    /// A rustls server configuration that asks this object for the certificate at every
    /// handshake (so reloads take effect for new connections) and offers HTTP/2.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(root_store(ca)?),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The modification times of the certificate and key files.
fn stamps(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// The certificate chain of `cert` with the key of `key`, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = certificates(cert)?;
    let signing = provider
        .key_provider
        .load_private_key(private_key(key)?)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError::Rustls(format!(
            "{} does not match {}: {e}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

/// Hands rustls the current certificate at each handshake.
#[derive(Debug)]
struct Resolver(Arc<ServerTls>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current.read().ok().map(|c| c.clone())
    }
}

/// TLS connections accepted on `listener`: each handshake on its own task, within
/// [`HANDSHAKE_TIMEOUT`]; failed handshakes are logged and dropped. Ends when the stream is
/// dropped.
fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, for instance: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Serves `service` (and the health service) over TLS on `listener` until `shutdown` resolves;
/// in-flight requests finish first. The certificate is asked of `tls` at every handshake.
pub async fn serve_tls(
    service: StateSyncService,
    listener: TcpListener,
    tls: &Arc<ServerTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let acceptor = TlsAcceptor::from(Arc::new(tls.server_config()?));
    serve_incoming(service, tls_incoming(listener, acceptor), shutdown).await?;
    Ok(())
}

/// How a client checks `https://` servers and proves itself to them.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// CA certificates (PEM) to check servers against; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its key (PEM), for servers that require one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads the CA and the client certificate and key from PEM files.
    pub fn from_files(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        let ca_pem = match ca {
            Some(path) => {
                root_store(path)?;
                Some(read(path)?)
            }
            None => None,
        };
        let identity = match identity {
            Some((cert, key)) => {
                certified_key(cert, key, &provider())?;
                Some((read(cert)?, read(key)?))
            }
            None => None,
        };
        Ok(Self { ca_pem, identity })
    }

    /// The tonic client TLS settings (the server's name is checked against the peer URL's host).
    pub(crate) fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_pem {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        config
    }
}
