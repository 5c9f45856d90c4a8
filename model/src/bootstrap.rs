//! The bootstrap manifest: everything a blank node needs to restore and join.
//!
//! The runbook's first load-bearing note is that `bootstrap.json` went stale against the
//! snapshot head; here staleness is a checked error, not a note.

use crate::snapshot::TrustedKey;
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

impl BootstrapManifest {
    /// A manifest for `head`, pinning `key`.
    pub fn new(
        head: &str,
        snapshot_url: &str,
        image: &str,
        key: &TrustedKey,
        required_settings: Vec<String>,
        now: Millis,
    ) -> Self {
        BootstrapManifest {
            version: 1,
            snapshot_head: head.to_string(),
            snapshot_url: snapshot_url.to_string(),
            image: image.to_string(),
            trusted_key: key.to_hex(),
            required_settings,
            generated_at: now,
        }
    }

    /// Parses `bootstrap.json`. A syntax or shape error names its line and column and what
    /// was expected, because this file is edited and copied by hand (runbook phase 0).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let m: BootstrapManifest = serde_json::from_str(text).map_err(|e| {
            // serde_json's message ends in " at line L column C"; restate it up front.
            let msg = e.to_string();
            let what = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(head, _)| head);
            let hint = match e.classify() {
                serde_json::error::Category::Eof => "; the file ends early (a missing `}` or `]`?)",
                serde_json::error::Category::Syntax => "; expected valid JSON",
                serde_json::error::Category::Data => {
                    "; expected fields version, snapshot_head, snapshot_url, image, trusted_key, required_settings, generated_at"
                }
                serde_json::error::Category::Io => "",
            };
            format!("line {}, column {}: {what}{hint}", e.line(), e.column())
        })?;
        if m.version != 1 {
            return Err(format!(
                "field `version`: expected 1, found {} (this lifeboat reads bootstrap manifest version 1)",
                m.version
            ));
        }
        m.trusted_key()
            .map_err(|e| format!("field `trusted_key`: {e}"))?;
        Ok(m)
    }

    /// Refuses a manifest whose head is not `current_head`: a blank node restored from a
    /// stale manifest silently loses every snapshot since.
    pub fn check_fresh(&self, current_head: &str) -> Result<(), String> {
        let current = current_head.trim();
        if self.snapshot_head == current {
            Ok(())
        } else {
            Err(format!(
                "bootstrap manifest is stale: it names {} but the snapshot head is {current}; regenerate it (runbook phase 0)",
                self.snapshot_head
            ))
        }
    }

    /// The key to pin.
    pub fn trusted_key(&self) -> Result<TrustedKey, String> {
        TrustedKey::from_hex(&self.trusted_key)
    }

    /// Things that are allowed but will hurt during a cold restore.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let image = self.image.as_str();
        let has_digest = image.contains("@sha256:");
        // Docker's rule: the first path part is a registry only if it has a `.` or `:`, or
        // is `localhost`.
        let has_registry = image.split_once('/').is_some_and(|(first, _)| {
            first.contains('.') || first.contains(':') || first == "localhost"
        });
        if !has_registry && !has_digest {
            out.push(format!(
                "image `{image}` is a mutable local tag with no registry and no digest: a blank node cannot pull it, so every node must be pre-staged (docker save | docker load) and may run a different build"
            ));
        } else if !has_registry {
            out.push(format!(
                "image `{image}` names no registry: a blank node cannot pull it, so every node must be pre-staged (docker save | docker load)"
            ));
        } else if !has_digest {
            out.push(format!(
                "image `{image}` is not pinned by digest (@sha256:…): the tag can move between the drill and the restore"
            ));
        }
        if self.required_settings.is_empty() {
            out.push(
                "required_settings is empty: a blank node will not be told which secrets it must be given"
                    .to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotKey;

    fn manifest(image: &str) -> BootstrapManifest {
        BootstrapManifest::new(
            "snap-3-0123abcd",
            "https://example.invalid/releases/snap-3-0123abcd",
            image,
            &SnapshotKey::from_seed([7; 32]).public(),
            vec!["TELEGRAM_BOT_TOKEN".into()],
            Millis(1000),
        )
    }

    #[test]
    fn round_trips_through_json() {
        let m = manifest("opentrident:latest");
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(BootstrapManifest::from_json(&text), Ok(m.clone()));
        assert_eq!(
            m.trusted_key(),
            Ok(SnapshotKey::from_seed([7; 32]).public())
        );
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let err =
            BootstrapManifest::from_json("{\n  \"version\": 1,\n  \"snapshot_head\" \"x\"\n}")
                .unwrap_err();
        assert!(err.starts_with("line 3, column 19:"), "{err}");
        assert!(err.contains("expected"), "{err}");
        let err = BootstrapManifest::from_json("{\"version\": 1}").unwrap_err();
        assert!(err.contains("missing field `snapshot_head`"), "{err}");
        let err = BootstrapManifest::from_json("{\"version\": 1,").unwrap_err();
        assert!(err.contains("ends early"), "{err}");
    }

    #[test]
    fn unknown_fields_wrong_version_and_bad_keys_are_refused() {
        let mut v = serde_json::to_value(manifest("x")).unwrap();
        v["extra"] = serde_json::json!(1);
        let err = BootstrapManifest::from_json(&v.to_string()).unwrap_err();
        assert!(err.contains("unknown field `extra`"), "{err}");
        let mut m = manifest("x");
        m.version = 2;
        let err = BootstrapManifest::from_json(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(err.contains("field `version`"), "{err}");
        let mut m = manifest("x");
        m.trusted_key = "abc".into();
        let err = BootstrapManifest::from_json(&serde_json::to_string(&m).unwrap()).unwrap_err();
        assert!(err.contains("field `trusted_key`"), "{err}");
    }

    #[test]
    fn stale_against_the_head_is_an_error() {
        let m = manifest("x");
        assert_eq!(m.check_fresh("snap-3-0123abcd\n"), Ok(()));
        let err = m.check_fresh("snap-4-feedbeef").unwrap_err();
        assert_eq!(
            err,
            "bootstrap manifest is stale: it names snap-3-0123abcd but the snapshot head is snap-4-feedbeef; regenerate it (runbook phase 0)"
        );
    }

    #[test]
    fn warnings_flag_local_tags_and_missing_digests() {
        let w = manifest("opentrident:latest").warnings();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("pre-staged") && w[0].contains("no digest"),
            "{w:?}"
        );
        let w = manifest("ghcr.io/o/opentrident:1.2").warnings();
        assert!(w[0].contains("not pinned by digest"), "{w:?}");
        let w = manifest("library/opentrident@sha256:00").warnings();
        assert!(w[0].contains("names no registry"), "{w:?}");
        assert!(manifest("ghcr.io/o/opentrident@sha256:00")
            .warnings()
            .is_empty());
        let mut m = manifest("localhost:5000/ot@sha256:00");
        assert!(m.warnings().is_empty());
        m.required_settings.clear();
        assert!(m.warnings()[0].contains("required_settings"));
    }
}
