//! Snapshots in object storage: `arbor snapshot publish`, `serve --publish`, `sync --snapshot`.
//!
//! The layout and the checks are `arbor_sync::snapshot`'s; this module binds them to storage
//! through the `object_store` crate: `file://` (a directory), `s3://bucket/prefix` (endpoint,
//! region and credentials from the usual `AWS_*` environment variables), `gs://` and `az://` (the
//! same with `GOOGLE_*` / `AZURE_*`), and, for reading only, `http://` and `https://` (any static
//! web server or CDN).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use arbor_merkledb::Db;
use arbor_sync::snapshot::{self, CutPart, LATEST_MANIFEST, Manifest, PartSource};
use futures::{FutureExt, StreamExt, TryStreamExt, future::BoxFuture};
use object_store::{ObjectStore, PutPayload, path::Path as ObjectPath};

/// Parts uploaded at once while publishing.
const UPLOADS_IN_FLIGHT: usize = 4;

/// A snapshot location: a store and the prefix inside it.
#[derive(Clone)]
pub(crate) struct Location {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    url: String,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

/// How long a request to the store may take before `object_store` gives up on it, and how
/// often it retries; bootstrap has its own per-part timeout and attempts on top.
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_allow_http(true)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
    }
}

impl Location {
    /// Parses `url` (see the module docs). A `file://` directory is created if missing.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("snapshot location {url:?}: expected SCHEME://..."))?;
        let (store, prefix): (Arc<dyn ObjectStore>, &str) = match scheme {
            "file" => {
                let dir = Path::new(rest);
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .with_context(|| format!("opening {}", dir.display()))?;
                (Arc::new(store), "")
            }
            "s3" | "gs" | "az" | "azure" | "abfs" | "abfss" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let bucket_url = format!("{scheme}://{bucket}");
                let store: Arc<dyn ObjectStore> = match scheme {
                    "s3" => Arc::new(
                        object_store::aws::AmazonS3Builder::from_env()
                            .with_url(&bucket_url)
                            .with_client_options(client_options())
                            .with_retry(retry())
                            .build()?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(&bucket_url)
                            .with_client_options(client_options())
                            .with_retry(retry())
                            .build()?,
                    ),
                    _ => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(&bucket_url)
                            .with_client_options(client_options())
                            .with_retry(retry())
                            .build()?,
                    ),
                };
                (store, prefix)
            }
            "http" | "https" => {
                let store = object_store::http::HttpBuilder::new()
                    .with_url(url.trim_end_matches('/'))
                    .with_client_options(client_options())
                    .with_retry(retry())
                    .build()?;
                (Arc::new(store), "")
            }
            other => bail!(
                "snapshot location {url:?}: unsupported scheme {other:?} (file, s3, gs, az, http, \
                 https)"
            ),
        };
        Ok(Self {
            store,
            prefix: ObjectPath::from(prefix.trim_matches('/')),
            url: url.to_owned(),
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.child(part))
    }

    /// Reads `name`, at most its first `max_bytes` bytes (the rest is never read: a hostile
    /// server cannot make the reader buffer more; callers ask for one byte more than they
    /// expect to tell an oversized object).
    async fn get(&self, name: &str, max_bytes: u64) -> Result<Vec<u8>, String> {
        let result = self
            .store
            .get(&self.path(name))
            .await
            .map_err(|e| short(&e))?;
        let mut stream = result.into_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| short(&e))?;
            let room = (max_bytes as usize).saturating_sub(bytes.len());
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() > room {
                break;
            }
        }
        Ok(bytes)
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.store
            .put(&self.path(name), PutPayload::from(bytes))
            .await
            .with_context(|| format!("writing {name} to {}", self.url))?;
        Ok(())
    }

    /// The newest manifest (`manifest.json`), or the one `url` names when it ends in `.json`.
    pub(crate) async fn manifest(url: &str) -> anyhow::Result<(Self, Manifest)> {
        let (base, name) = match url.rsplit_once('/') {
            Some((base, file)) if file.ends_with(".json") => {
                // `.../manifests/X.json` names one snapshot under `...`.
                let base = base.strip_suffix("/manifests").unwrap_or(base);
                let name = url[base.len() + 1..].to_owned();
                (base, name)
            }
            _ => (url, LATEST_MANIFEST.to_owned()),
        };
        let location = Self::parse(base)?;
        let bytes = location
            .get(&name, 64 << 20)
            .await
            .map_err(|e| anyhow::anyhow!("reading {name} from {base}: {e}"))?;
        let manifest = Manifest::from_json(&bytes).with_context(|| format!("{name} at {base}"))?;
        Ok((location, manifest))
    }
}

/// The text of an `object_store` error without its chain of sources repeated.
fn short(error: &object_store::Error) -> String {
    match error {
        object_store::Error::NotFound { .. } => "not found (404)".to_owned(),
        other => other.to_string(),
    }
}

impl PartSource for Location {
    fn fetch(&self, name: &str, max_bytes: u64) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let (location, name) = (self.clone(), name.to_owned());
        async move { location.get(&name, max_bytes).await }.boxed()
    }
}

/// What a publication made.
pub(crate) struct Published {
    pub manifest: Manifest,
    pub seconds: f64,
}

