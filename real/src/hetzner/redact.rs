//! Keeps the run's secrets out of everything it prints or writes.
//!
//! A live drill holds three kinds of secret: the Hetzner Cloud token, the Telegram bot
//! token and SSH key material (the operator's private key, and the host keys lifeboat
//! generates for new servers). The code never formats them on purpose; this is the second
//! line: every progress line, error, proof and evidence file of a real-backend run passes
//! through [`Secrets::scrub`], which replaces any secret it still finds. A test greps every
//! file a drill wrote for the tokens it was given.

use std::fmt;

/// The secrets of one run, each with a name to show in its place.
#[derive(Clone, Default)]
pub struct Secrets {
    known: Vec<(String, String)>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.known.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "Secrets({} redacted: {names:?})", self.known.len())
    }
}

/// Shorter values are not treated as secrets: replacing them would mangle ordinary text,
/// and a secret that short protects nothing.
const MIN_LEN: usize = 8;

impl Secrets {
    /// No secrets yet.
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Adds a secret shown as `[NAME redacted]`. A multi-line secret (a private key) is
    /// also registered line by line, so a fragment of it is caught too.
    pub fn add(&mut self, name: &str, value: &str) {
        let value = value.trim();
        if value.len() < MIN_LEN {
            return;
        }
        self.known.push((name.to_string(), value.to_string()));
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                // Armor lines (`-----BEGIN …`) are not secret; their body lines are.
                if line.len() >= 16 && !line.starts_with("-----") {
                    self.known.push((name.to_string(), line.to_string()));
                }
            }
        }
        // Longest first, so a secret that contains another is replaced whole.
        self.known.sort_by_key(|k| std::cmp::Reverse(k.1.len()));
    }

    /// `text` with every known secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.known {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("[{name} redacted]"));
            }
        }
        out
    }

    /// Whether `text` holds any known secret (for tests and a last check before writing).
    pub fn leaks(&self, text: &str) -> Option<&str> {
        self.known
            .iter()
            .find(|(_, v)| text.contains(v.as_str()))
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_tokens_and_key_fragments() {
        let mut s = Secrets::new();
        s.add("HCLOUD_TOKEN", "hc_0123456789abcdefXYZ");
        s.add(
            "SSH key",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\nbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n",
        );
        s.add("short", "abc");
        let text = "curl -H 'Authorization: Bearer hc_0123456789abcdefXYZ' … b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE and abc";
        let out = s.scrub(text);
        assert!(!out.contains("hc_0123456789abcdefXYZ"), "{out}");
        assert!(
            !out.contains("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE"),
            "{out}"
        );
        assert!(out.contains("[HCLOUD_TOKEN redacted]"), "{out}");
        assert!(out.contains("[SSH key redacted]"), "{out}");
        assert!(out.ends_with("and abc"), "short values are left: {out}");
        assert_eq!(s.leaks(text), Some("SSH key"));
        assert_eq!(s.leaks(&out), None);
        assert!(!format!("{s:?}").contains("hc_0123"));
    }
}
