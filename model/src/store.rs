//! The snapshot store's semantics (the role GitHub Releases plays for OpenTrident).
//!
//! Lifeboat bundles are accepted only as children of the current head and only with a
//! fencing token at least as high as any seen and as the newest the lease store granted
//! (the store checks a token with the lock service, as Chubby's servers check a
//! sequencer): a deposed leader's late publish is refused even before its successor's
//! first publish.
//! OpenTrident v1 bundles are accepted as `gh release create` does, and a same-tag upload
//! replaces the asset (`--clobber`). Injected faults make the store serve tampered or old
//! content so that verifiers can be judged.
//!
//! The store records every write attempt before it decides ([`Event::PublishAttempted`]),
//! then its decision ([`Event::SnapshotPublished`]), and every head it serves
//! ([`Event::HeadServed`]): the checkers judge what the store was asked and what it
//! served, so a store that forgot a check is caught.

use crate::fault::Tamper;
use crate::history::Event;
use crate::ids::NodeId;
use crate::proto::{StoreResp, StoredBundle};
use crate::snapshot::{self, Bundle, SignedManifest, SnapshotKey};
use crate::time::Millis;

/// The store: accepted bundles in order, the highest token seen, and an injected tamper.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    accepted: Vec<StoredBundle>,
    highest_token: u64,
    next_fetch: u64,
    tamper: Option<Tamper>,
    attacker: SnapshotKey,
    /// The check a mutant test removed (`docs/mutants.md`).
    #[cfg(feature = "mutants")]
    mutant: Option<crate::mutant::Mutant>,
}

/// SHA-256 over a bundle's files (paths and contents), whatever its format: two publishes
/// with the same digest carry the same content.
pub fn content_digest(bundle: &StoredBundle) -> String {
    let files = match bundle {
        StoredBundle::Lifeboat(b) => &b.files,
        StoredBundle::V1(b) => &b.files,
    };
    let mut listing = Vec::new();
    for (path, bytes) in files {
        listing.extend_from_slice(path.as_bytes());
        listing.push(0);
        listing.extend_from_slice(snapshot::sha256_hex(bytes).as_bytes());
        listing.push(b'\n');
    }
    snapshot::sha256_hex(&listing)
}

/// A bundle's version (v1: 0) and its parent's id.
fn version_and_parent(bundle: &StoredBundle) -> (u64, Option<String>) {
    match bundle {
        StoredBundle::Lifeboat(b) => (
            b.manifest.manifest.version,
            b.manifest.manifest.parent.as_ref().map(|p| p.id.clone()),
        ),
        StoredBundle::V1(b) => (0, b.manifest.parent_snapshot_id.clone()),
    }
}

impl SnapshotStore {
    /// An empty store; `attacker` signs re-signed tampers.
    pub fn new(attacker: SnapshotKey) -> SnapshotStore {
        SnapshotStore {
            accepted: Vec::new(),
            highest_token: 0,
            next_fetch: 1,
            tamper: None,
            attacker,
            #[cfg(feature = "mutants")]
            mutant: None,
        }
    }

    /// Removes one of the store's checks, for a mutant test.
    #[cfg(feature = "mutants")]
    pub fn set_mutant(&mut self, mutant: Option<crate::mutant::Mutant>) {
        self.mutant = mutant;
    }

    /// Sets or clears the tamper applied to what the store serves.
    pub fn set_tamper(&mut self, tamper: Option<Tamper>) {
        self.tamper = tamper;
    }

    /// The head's id.
    pub fn head(&self) -> Option<&str> {
        self.accepted.last().map(|b| b.id())
    }

    /// The head bundle.
    pub fn head_bundle(&self) -> Option<&StoredBundle> {
        self.accepted.last()
    }

    /// How many bundles were accepted.
    pub fn len(&self) -> usize {
        self.accepted.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty()
    }

    /// Publishes a bundle from `node`; `granted` is the newest fencing token the lease
    /// store has granted. Returns the answer and the history events: the attempt, then
    /// the decision.
    pub fn publish(
        &mut self,
        node: NodeId,
        bundle: StoredBundle,
        token: Option<u64>,
        state_version: u64,
        granted: u64,
    ) -> (StoreResp, Vec<Event>) {
        let (version, parent) = version_and_parent(&bundle);
        let id = bundle.id().to_string();
        let attempt = Event::PublishAttempted {
            node,
            id: id.clone(),
            version,
            parent: parent.clone(),
            token,
            digest: content_digest(&bundle),
        };
        self.highest_token = self.highest_token.max(granted);
        let verdict: Result<&str, String> = match &bundle {
            StoredBundle::Lifeboat(_) => {
                let t = token.unwrap_or(0);
                if t < self.highest_token && !mutant!(self, StoreNoTokenCheck) {
                    Err(format!(
                        "stale fencing token {t}: the store has seen or the lease store granted {}",
                        self.highest_token
                    ))
                } else if parent.as_deref() != self.head() && !mutant!(self, StoreNoChildCheck) {
                    Err(format!(
                        "not a child of the head {}",
                        self.head().unwrap_or("(none)")
                    ))
                } else {
                    Ok("")
                }
            }
            StoredBundle::V1(_) => {
                if let Some(pos) = self.accepted.iter().position(|b| b.id() == id) {
                    // `gh release create` fails on the existing tag; upload --clobber wins.
                    self.accepted.remove(pos);
                    Ok("clobbered")
                } else {
                    Ok("")
                }
            }
        };
        let (resp, accepted, note) = match verdict {
            Ok(note) => {
                self.highest_token = self.highest_token.max(token.unwrap_or(0));
                self.accepted.push(bundle);
                (
                    StoreResp::Published { id: id.clone() },
                    true,
                    note.to_string(),
                )
            }
            Err(why) => (StoreResp::Rejected(why.clone()), false, why),
        };
        let event = Event::SnapshotPublished {
            node,
            id,
            version,
            parent,
            token,
            state_version,
            accepted,
            note,
        };
        (resp, vec![attempt, event])
    }