/// Publishes the state of `db` at its current root to `location`: parts first (cut on a
/// blocking thread, uploaded a few at a time), then the snapshot's manifest, then the copy in
/// `manifest.json`, so no reader sees a manifest before its parts.
pub(crate) async fn publish(
    db: &Db,
    location: &Location,
    part_bytes: usize,
) -> anyhow::Result<Published> {
    let started = std::time::Instant::now();
    // The root and its commit number, read together (a commit may land between two reads).
    let (root, seq) = loop {
        let seq = db.commit_seq()?;
        let root = db.root()?;
        if db.commit_seq()? == seq {
            break (root, seq);
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<CutPart>(UPLOADS_IN_FLIGHT);
    let cutter = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            snapshot::cut_parts::<anyhow::Error>(&db, root, part_bytes, |cut| {
                tx.blocking_send(cut)
                    .map_err(|_| anyhow::anyhow!("upload stopped"))
            })
        })
    };
    let uploads = tokio_stream_of(rx)
        .map(|cut| async move {
            location.put(&cut.part.name, cut.bytes).await?;
            anyhow::Ok(cut.part)
        })
        .buffered(UPLOADS_IN_FLIGHT)
        .try_collect::<Vec<_>>();
    let (parts, cut) = tokio::join!(uploads, cutter);
    cut.context("cutting task")??;
    let manifest = Manifest {
        root,
        branch_factor: db.branch_factor(),
        seq,
        published_at: unix_now(),
        parts: parts?,
    };
    let json = manifest.to_json();
    location.put(&manifest.object_name(), json.clone()).await?;
    location.put(LATEST_MANIFEST, json).await?;
    Ok(Published {
        manifest,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Keeps the `keep` newest snapshots; an older one is deleted once the snapshot that pushed it
/// out has been public for `grace` (a reader that started on it has had that long to finish).
/// Parts no remaining manifest names are deleted once they are older than `grace` too (which
/// also sweeps parts of a publication that died before its manifest).
pub(crate) async fn prune(location: &Location, keep: usize, grace: Duration) -> anyhow::Result<()> {
    let now = unix_now();
    let mut manifests = Vec::new();
    let listed: Vec<_> = location
        .store
        .list(Some(&location.path("manifests")))
        .try_collect()
        .await?;
    for meta in listed {
        let name = relative(location, &meta.location);
        match location
            .get(&name, 64 << 20)
            .await
            .map(|b| Manifest::from_json(&b))
        {
            Ok(Ok(manifest)) => manifests.push((name, manifest)),
            _ => tracing::warn!(%name, "unreadable manifest left in place"),
        }
    }
    manifests.sort_by_key(|(_, m)| std::cmp::Reverse((m.seq, m.published_at)));
    let mut kept = Vec::new();
    for (i, (name, manifest)) in manifests.iter().enumerate() {
        let retired_at = i.checked_sub(keep).map(|j| manifests[j].1.published_at);
        match retired_at {
            Some(at) if now.saturating_sub(at) >= grace.as_secs() => {
                location.store.delete(&location.path(name)).await?;
                tracing::info!(%name, "deleted an old snapshot's manifest");
            }
            _ => kept.push(manifest),
        }
    }
    let referenced: std::collections::HashSet<&str> = kept
        .iter()
        .flat_map(|m| m.parts.iter().map(|p| p.name.as_str()))
        .collect();
    let parts: Vec<_> = location
        .store
        .list(Some(&location.path("parts")))
        .try_collect()
        .await?;
    let mut deleted = 0;
    for meta in parts {
        let name = relative(location, &meta.location);
        let age = SystemTime::now()
            .duration_since(SystemTime::from(meta.last_modified))
            .unwrap_or_default();
        if !referenced.contains(name.as_str()) && age >= grace {
            location.store.delete(&meta.location).await?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "deleted parts no snapshot names");
    }
    Ok(())
}

/// `path` relative to the location's prefix.
fn relative(location: &Location, path: &ObjectPath) -> String {
    let full = path.as_ref();
    let prefix = location.prefix.as_ref();
    full.strip_prefix(prefix)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(full)
        .to_owned()
}

/// `arbor snapshot publish`.
pub(crate) fn publish_command(db_path: &Path, url: &str, part_mb: u64) -> anyhow::Result<()> {
    let db = Db::open(db_path, arbor_merkledb::Config::default())
        .with_context(|| format!("opening database {}", db_path.display()))?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let location = Location::parse(url)?;
        publish(&db, &location, usize::try_from(part_mb)? << 20).await
    });
    db.close()?;
    let published = result?;
    let m = &published.manifest;
    println!("root {}", m.root);
    println!(
        "published {} parts, {} keys, {} bytes in {:.2} s to {url} ({})",
        m.parts.len(),
        m.keys(),
        m.bytes(),
        published.seconds,
        m.object_name()
    );
    Ok(())
}

/// `serve --publish`: publishes at start and every `every` commits after, pruning old ones.
pub(crate) struct Publisher {
    pub location: Location,
    pub every: u64,
    pub keep: usize,
    pub grace: Duration,
    pub part_bytes: usize,
}

impl Publisher {
    /// Runs until `stop`; failures are logged and retried at the next occasion.
    pub(crate) async fn run(self, db: Db, stop: tokio_util::sync::CancellationToken) {
        let mut published_seq: Option<u64> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(seq) = db.commit_seq() else { continue };
            if published_seq.is_some_and(|p| seq < p + self.every) {
                continue;
            }
            match publish(&db, &self.location, self.part_bytes).await {
                Ok(p) => {
                    published_seq = Some(p.manifest.seq);
                    tracing::info!(
                        root = %p.manifest.root, seq = p.manifest.seq, parts = p.manifest.parts.len(),
                        seconds = p.seconds, "published a snapshot"
                    );
                    println!("published {} {}", p.manifest.seq, p.manifest.root);
                    if let Err(error) = prune(&self.location, self.keep, self.grace).await {
                        tracing::warn!(%error, "pruning old snapshots failed");
                    }
                }
                Err(error) => {
                    // Typically: the root left history while it was being cut. Try again later.
                    tracing::warn!(%error, "publishing a snapshot failed");
                    published_seq = Some(seq);
                }
            }
        }
    }
}
