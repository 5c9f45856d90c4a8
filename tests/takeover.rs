//! The `fenced` profile's takeover figures, held in simulated time (the same numbers
//! `cargo bench --bench takeover` prints, over fewer seeds).
//!
//! Contents:
//! - `fenced_crash_p99_within_lower_bound_plus_one_second`
//! - `fenced_graceful_stop_takes_over_within_one_second`

use lifeboat_model::profile::{Profile, ProfileName};
use lifeboat_model::scenario::NetworkSpec;
use lifeboat_model::time::Millis;
use lifeboat_sim::measure::{lower_bound, takeover_samples, LossKind};

const SEEDS: std::ops::Range<u64> = 1..201;

fn fenced() -> Profile {
    Profile::default_for(ProfileName::Fenced)
}

#[test]
fn fenced_crash_p99_within_lower_bound_plus_one_second() {
    let s = takeover_samples(&fenced(), LossKind::Crash, SEEDS);
    assert_eq!((s.no_takeover, s.already_led), (0, 0), "{s:?}");
    let bound = lower_bound(
        &fenced(),
        LossKind::Crash,
        NetworkSpec::default().latency_max,
    );
    let p99 = s.percentile(99).expect("samples");
    assert!(
        p99 <= bound + Millis::secs(1),
        "crash takeover p99 {p99} over the lower bound {bound} plus 1 s"
    );
}

#[test]
fn fenced_graceful_stop_takes_over_within_one_second() {
    let s = takeover_samples(&fenced(), LossKind::Stop, SEEDS);
    assert_eq!((s.no_takeover, s.already_led), (0, 0), "{s:?}");
    let max = s.max().expect("samples");
    assert!(max < Millis::secs(1), "graceful stop takeover took {max}");
}
