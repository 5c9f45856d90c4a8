//! The bootstrap manifest: everything a blank node needs to restore and join.
//!
//! The runbook's first load-bearing note is that `bootstrap.json` went stale against the
//! snapshot head; here staleness is a checked error, not a note.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What a blank node needs: the snapshot head and where to fetch it, the image, the key
/// to pin and the settings it must be given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapManifest {
    /// Format version, 1.
    pub version: u32,
    /// The snapshot head this manifest was made from.
    pub snapshot_head: String,
    /// Where to fetch the chain (a releases URL, or `sim://snapshot-store` in the sim).
    pub snapshot_url: String,
    /// The runtime image reference. A mutable local tag is allowed but reported.
    pub image: String,
    /// The ed25519 key to pin, 64 hex characters.
    pub trusted_key: String,
    /// Names of settings the node must be given (never their values).
    pub required_settings: Vec<String>,
    /// When the manifest was made (wall ms).
    pub generated_at: Millis,
}
