//! Mutants: deliberately broken variants of the `fenced` protocol and its services, each
//! removing one mechanism, so that tests can show the checkers and the fuzzer catch the
//! bug that mechanism prevents (`docs/mutants.md`).
//!
//! Built only with the cargo feature `mutants`; the binary users run has no mutant and no
//! way to select one. The world hands the active mutant to the model in
//! [`crate::profile::FencedParams`] (nodes) and [`crate::store::SnapshotStore::set_mutant`]
//! (the store), never through a global.

use std::fmt;

/// One mechanism removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mutant {
    /// The snapshot store accepts a publish whatever its fencing token.
    StoreNoTokenCheck,
    /// The snapshot store accepts a publish that is not a child of its head.
    StoreNoChildCheck,
    /// The leader never steps down before its lease can expire.
    NoStepDown,
    /// The lease timers run on the wall clock instead of the monotonic clock.
    WallClockLease,
    /// The leader polls Telegram without fitting the poll inside its lease.
    PollWithoutLease,
    /// The Telegram offset moves past a batch as soon as it arrives, before its replies.
    OffsetBeforeReplies,
    /// A node that stepped down still answers the batch it had polled.
    RepliesAfterStepDown,
    /// Restores do not check manifest signatures.
    NoSignatureCheck,
    /// Restores accept versions below the persisted (or manifest) version.
    NoVersionFloor,
    /// A blank node does not check the served chain against its bootstrap manifest's head.
    NoManifestHeadCheck,
    /// A graceful stop hands the lease back at once, with its last poll still in flight.
    LeaseBackBeforeLastPoll,
    /// Lease answers for an earlier candidacy are taken for the current one, and a retry
    /// armed before a candidacy may end it (the second guard: without it no answer of an
    /// earlier candidacy is still awaited when a new one begins; `docs/mutants.md`).
    StaleCandidacyAnswers,
}

impl Mutant {
    /// Every mutant, in the order `docs/mutants.md` lists them.
    pub const ALL: [Mutant; 12] = [
        Mutant::StoreNoTokenCheck,
        Mutant::StoreNoChildCheck,
        Mutant::NoStepDown,
        Mutant::WallClockLease,
        Mutant::PollWithoutLease,
        Mutant::OffsetBeforeReplies,
        Mutant::RepliesAfterStepDown,
        Mutant::NoSignatureCheck,
        Mutant::NoVersionFloor,
        Mutant::NoManifestHeadCheck,
        Mutant::LeaseBackBeforeLastPoll,
        Mutant::StaleCandidacyAnswers,
    ];

    /// The mutant's name in kebab case (`store-no-token-check`).
    pub fn name(self) -> &'static str {
        match self {
            Mutant::StoreNoTokenCheck => "store-no-token-check",
            Mutant::StoreNoChildCheck => "store-no-child-check",
            Mutant::NoStepDown => "no-step-down",
            Mutant::WallClockLease => "wall-clock-lease",
            Mutant::PollWithoutLease => "poll-without-lease",
            Mutant::OffsetBeforeReplies => "offset-before-replies",
            Mutant::RepliesAfterStepDown => "replies-after-step-down",
            Mutant::NoSignatureCheck => "no-signature-check",
            Mutant::NoVersionFloor => "no-version-floor",
            Mutant::NoManifestHeadCheck => "no-manifest-head-check",
            Mutant::LeaseBackBeforeLastPoll => "lease-back-before-last-poll",
            Mutant::StaleCandidacyAnswers => "stale-candidacy-answers",
        }
    }

    /// Parses a name written by [`Mutant::name`].
    pub fn parse(name: &str) -> Result<Mutant, String> {
        Mutant::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Mutant::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "unknown mutant `{name}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
