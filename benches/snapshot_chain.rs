//! Snapshot chain verification throughput beside plain SHA-256 over the same bytes, for
//! chains of 1 to 1,000 snapshots and 1 MB to 256 MB of state, and restore time against
//! chain length. Criterion times verification and plain SHA-256 of 1 MB alongside.
//!
//! `cargo bench --bench snapshot_chain`; `LIFEBOAT_BENCH_FULL=1` for state up to 256 MB.
//!
//! A chain of n snapshots is n signed manifests (each naming its parent by id and
//! digest) and the head's files; the ancestors list the same file with small content, as
//! a real chain's manifests would; the state is one file of random bytes. Two
//! verifications are timed: from genesis with nothing trusted (a cold restore, `snapshot
//! verify`), and a follower sync that already trusts the version two below the head.

mod common;

use common::{pick, Table};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lifeboat_model::snapshot::{
    self, Bundle, SignedManifest, SnapshotKey, TrustState, VerifyPolicy,
};
use lifeboat_model::time::Millis;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MB: usize = 1 << 20;
const CHAINS: [usize; 4] = [1, 10, 100, 1000];

/// A chain of `len` snapshots whose head holds `state` bytes.
struct Chain {
    key: SnapshotKey,
    manifests: Vec<SignedManifest>,
    head: Bundle,
}

fn files(bytes: Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    [("state/memory.bin".to_string(), bytes)].into()
}

