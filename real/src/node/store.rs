//! The snapshot store over GitHub Releases: how a node publishes and fetches its signed
//! chain through the real [`ReleasesClient`].
//!
//! Layout: one release per snapshot, tagged `v{version:06}` (so two publishers of the
//! same version collide on GitHub's `already_exists`, which makes the tag a
//! compare-and-set), named after the snapshot id, with the signed manifest as the
//! release body and the whole bundle as the asset `bundle.json`.
//!
//! The Releases API cannot check fencing tokens, so the publisher does what
//! [`lifeboat_model::store::SnapshotStore`] does server-side, against the head it reads:
//! a bundle whose token is below the head's, or whose parent is not the head, is
//! refused. Between that read and the tag's creation another publisher can win the
//! version; its tag then exists and this publish is refused, so the chain stays linear.

use crate::clients::{ClientError, ReleasesClient};
use lifeboat_model::proto::{StoreResp, StoredBundle};
use lifeboat_model::snapshot::{Bundle, SignedManifest};
use std::collections::BTreeMap;

/// The asset that carries a bundle.
pub const BUNDLE_ASSET: &str = "bundle.json";

/// The tag of a snapshot version.
pub fn tag(version: u64) -> String {
    format!("v{version:06}")
}

/// A release of the chain: its manifest and whether its bundle is uploaded.
struct Entry {
    manifest: SignedManifest,
    asset: Option<u64>,
}

/// The snapshot store as a node (or the backend) sees it.
#[derive(Clone, Debug)]
pub struct ReleasesStore {
    client: ReleasesClient,
}

fn err(e: ClientError) -> String {
    e.to_string()
}

impl ReleasesStore {
    /// A store in the repository `client` is for.
    pub fn new(client: ReleasesClient) -> ReleasesStore {
        ReleasesStore { client }
    }

    /// Every snapshot release, newest version first.
    async fn entries(&self) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        for page in 1..=100 {
            let list = self.client.list_releases(100, page).await.map_err(err)?;
            let n = list.len();
            for r in list {
                if !r.tag_name.starts_with('v') {
                    continue;
                }
                let Some(body) = r.body.as_deref() else {
                    continue;
                };
                let Ok(manifest) = serde_json::from_str::<SignedManifest>(body) else {
                    continue;
                };
                out.push(Entry {
                    manifest,
                    asset: r.asset(BUNDLE_ASSET).map(|a| a.id),
                });
            }
            if n < 100 {
                break;
            }
        }
        out.sort_by(|a, b| {
            b.manifest
                .manifest
                .version
                .cmp(&a.manifest.manifest.version)
        });
        Ok(out)
    }

    /// The head: the newest snapshot whose bundle is uploaded.
    pub async fn head(&self) -> Result<Option<SignedManifest>, String> {
        Ok(self
            .entries()
            .await?
            .into_iter()
            .find(|e| e.asset.is_some())
            .map(|e| e.manifest))
    }

    /// Publishes `bundle` stamped with `token`; refused as the model's store refuses.
    pub async fn publish(&self, bundle: &Bundle, token: Option<u64>) -> Result<StoreResp, String> {
        let m = &bundle.manifest.manifest;
        let t = token.unwrap_or(0);
        let entries = self.entries().await?;
        // The head is the newest complete snapshot; one still uploading holds its tag,
        // so publishing over it collides below.
        let newest = entries
            .iter()
            .find(|e| e.asset.is_some())
            .map(|e| &e.manifest.manifest);
        if let Some(h) = newest {
            if t < h.token {
                return Ok(StoreResp::Rejected(format!(
                    "stale fencing token {t}: the store has seen {}",
                    h.token
                )));
            }
        }
        let parent = m.parent.as_ref().map(|p| p.id.as_str());
        if parent != newest.map(|h| h.id.as_str()) {
            return Ok(StoreResp::Rejected(format!(
                "not a child of the head {}",
                newest.map_or("(none)", |h| h.id.as_str())
            )));
        }
        let body = serde_json::to_string(&bundle.manifest).expect("manifests serialize");
        let release = match self
            .client
            .create_release(&tag(m.version), &m.id, &body)
            .await
        {
            Ok(r) => r,
            Err(e) if e.code() == Some("already_exists") => {
                return Ok(StoreResp::Rejected(format!(
                    "not a child of the head: version {} was published by another node first",
                    m.version
                )))
            }
            Err(e) => return Err(err(e)),
        };
        let bytes = serde_json::to_vec(bundle).expect("bundles serialize");
        if let Err(e) = self
            .client
            .upload_asset(release.id, BUNDLE_ASSET, "application/json", bytes)
            .await
        {
            return Err(err(e));
        }
        Ok(StoreResp::Published { id: m.id.clone() })
    }

    /// The chain up to snapshot `id` (or the head), oldest first, and that bundle.
    pub async fn fetch(
        &self,
        id: Option<&str>,
    ) -> Result<(Vec<SignedManifest>, Option<StoredBundle>), String> {
        let entries = self.entries().await?;
        let wanted = entries.iter().find(|e| match id {
            Some(id) => e.manifest.manifest.id == id,
            None => e.asset.is_some(),
        });
        let Some(w) = wanted else {
            return Ok((Vec::new(), None));
        };
        let Some(asset) = w.asset else {
            return Ok((Vec::new(), None));
        };
        let by_id: BTreeMap<&str, &SignedManifest> = entries
            .iter()
            .map(|e| (e.manifest.manifest.id.as_str(), &e.manifest))
            .collect();
        let mut chain = vec![w.manifest.clone()];
        while let Some(p) = chain.last().and_then(|m| m.manifest.parent.clone()) {
            match by_id.get(p.id.as_str()) {
                Some(m) if chain.len() <= entries.len() => chain.push((*m).clone()),
                _ => break,
            }
        }
        chain.reverse();
        let bytes = self.client.download_asset(asset).await.map_err(err)?;
        let bundle: Bundle = serde_json::from_slice(&bytes)
            .map_err(|e| format!("snapshot store: {BUNDLE_ASSET} is not a bundle: {e}"))?;
        Ok((chain, Some(StoredBundle::Lifeboat(bundle))))
    }
}
