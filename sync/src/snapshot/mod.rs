//! Snapshots: the state at one root, cut into parts that any object store, static web server or
//! CDN can hold, and a bootstrap that checks every part against a trusted root.
//!
//! # Layout under a snapshot location (a directory, bucket prefix or URL)
//!
//! | object | content |
//! |---|---|
//! | `parts/<sha256 hex>` | one part: a v1.11 `RangeProof` message at the snapshot's root |
//! | `manifests/<seq>-<root hex>.json` | the [`Manifest`] of one snapshot |
//! | `manifest.json` | a copy of the newest manifest, written last |
//!
//! Parts are named by their content hash, so a part never changes once written, and a manifest
//! is written only after all of its parts: a reader never sees a half-published snapshot.
//!
//! # Bounds of a part
//!
//! A part proves the key-values of `[start, end]`, both inclusive, `None` = unbounded, exactly
//! as a range-proof request with those bounds would. The parts of a well-formed manifest tile
//! the keyspace: the first has no start, the last no end, and each part's start is its
//! predecessor's end followed by one zero byte (the next possible key). In the sync's half-open
//! coverage terms, a part holds `[start, end ‖ 0)`.
//!
//! Nothing in a manifest is trusted: bootstrap checks its root against the one the caller
//! trusts, and each part's proof against that root and the part's bounds, before writing.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{collections::HashMap, sync::{Arc, Mutex}};
//!
//! use arbor_merkledb::{Config, Db};
//! use arbor_sync::snapshot::{BootstrapConfig, Manifest, PartSource, bootstrap, cut_parts};
//! use futures::{FutureExt, future::BoxFuture};
//!
//! /// Objects by name; an application would read a bucket or a web server.
//! #[derive(Default)]
//! struct Objects(Mutex<HashMap<String, Vec<u8>>>);
//!
//! impl PartSource for Objects {
//!     fn fetch(&self, name: &str, max_bytes: u64) -> BoxFuture<'static, Result<Vec<u8>, String>> {
//!         let found = self.0.lock().unwrap().get(name).cloned();
//!         let bytes = found.map(|b| b[..b.len().min(max_bytes as usize)].to_vec());
//!         futures::future::ready(bytes.ok_or_else(|| "not found".to_owned())).boxed()
//!     }
//! }
//!
//! let server = Db::open_memory(Config::default())?;
//! let ops: Vec<_> = (0u32..5000).map(|i| (i.to_be_bytes().to_vec(), Some(vec![7u8; 40]))).collect();
//! server.propose(ops)?.commit()?;
//! let root = server.root()?;
//!
//! // Publish: parts of about 64 KiB, then the manifest.
//! let objects = Arc::new(Objects::default());
//! let mut parts = Vec::new();
//! cut_parts::<arbor_merkledb::Error>(&server, root, 64 << 10, |cut| {
//!     objects.0.lock().unwrap().insert(cut.part.name.clone(), cut.bytes);
//!     parts.push(cut.part);
//!     Ok(())
//! })?;
//! let manifest = Manifest { root, branch_factor: server.branch_factor(), seq: 1, published_at: 0, parts };
//! let json = manifest.to_json();
//!
//! // Bootstrap: the manifest comes from the storage too, the root from what the replica trusts.
//! let manifest = Manifest::from_json(&json)?;
//! let replica = Db::open_memory(Config::default().with_history_len(0))?;
//! let report = bootstrap(replica.clone(), objects, &manifest, root, BootstrapConfig::default()).await?;
//! assert_eq!(report.applied, manifest.parts.len());
//! assert_eq!(replica.root()?, root);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod bootstrap;
mod cut;

use arbor_merkledb::{BranchFactor, Hash};
use serde::{Deserialize, Serialize};

pub use bootstrap::{
    BootstrapConfig, BootstrapError, BootstrapReport, PartEvent, PartObserver, PartSource,
    PartStatus, bootstrap,
};
pub use cut::{CutPart, cut_parts};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// The name of the newest manifest under a snapshot location.
pub const LATEST_MANIFEST: &str = "manifest.json";

/// The largest part a manifest may declare (a bound on what a reader buffers per part).
pub const MAX_PART_BYTES: u64 = 256 << 20;

/// One part of a snapshot, as its manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Its object name under the snapshot location: `parts/<sha256 hex>`.
    pub name: String,
    /// Inclusive start; `None`: from the first key.
    pub start: Option<Vec<u8>>,
    /// Inclusive end; `None`: to the last key.
    pub end: Option<Vec<u8>>,
    /// Key-values it holds.
    pub keys: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
}

impl Part {
    /// The object name of a part with these bytes.
    pub fn name_for(bytes: &[u8]) -> (String, [u8; 32]) {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
        (format!("parts/{}", hex::encode(digest)), digest)
    }

    /// The exclusive end of the half-open region the part covers: `end ‖ 0`.
    pub(crate) fn region_end(&self) -> Option<Vec<u8>> {
        self.end.as_ref().map(|e| {
            let mut next = e.clone();
            next.push(0);
            next
        })
    }
}