/// Deterministic filler (xorshift), so SHA-256 sees no shortcut-friendly pattern.
fn state(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn chain(len: usize, state_bytes: usize) -> Chain {
    let key = SnapshotKey::from_seed([7; 32]);
    let ttl = Millis::secs(24 * 3600);
    let mut manifests: Vec<SignedManifest> = Vec::with_capacity(len);
    for v in 1..len {
        let b = snapshot::create(
            &key,
            files(v.to_le_bytes().to_vec()),
            manifests.last(),
            1,
            Millis(v as u64),
            ttl,
        )
        .expect("ancestor");
        manifests.push(b.manifest);
    }
    let head = snapshot::create(
        &key,
        files(state(state_bytes)),
        manifests.last(),
        1,
        Millis(len as u64),
        ttl,
    )
    .expect("head");
    manifests.push(head.manifest.clone());
    Chain {
        key,
        manifests,
        head,
    }
}

impl Chain {
    /// A verifier that trusts nothing yet (`synced` false) or, as a follower does, the
    /// version two below the head (one below in a chain of 2; nothing in a chain of 1).
    fn policy(&self, synced: bool) -> VerifyPolicy {
        let n = self.manifests.len();
        let trusted = n
            .checked_sub(3)
            .or(n.checked_sub(2))
            .filter(|_| synced)
            .map(|i| &self.manifests[i]);
        VerifyPolicy {
            trusted: self.key.public(),
            state: TrustState {
                highest: trusted.map(|m| (m.manifest.version, snapshot::digest(m))),
            },
            now: Millis(n as u64 + 1),
        }
    }

    fn verify(&self) -> snapshot::Verified {
        snapshot::verify(&self.policy(false), &self.manifests, &self.head)
            .expect("the chain verifies")
    }

    fn sync(&self) -> snapshot::Verified {
        snapshot::verify(&self.policy(true), &self.manifests, &self.head)
            .expect("the chain verifies")
    }

    /// What a node does to restore: verify the chain, then restore the head into fresh
    /// files and check them again.
    fn restore(&self) -> BTreeMap<String, Vec<u8>> {
        let v = self.verify();
        snapshot::restore(&self.head, &v).expect("the head restores")
    }

    fn state(&self) -> &[u8] {
        &self.head.files["state/memory.bin"]
    }
}

/// Wall time of one run of `f`. (Thread CPU time from `/proc` only moves on scheduler
/// ticks, too coarse for runs of a millisecond; the best of many runs stands in for an
/// undisturbed one.)
fn time(f: &mut dyn FnMut()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// The best time of each of `fs` over enough alternating runs to fill about `budget` each
/// (at least 3): alternating shares the machine's state between them, and the best run
/// is the one least disturbed by the other processes on a shared machine.
fn best_of<const N: usize>(budget: Duration, fs: [&mut dyn FnMut(); N]) -> [Duration; N] {
    let mut fs = fs;
    let mut best = [Duration::MAX; N];
    let (mut spent, mut runs) = (Duration::ZERO, 0);
    while runs < 3 || (spent < budget * N as u32 && runs < 1000) {
        for (f, b) in fs.iter_mut().zip(best.iter_mut()) {
            let t = time(*f);
            *b = (*b).min(t);
            spent += t;
        }
        runs += 1;
    }
    best
}

fn mb_s(bytes: usize, t: Duration) -> String {
    format!("{:.0}", bytes as f64 / MB as f64 / t.as_secs_f64())
}

fn ms(t: Duration) -> String {
    format!("{:.3}", t.as_secs_f64() * 1000.0)
}

/// One chain's figures.
struct Row {
    size: usize,
    len: usize,
    verify: Duration,
    sync: Duration,
    sync_work: snapshot::VerifyWork,
    plain: Duration,
    restore: Duration,
}

fn tables() {
    let sizes: Vec<usize> = pick(vec![MB, 16 * MB], vec![MB, 16 * MB, 256 * MB]);
    let budget = Duration::from_millis(pick(200, 1000));
    let mut rows = Vec::new();
    for &size in &sizes {
        for &len in &CHAINS {
            let c = chain(len, size);
            let [verify, sync, plain, restore] = best_of(
                budget,
                [
                    &mut || {
                        black_box(c.verify());
                    },
                    &mut || {
                        black_box(c.sync());
                    },
                    &mut || {
                        black_box(Sha256::digest(c.state()));
                    },
                    &mut || {
                        black_box(c.restore());
                    },
                ],
            );
            rows.push(Row {
                size,
                len,
                verify,
                sync,
                sync_work: c.sync().work,
                plain,
                restore,
            });
        }
    }
    let ratio =
        |plain: Duration, t: Duration| format!("{:.2}", plain.as_secs_f64() / t.as_secs_f64());
    let mut t = Table::new(&[
        "state",
        "chain",
        "SHA-256 ms",
        "SHA-256 MB/s",
        "sync ms",
        "sync MB/s",
        "sync ratio",
        "sync work",
        "genesis ms",
        "genesis ratio",
    ]);
    for r in &rows {
        t.row(vec![
            format!("{} MB", r.size / MB),
            r.len.to_string(),
            ms(r.plain),
            mb_s(r.size, r.plain),
            ms(r.sync),
            mb_s(r.size, r.sync),
            ratio(r.plain, r.sync),
            format!(
                "{} sig, {} links",
                r.sync_work.signatures, r.sync_work.links
            ),
            ms(r.verify),
            ratio(r.plain, r.verify),
        ]);
    }
    t.print(&format!(
        "Chain verification beside plain SHA-256 over the same state bytes, best wall time of alternating runs ({} mode; sync = a follower trusting the version two below the head, genesis = nothing trusted; ratio = SHA-256 time / verify time, target >= 0.80)",
        common::mode()
    ));
    let at = |size: usize, len: usize| {
        rows.iter()
            .find(|r| r.size == size && r.len == len)
            .expect("measured")
    };
    let (first, last) = (CHAINS[0], CHAINS[CHAINS.len() - 1]);
    let per_link = at(MB, last).verify.saturating_sub(at(MB, first).verify) / (last - first) as u32;
    println!(
        "from genesis, each link beyond the first adds {:.1} µs of verification (1 MB state, chain {last} against chain {first})",
        per_link.as_secs_f64() * 1e6
    );

    let mut header = vec!["chain".to_string()];
    header.extend(sizes.iter().map(|s| format!("restore ms, {} MB", s / MB)));
    header.extend(sizes.iter().map(|s| format!("vs chain 1, {} MB", s / MB)));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut r = Table::new(&header);
    for &len in &CHAINS {
        let mut cells = vec![len.to_string()];
        cells.extend(sizes.iter().map(|&s| ms(at(s, len).restore)));
        cells.extend(sizes.iter().map(|&s| {
            let growth = at(s, len).restore.as_secs_f64() / at(s, first).restore.as_secs_f64();
            format!("{growth:.2}x")
        }));
        r.row(cells);
    }
    r.print(&format!(
        "Restore (verify the chain, restore the head into fresh files, check them again) against chain length, best wall time ({} mode)",
        common::mode()
    ));
}

fn bench(c: &mut Criterion) {
    tables();
    let mut g = c.benchmark_group("snapshot_chain");
    g.throughput(Throughput::Bytes(MB as u64));
    let ch = chain(100, MB);
    g.bench_function("verify from genesis, chain 100, 1 MB", |b| {
        b.iter(|| ch.verify())
    });
    g.bench_function("follower sync, chain 100, 1 MB", |b| b.iter(|| ch.sync()));
    g.bench_function("plain SHA-256, 1 MB", |b| {
        b.iter(|| Sha256::digest(black_box(ch.state())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