    /// Serves a fetch of the head (`id = None`) or of one snapshot, applying any tamper.
    /// Returns the answer and the history events: what was served and, for a fetch of
    /// the head, the head as served.
    pub fn fetch(
        &mut self,
        node: NodeId,
        id: Option<&str>,
        now: Millis,
    ) -> (StoreResp, Vec<Event>) {
        let fetch_id = self.next_fetch;
        self.next_fetch += 1;
        let pos = match id {
            None => self.accepted.len().checked_sub(1),
            Some(id) => self.accepted.iter().position(|b| b.id() == id),
        };
        let mut applied = None;
        let served = pos.map(|mut pos| {
            if self.tamper == Some(Tamper::Rollback) && pos > 0 {
                pos -= 1;
                applied = Some(Tamper::Rollback);
            }
            let mut bundle = self.accepted[pos].clone();
            let mut chain = self.chain_to(pos);
            if let Some(t) = self.tamper.filter(|t| *t != Tamper::Rollback) {
                if self.apply(t, &mut bundle, &mut chain, now) {
                    applied = Some(t);
                }
            }
            (chain, bundle)
        });
        let served_id = served.as_ref().map(|(_, b)| b.id().to_string());
        let (chain, bundle) = match served {
            Some((c, b)) => (c, Some(b)),
            None => (Vec::new(), None),
        };
        let tamper = applied.map(|t| t.to_string());
        let mut events = vec![Event::SnapshotServed {
            node,
            fetch_id,
            id: served_id.clone(),
            tamper: tamper.clone(),
        }];
        if id.is_none() {
            let (version, parent) = bundle.as_ref().map_or((0, None), version_and_parent);
            events.push(Event::HeadServed {
                node,
                fetch_id,
                id: served_id,
                version,
                parent,
                tamper,
            });
        }
        (
            StoreResp::Fetched {
                chain,
                bundle,
                fetch_id,
            },
            events,
        )
    }

    fn chain_to(&self, pos: usize) -> Vec<SignedManifest> {
        self.accepted[..=pos]
            .iter()
            .filter_map(|b| match b {
                StoredBundle::Lifeboat(b) => Some(b.manifest.clone()),
                StoredBundle::V1(_) => None,
            })
            .collect()
    }

    /// Alters a served bundle; returns whether the tamper applied.
    fn apply(
        &self,
        t: Tamper,
        bundle: &mut StoredBundle,
        chain: &mut [SignedManifest],
        now: Millis,
    ) -> bool {
        let files = match bundle {
            StoredBundle::Lifeboat(b) => &mut b.files,
            StoredBundle::V1(b) => &mut b.files,
        };
        match t {
            Tamper::FlipByte | Tamper::ReSign => {
                let Some((_, bytes)) = files.iter_mut().rev().find(|(_, b)| !b.is_empty()) else {
                    return false;
                };
                bytes[0] ^= 0x20;
            }
            Tamper::MoveBytes => {
                let keys: Vec<String> = files.keys().cloned().collect();
                let Some(w) = keys
                    .windows(2)
                    .find(|w| files[&w[0]].len() > 1)
                    .map(|w| w.to_vec())
                else {
                    return false;
                };
                let moved = files.get_mut(&w[0]).expect("key").pop().expect("non-empty");
                files.get_mut(&w[1]).expect("key").insert(0, moved);
            }
            Tamper::EscapePath => {
                files.insert(
                    "../../etc/cron.d/lifeboat".into(),
                    b"* * * * * root true\n".to_vec(),
                );
            }
            Tamper::Rollback => return false,
        }
        if t == Tamper::ReSign {
            match bundle {
                StoredBundle::Lifeboat(b) => {
                    let m = &b.manifest.manifest;
                    let parent = chain.len().checked_sub(2).map(|i| chain[i].clone());
                    if let Ok(forged) = snapshot::create(
                        &self.attacker,
                        b.files.clone(),
                        parent.as_ref(),
                        m.token,
                        now,
                        m.expires_at.saturating_sub(now),
                    ) {
                        *b = Bundle {
                            manifest: forged.manifest,
                            files: forged.files,
                        };
                        if let Some(last) = chain.last_mut() {
                            *last = b.manifest.clone();
                        }
                    }
                }
                StoredBundle::V1(b) => {
                    let parent = b.manifest.parent_snapshot_id.clone();
                    let instance = b.manifest.instance_id.clone();
                    let forged = crate::v1::create(
                        &self.attacker,
                        b.files.clone(),
                        parent,
                        &instance,
                        Millis(b.manifest.generated_at),
                    );
                    *b = forged;
                }
            }
        }
        true
    }
}