/// What a snapshot holds: its root and its parts, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The root every part proves against.
    pub root: Hash,
    /// The trie's branch factor.
    pub branch_factor: BranchFactor,
    /// The publisher's commit number at `root` (orders the snapshots of one publisher).
    pub seq: u64,
    /// When it was published, in seconds since the Unix epoch.
    pub published_at: u64,
    /// The parts, in key order.
    pub parts: Vec<Part>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("manifest is not valid: {0}")]
    Malformed(String),
    /// Written by a newer (or unknown) format.
    #[error("manifest format {found} is not supported (this build reads format {MANIFEST_FORMAT})")]
    Format {
        /// The format it declares.
        found: u32,
    },
    /// A field holds an impossible value.
    #[error("manifest field {field}: {problem}")]
    Field {
        /// Which field.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// The JSON form.
#[derive(Serialize, Deserialize)]
struct ManifestFile {
    format: u32,
    root: String,
    branch_factor: u32,
    seq: u64,
    published_at: u64,
    keys: u64,
    parts: Vec<PartFile>,
}

#[derive(Serialize, Deserialize)]
struct PartFile {
    name: String,
    start: Option<String>,
    end: Option<String>,
    keys: u64,
    bytes: u64,
    sha256: String,
}

impl Manifest {
    /// Key-values in all parts.
    pub fn keys(&self) -> u64 {
        self.parts.iter().map(|p| p.keys).sum()
    }

    /// Bytes of all parts.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// The object name of this manifest under its snapshot location.
    pub fn object_name(&self) -> String {
        format!("manifests/{:020}-{}.json", self.seq, self.root.to_hex())
    }

    /// The JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let file = ManifestFile {
            format: MANIFEST_FORMAT,
            root: self.root.to_hex(),
            branch_factor: self.branch_factor.children(),
            seq: self.seq,
            published_at: self.published_at,
            keys: self.keys(),
            parts: self
                .parts
                .iter()
                .map(|p| PartFile {
                    name: p.name.clone(),
                    start: p.start.as_ref().map(hex::encode),
                    end: p.end.as_ref().map(hex::encode),
                    keys: p.keys,
                    bytes: p.bytes,
                    sha256: hex::encode(p.sha256),
                })
                .collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        json.push(b'\n');
        json
    }

    /// Reads a manifest from untrusted bytes. Only its syntax and field values are checked
    /// here; how its parts tile the keyspace is for [`Manifest::defects`], and whether their
    /// contents are true is for the proofs.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        let version: Version =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if version.format != MANIFEST_FORMAT {
            return Err(ManifestError::Format {
                found: version.format,
            });
        }
        let file: ManifestFile =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let field = |field: &str, problem: &str| ManifestError::Field {
            field: field.to_owned(),
            problem: problem.to_owned(),
        };
        let root = Hash::from_hex(&file.root).ok_or_else(|| field("root", "not 64 hex digits"))?;
        let branch_factor = BranchFactor::from_children(file.branch_factor)
            .ok_or_else(|| field("branch_factor", "not 2, 4, 16 or 256"))?;
        let mut parts = Vec::with_capacity(file.parts.len());
        for (i, p) in file.parts.into_iter().enumerate() {
            let at = |name: &str| format!("parts[{i}].{name}");
            let bound = |name: &str, text: Option<String>| {
                text.map(|t| hex::decode(t).map_err(|_| field(&at(name), "not hex")))
                    .transpose()
            };
            let sha256: [u8; 32] = hex::decode(&p.sha256)
                .ok()
                .and_then(|d| d.try_into().ok())
                .ok_or_else(|| field(&at("sha256"), "not 64 hex digits"))?;
            // The name is derived, never taken: a manifest cannot point a reader anywhere else.
            if p.name != format!("parts/{}", hex::encode(sha256)) {
                return Err(field(&at("name"), "is not parts/<its sha256>"));
            }
            if p.bytes == 0 || p.bytes > MAX_PART_BYTES {
                return Err(field(
                    &at("bytes"),
                    &format!("must be in 1..={MAX_PART_BYTES}"),
                ));
            }
            parts.push(Part {
                name: p.name,
                start: bound("start", p.start)?,
                end: bound("end", p.end)?,
                keys: p.keys,
                bytes: p.bytes,
                sha256,
            });
        }
        Ok(Self {
            root,
            branch_factor,
            seq: file.seq,
            published_at: file.published_at,
            parts,
        })
    }

    /// How the parts fail to tile the keyspace (overlaps, gaps, bounds out of order), one line
    /// each; empty for a well-formed manifest. A defective manifest is still usable: each part
    /// is checked on its own, and what no good part covers is fetched from peers.
    pub fn defects(&self) -> Vec<String> {
        let mut defects = Vec::new();
        let mut expected: Option<Option<Vec<u8>>> = Some(None);
        for (i, part) in self.parts.iter().enumerate() {
            if let (Some(s), Some(e)) = (&part.start, &part.end) {
                if e < s {
                    defects.push(format!("part {i} ({}): end before start", part.name));
                }
            }
            match &expected {
                None => defects.push(format!(
                    "part {i} ({}): starts after a part that reaches the last key",
                    part.name
                )),
                Some(next) if *next == part.start => {}
                Some(next) => {
                    let before = match (&part.start, next) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(s), Some(n)) => s < n,
                    };
                    defects.push(format!(
                        "part {i} ({}): {} the previous part",
                        part.name,
                        if before {
                            "overlaps"
                        } else {
                            "leaves a gap after"
                        }
                    ));
                }
            }
            expected = part.region_end().map(Some);
        }
        if self.parts.is_empty() && self.root != Hash::EMPTY_ROOT {
            defects.push("no parts for a non-empty root".to_owned());
        }
        if let Some(Some(_)) = expected {
            if !self.parts.is_empty() {
                defects.push("the last part does not reach the last key".to_owned());
            }
        }
        defects
    }
}

#[cfg(test)]
mod tests;
